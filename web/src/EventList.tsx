import { useVirtualizer } from '@tanstack/react-virtual';
import { useEffect, useLayoutEffect, useMemo, useRef, useState } from 'react';
import { type AgentEvent, formatCost } from './api.js';
import type { Connection } from './client.js';
import { useStoryEvents } from './story-events.js';

/** How far from the bottom still counts as "at the end": the list then follows new events. */
const FOLLOW_SLACK_PX = 40;

/**
 * The Events region: every event of the story as a list item showing `#<seq>`, oldest
 * first. Only the items in view are in the page (a virtualised list), however long the
 * history; while the view is at the end it follows new events.
 */
export function EventList({ connection, storyId }: { connection: Connection; storyId: string }) {
  const { events, truncatedBefore, error } = useStoryEvents(connection, storyId);
  const [showRaw, setShowRaw] = useShowRawLines();
  const rawCount = useMemo(() => events.filter(isRawLine).length, [events]);
  const shown = useMemo(() => (showRaw ? events : events.filter((event) => !isRawLine(event))), [events, showRaw]);
  const scroller = useRef<HTMLDivElement>(null);
  const [following, setFollowing] = useState(true);
  const virtualizer = useVirtualizer({
    count: shown.length,
    getScrollElement: () => scroller.current,
    estimateSize: () => 30,
    overscan: 12,
    getItemKey: (index) => shown[index]!.seq,
  });

  useLayoutEffect(() => {
    if (following && shown.length > 0) virtualizer.scrollToIndex(shown.length - 1, { align: 'end' });
  }, [shown, following, virtualizer]);

  useEffect(() => {
    const element = scroller.current;
    if (!element) return;
    const onScroll = (): void => {
      setFollowing(element.scrollHeight - element.scrollTop - element.clientHeight < FOLLOW_SLACK_PX);
    };
    element.addEventListener('scroll', onScroll, { passive: true });
    return () => element.removeEventListener('scroll', onScroll);
  }, []);

  return (
    <section className="events" aria-label="Events">
      <h2>
        Events <small>{events.length > 0 ? `#${events[0]!.seq}–#${events.at(-1)!.seq}` : ''}</small>
        {!following && shown.length > 0 && (
          <button type="button" className="link" onClick={() => setFollowing(true)}>
            Follow new events
          </button>
        )}
        <label
          className="inline raw-toggle"
          title="The JSON lines the agent printed, as it printed them: the other events are read from them"
        >
          <input type="checkbox" checked={showRaw} onChange={(event) => setShowRaw(event.target.checked)} />
          {`Show raw lines (${rawCount})`}
        </label>
      </h2>
      {truncatedBefore !== undefined && (
        <p className="note">Events before #{truncatedBefore} were dropped by retention ([store] max_events_per_story).</p>
      )}
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      <div className="event-scroller" ref={scroller} role="list" aria-label={`Events of ${storyId}`}>
        <div style={{ height: virtualizer.getTotalSize(), position: 'relative' }}>
          {virtualizer.getVirtualItems().map((item) => {
            const event = shown[item.index]!;
            return (
              <div
                key={item.key}
                role="listitem"
                aria-setsize={shown.length}
                aria-posinset={item.index + 1}
                data-index={item.index}
                ref={virtualizer.measureElement}
                className={`event event-${event.__typename}`}
                style={{ position: 'absolute', top: 0, left: 0, width: '100%', transform: `translateY(${item.start}px)` }}
              >
                <span className="seq">#{event.seq}</span>
                <EventBody event={event} />
              </div>
            );
          })}
        </div>
      </div>
    </section>
  );
}

/** A JSON line as the agent printed it (AgentJsonEvent): the events the page shows are read from these. */
function isRawLine(event: AgentEvent): boolean {
  return event.__typename === 'AgentJsonEvent';
}

const SHOW_RAW_KEY = 'agent-pool.showRawLines';

/** Whether raw lines are shown: no by default, and as last chosen in this tab. */
function useShowRawLines(): [boolean, (show: boolean) => void] {
  const [show, setShow] = useState(() => sessionStorage.getItem(SHOW_RAW_KEY) === 'yes');
  return [
    show,
    (next) => {
      sessionStorage.setItem(SHOW_RAW_KEY, next ? 'yes' : 'no');
      setShow(next);
    },
  ];
}

const KIND_LABELS: Readonly<Record<string, string>> = {
  COMMAND: '$ command',
  EDIT: '✎ edit',
  READ: 'read',
  SEARCH: 'search',
  WEB: 'web',
  TASK: 'task',
  OTHER: 'tool',
};

/** A tool call's gist: the command it runs or the file it touches. */
function toolSummary(input: unknown): string {
  if (typeof input !== 'object' || input === null) return '';
  const fields = input as Record<string, unknown>;
  for (const key of ['command', 'file_path', 'path', 'pattern', 'url', 'query', 'description']) {
    if (typeof fields[key] === 'string') return fields[key];
  }
  return '';
}

function jsonSummary(data: unknown): string {
  if (typeof data !== 'object' || data === null) return 'JSON';
  const { type, subtype } = data as { type?: unknown; subtype?: unknown };
  return [type, subtype].filter((part) => typeof part === 'string').join(' / ') || 'JSON';
}

/** One entry of an agent's plan (AgentPlanEvent), as far as the page can read it. */
interface PlanEntry {
  content: string;
  status: string;
}

/** The entries of a plan as ACP gives them (`[{content, priority, status}]`); anything else is left out. */
function planEntries(entries: unknown): PlanEntry[] {
  if (!Array.isArray(entries)) return [];
  return entries.flatMap((entry: unknown) => {
    if (typeof entry !== 'object' || entry === null) return [];
    const { content, status } = entry as { content?: unknown; status?: unknown };
    if (typeof content !== 'string') return [];
    return [{ content, status: typeof status === 'string' ? status : 'pending' }];
  });
}

/** How each status of a plan's entry is marked, and read out. */
const PLAN_MARKS: Readonly<Record<string, { mark: string; label: string }>> = {
  completed: { mark: '✓', label: 'done' },
  in_progress: { mark: '▸', label: 'in progress' },
  pending: { mark: '○', label: 'pending' },
};

/** The agent's plan as a checklist: each entry marked done, in progress or pending. */
function Plan({ entries }: { entries: unknown }) {
  const list = planEntries(entries);
  const done = list.filter((entry) => entry.status === 'completed').length;
  return (
    <div className="plan">
      <span className="kind">plan</span>{' '}
      <small>
        {done}/{list.length} done
      </small>
      <ul aria-label="Plan">
        {list.map((entry, index) => {
          const { mark, label } = PLAN_MARKS[entry.status] ?? { mark: '?', label: entry.status };
          return (
            <li key={index} className={`plan-${entry.status.replaceAll('_', '-')}`}>
              <span className="plan-mark" aria-hidden="true">
                {mark}
              </span>
              <span className="visually-hidden">{label}: </span>
              <span className="plan-content">{entry.content}</span>
            </li>
          );
        })}
      </ul>
    </div>
  );
}

function EventBody({ event }: { event: AgentEvent }) {
  switch (event.__typename) {
    case 'AgentStatusEvent':
      return <span className={`status-line status-${event.status?.toLowerCase()}`}>{event.status}</span>;
    case 'AgentOutputEvent':
      return <span className="text">{event.text}</span>;
    case 'AgentErrorEvent':
      return <span className="error">{event.message}</span>;
    case 'AgentDoneEvent':
      return <span className="done">done (exit {event.exitCode ?? '?'})</span>;
    case 'AgentToolCallEvent':
      return (
        <details className={`tool tool-${event.kind?.toLowerCase()}`}>
          <summary>
            <span className="kind">{KIND_LABELS[event.kind ?? 'OTHER']}</span> <b>{event.tool}</b>{' '}
            <span className="mono">{toolSummary(event.input)}</span>
          </summary>
          <pre className="json">{JSON.stringify(event.input, null, 2)}</pre>
        </details>
      );
    case 'AgentToolResultEvent':
      return (
        <details className={`tool-result ${event.isError ? 'is-error' : ''}`}>
          <summary>{event.isError ? 'tool failed' : 'tool result'}</summary>
          <pre>{event.output ?? ''}</pre>
        </details>
      );
    case 'AgentUsageEvent':
      return (
        <span className="usage">
          {event.inputTokens ?? '?'} in · {event.outputTokens ?? '?'} out · {formatCost(event.costUsd)}
        </span>
      );
    case 'AgentApprovalRequestEvent':
      return (
        <span className="approval-line">
          asks to use <b>{event.tool}</b> <span className="mono">{toolSummary(event.input)}</span>
        </span>
      );
    case 'AgentApprovalResolvedEvent':
      return (
        <span className={event.allowed ? 'allowed' : 'denied'}>
          {event.allowed ? 'allowed' : 'denied'}
          {event.reason ? `: ${event.reason}` : ''}
        </span>
      );
    case 'AgentPlanEvent':
      return <Plan entries={event.entries} />;
    case 'AgentJsonEvent':
      return (
        <details className="raw">
          <summary>raw line: {jsonSummary(event.data)}</summary>
          <pre className="json">{JSON.stringify(event.data, null, 2)}</pre>
        </details>
      );
    default:
      // A type of event newer than this page (its __typename is all it asked of it).
      return <span>{(event as { __typename: string }).__typename}</span>;
  }
}

