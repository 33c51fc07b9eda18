// What the page tells a person who is not looking at it: a system notification when a
// story starts waiting for them or ends, and the count of stories waiting for them in the
// tab's title. Both come from the agents the page keeps live (agents.ts); nothing is polled.
import { useEffect, useRef, useState } from 'react';
import type { Agents } from './agents.js';
import type { Agent, AgentStatus, WaitReason } from './api.js';
import { navigate, storyPath } from './router.js';

/** The tab's title as index.html gives it; the count of waiting stories goes before it. */
const BASE_TITLE = document.title;

/** What a notification says after the story's id, per status a run ends in. */
const ENDED: Partial<Record<AgentStatus, string>> = { COMPLETED: 'completed', FAILED: 'failed', STOPPED: 'stopped' };

/** What a notification says after the story's id, per thing it waits for. */
const WAITING: Record<WaitReason, string> = { APPROVAL: 'needs approval', INPUT: 'waits for a message' };

/** What the page last saw of a story: what its notifications compare with. */
interface Seen {
  status: AgentStatus;
  waitingFor: WaitReason | null;
}

/** The page's permission to notify; "unsupported" where the browser has no Notification API. */
export type NotificationPermissionState = NotificationPermission | 'unsupported';

/**
 * Whether the person is not looking at the page: its tab is hidden (another tab, a
 * minimised window) or its window is not the one in front (another window or
 * application has the focus). While they look at it, the page itself shows the news.
 */
export function inBackground(): boolean {
  return document.visibilityState !== 'visible' || !document.hasFocus();
}

/**
 * What a story's change is worth telling, if anything: it starts waiting for a person
 * (once per wait: while it keeps waiting for the same thing, nothing more), or a run of
 * it ends (from PENDING or RUNNING to COMPLETED, FAILED or STOPPED). Nothing for a story
 * the page had not seen before (`before` undefined): its state is where it starts from.
 */
export function newsOf(before: Seen | undefined, now: Agent): string | undefined {
  if (before === undefined) return undefined;
  if (now.waitingFor !== null && now.waitingFor !== before.waitingFor) return WAITING[now.waitingFor];
  const ended = ENDED[now.status];
  if (ended !== undefined && (before.status === 'PENDING' || before.status === 'RUNNING')) return ended;
  return undefined;
}

/** Shows `news` of `agent`'s story; a click on it brings the page to the front, on the story. */
function notify(agent: Agent, news: string): void {
  const options = {
    body: agent.title ?? '',
    // One per story: the newest replaces an older one still on the screen…
    tag: `story:${agent.storyId}`,
    // …and still alerts (Chrome's renotify; TypeScript's NotificationOptions lacks it).
    renotify: true,
  };
  let notification: Notification;
  try {
    notification = new Notification(`${agent.storyId} ${news}`, options);
  } catch {
    // Chrome on Android has the API but shows notifications only from a service worker:
    // the constructor throws there. The page goes on without them.
    return;
  }
  notification.addEventListener('click', () => {
    window.focus();
    navigate(storyPath(agent.storyId));
    notification.close();
  });
}

/**
 * The page's permission to notify, and `ask` to request it: only from a person's click
 * (browsers refuse, or hold against the page, a request nobody asked for). `ask` updates
 * the permission with the person's answer.
 */
export function useNotificationPermission(): { permission: NotificationPermissionState; ask: () => void } {
  const [permission, setPermission] = useState<NotificationPermissionState>(() =>
    'Notification' in window ? Notification.permission : 'unsupported',
  );
  const ask = (): void => {
    void Notification.requestPermission().then(setPermission);
  };
  return { permission, ask };
}

/**
 * Notifies, while the page is in the background ({@link inBackground}) and may notify,
 * of each story that starts waiting for a person or ends ({@link newsOf}). Only changes
 * the page sees while it is open count: the stories as the agents query first gives
 * them are where it starts from, so opening the page notifies of nothing.
 */
export function useStoryNotifications(agents: Agents): void {
  /** Each story as the page last saw it; undefined until the first answer of the agents query. */
  const seen = useRef<Map<string, Seen> | undefined>(undefined);
  useEffect(() => {
    if (!agents.loaded) return;
    const before = seen.current;
    const now = new Map(before);
    for (const agent of agents.agents) now.set(agent.storyId, { status: agent.status, waitingFor: agent.waitingFor });
    seen.current = now;
    if (before === undefined || !inBackground() || !('Notification' in window) || Notification.permission !== 'granted') return;
    for (const agent of agents.agents) {
      const news = newsOf(before.get(agent.storyId), agent);
      if (news !== undefined) notify(agent, news);
    }
  }, [agents.loaded, agents.agents]);
}

/**
 * Counts the stories that wait for a person (an approval or a message) in the tab's
 * title, "(2) agent-pool", so that a tab in the background says so; the plain title
 * when none does.
 */
export function useWaitingTitle(agents: Agents): void {
  const waiting = agents.agents.filter((agent) => agent.waitingFor !== null).length;
  useEffect(() => {
    document.title = waiting > 0 ? `(${waiting}) ${BASE_TITLE}` : BASE_TITLE;
    return () => {
      document.title = BASE_TITLE;
    };
  }, [waiting]);
}
