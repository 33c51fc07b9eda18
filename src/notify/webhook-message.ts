import { createHmac } from 'node:crypto';
import type { NotifyEvent, WebhookFormat } from '../config/notify-config.js';
import { parseUrl } from '../url.js';

/** What one notification says of a story, whatever the format it is written in. */
export interface StoryNotification {
  /** The delivery's id: receivers dedupe by it. */
  id: string;
  event: NotifyEvent;
  storyId: string;
  title: string | undefined;
  /** The story's status when it was written. */
  status: string;
  /** What the agent waits for from a person (APPROVAL or INPUT), if anything. */
  waitingFor: string | undefined;
  /** The number of the story's latest run. */
  run: number;
  /** The story's agent profile. */
  agent: string;
  /** The story's cost so far, all runs. */
  costUsd: number | undefined;
  /** Why its latest run FAILED. */
  error: string | undefined;
  at: Date;
  /** The story's page, when `[notify] public_url` is set. */
  link: string | undefined;
  /** The approval it waits for, when it waits for one: the tool and the request to answer. */
  approval: { requestId: string; tool: string } | undefined;
}

/** The address of a story's page under `[notify] public_url`; undefined without one. */
export function storyLink(publicUrl: string, storyId: string): string | undefined {
  if (publicUrl === '') return undefined;
  return `${publicUrl.replace(/\/+$/, '')}/stories/${encodeURIComponent(storyId)}`;
}

/** The JSON body of the contract: every field, null where unknown; `link` and `approval` only when there is one. */
function jsonBody(notification: StoryNotification): Record<string, unknown> {
  return {
    id: notification.id,
    event: notification.event,
    storyId: notification.storyId,
    title: notification.title ?? null,
    status: notification.status,
    waitingFor: notification.waitingFor ?? null,
    run: notification.run,
    agent: notification.agent,
    costUsd: notification.costUsd ?? null,
    error: notification.error ?? null,
    at: notification.at.toISOString(),
    ...(notification.link === undefined ? {} : { link: notification.link }),
    ...(notification.approval === undefined ? {} : { approval: notification.approval }),
  };
}

/**
 * Text from a story (its title, an agent's error) as Slack and Mattermost read it, shown as
 * written: `&`, `<` and `>` escaped (Slack's `<!channel>`, `<@U123>` and `<url|text>`), and a
 * zero-width space after each `@` (Mattermost's `@channel`, `@all`), so that no text a story
 * holds pings anyone. A bare URL may still be shown as a link.
 */
function slackEscape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/@/g, '@\u200b');
}

/** One line for people: what happened to which story, with a link to its page. */
function slackText(notification: StoryNotification): string {
  const { storyId, title, run } = notification;
  const story = `story \`${slackEscape(storyId.replace(/`/g, "'"))}\`${title === undefined ? '' : ` (${slackEscape(title)})`}`;
  let what: string;
  switch (notification.event) {
    case 'waiting':
      what =
        notification.waitingFor === 'APPROVAL'
          ? `is waiting for your approval${notification.approval === undefined ? '' : ` to run ${slackEscape(notification.approval.tool)}`}`
          : 'is waiting for your message';
      break;
    case 'completed':
      what = `completed run ${run}${notification.costUsd === undefined ? '' : ` ($${notification.costUsd.toFixed(2)} so far)`}`;
      break;
    case 'failed':
      what = `failed in run ${run}${notification.error === undefined ? '' : `: ${slackEscape(notification.error)}`}`;
      break;
    case 'stopped':
      what = `was stopped in run ${run}`;
      break;
  }
  const link = notification.link === undefined ? '' : ` <${notification.link}|Open the story>`;
  return `agent-pool: ${story} ${what}.${link}`;
}

/** The body of a notification as `format` writes it: the contract's JSON, or a Slack incoming webhook's `{ text }`. */
export function webhookBody(notification: StoryNotification, format: WebhookFormat): string {
  return JSON.stringify(format === 'slack' ? { text: slackText(notification) } : jsonBody(notification));
}

/** The `X-Agent-Pool-Signature` of a body: `sha256=` and the hex HMAC-SHA256 of its bytes with the secret. */
export function webhookSignature(body: string, secret: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/** A receiver's URL for people to read: its origin, with the path and query (which may hold a secret) redacted. */
export function redactedUrl(text: string): string {
  const url = parseUrl(text);
  if (!url) return '(not a URL)';
  return url.pathname === '/' && url.search === '' ? `${url.origin}/` : `${url.origin}/…`;
}
