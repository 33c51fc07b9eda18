import { useVirtualizer } from '@tanstack/react-virtual';
import { useCallback, useEffect, useLayoutEffect, useRef, useState } from 'react';
import { type AgentEvent, formatCost } from './api.js';
import type { Connection } from './client.js';
import { useStoryEvents } from './story-events.js';

/** How far from the bottom still counts as "at the end": the list then follows new events. */
const FOLLOW_SLACK_PX = 40;
/** How close (in items) the view may come to either end of the window before the next page is read. */
const EDGE_ITEMS = 20;
/** Fewer items than this can all be near both ends at once: the list reads by other rules. */
const FEW_ITEMS = 100;
/** How many events back (raw lines hidden) the list reads by itself to find some it shows. */
const AUTO_READ_SPAN = 5000;

/** The first item in the list's view: where it stays when pages come or go above it. */
interface Anchor {
  seq: number;
  /** Its top, from the top of the view. */
  offset: number;
}

/**
 * The Events region: the story's events as list items showing `#<seq>`, oldest first.
 * It opens at the end and follows new events while the view is there. Scrolling up reads
 * older pages (down to the oldest kept), scrolling down reads them again; only a window of
 * events around the view is in memory (see EventWindow), and only the items in view are in
 * the page (a virtualised list), however long the history.
 */
export function EventList({ connection, storyId }: { connection: Connection; storyId: string }) {
  const [showRaw, setShowRaw] = useShowRawLines();
  const { events: shown, from, to, rawLines, firstSeq, lastSeq, atStart, atEnd, opened, error, history } = useStoryEvents(
    connection,
    storyId,
    showRaw,
  );
  const scroller = useRef<HTMLDivElement>(null);
  const [following, setFollowing] = useState(true);
  const anchor = useRef<Anchor | undefined>(undefined);
  /** Set by "Oldest events": once the window is at the start, the view goes to its top. */
  const toStart = useRef(false);
  const latest = useRef({ atEnd, following });
  latest.current = { atEnd, following };
  const virtualizer = useVirtualizer({
    count: shown.length,
    getScrollElement: () => scroller.current,
    estimateSize: () => 30,
    overscan: 12,
    getItemKey: (index) => shown[index]!.seq,
  });
  const items = virtualizer.getVirtualItems();
  const firstIndex = items[0]?.index;
  const lastIndex = items.at(-1)?.index;

  /** Records the first item in view (the anchor), and tells the window where the view is. */
  const recordView = useCallback((): void => {
    const element = scroller.current;
    if (!element) return;
    const top = element.scrollTop;
    const item = virtualizer.getVirtualItems().find((candidate) => candidate.end > top);
    const event = item ? shown[item.index] : undefined;
    anchor.current = event && item ? { seq: event.seq, offset: item.start - top } : undefined;
    history.setView({ seq: event?.seq, following: latest.current.following });
  }, [virtualizer, shown, history]);

  // After the window changed: follow the end (of what it holds, while the newest events
  // are being read), go to the top after a jump to the start, or keep the anchor where it
  // was while pages came or went above it.
  useLayoutEffect(() => {
    if (shown.length === 0) return;
    if (following) {
      virtualizer.scrollToIndex(shown.length - 1, { align: 'end' });
    } else if (toStart.current && atStart) {
      toStart.current = false;
      virtualizer.scrollToOffset(0);
    } else if (anchor.current) {
      const index = shown.findIndex((event) => event.seq === anchor.current!.seq);
      const item = index === -1 ? undefined : virtualizer.measurementsCache[index];
      const element = scroller.current;
      if (item && element && Math.abs(item.start - element.scrollTop - anchor.current.offset) > 0.5) {
        virtualizer.scrollToOffset(item.start - anchor.current.offset);
      }
    }
    recordView();
    // The sizes measured of events no longer held go too: a long scroll would keep them all.
    const [first, last] = [shown[0]!.seq, shown.at(-1)!.seq];
    for (const key of virtualizer.itemSizeCache.keys()) {
      if (typeof key === 'number' && (key < first || key > last)) virtualizer.itemSizeCache.delete(key);
    }
  }, [shown, following, atStart, virtualizer, recordView]);

  // Near either end of the window, the next page is read (one at a time; the window says no
  // at the ends of the history); while the list follows the end, newer pages until the
  // window holds the newest events. With too few events shown to scroll (raw lines
  // hidden), older pages are read by themselves, until FEW_ITEMS are shown or
  // AUTO_READ_SPAN seqs are held (past that, "Oldest events" and "Show raw lines" are the
  // person's to choose).
  useEffect(() => {
    if (!opened) return;
    if (!atEnd && following) history.loadNewer();
    if (shown.length < FEW_ITEMS) {
      if (!atStart && to - from + 1 < AUTO_READ_SPAN) history.loadOlder();
      return;
    }
    if (!atStart && !following && firstIndex !== undefined && firstIndex < EDGE_ITEMS) history.loadOlder();
    if (!atEnd && lastIndex !== undefined && lastIndex >= shown.length - EDGE_ITEMS) history.loadNewer();
  }, [opened, firstIndex, lastIndex, shown, from, to, following, atStart, atEnd, history]);

  useEffect(() => {
    const element = scroller.current;
    if (!element) return;
    const onScroll = (): void => {
      const atBottom = element.scrollHeight - element.scrollTop - element.clientHeight < FOLLOW_SLACK_PX;
      // At the bottom, it follows once the window holds the newest events (and goes on
      // following if it did: a page read with the newest coming keeps it at the end).
      const follow = atBottom && (latest.current.atEnd || latest.current.following);
      latest.current.following = follow;
      setFollowing(follow);
      recordView();
    };
    element.addEventListener('scroll', onScroll, { passive: true });
    return () => element.removeEventListener('scroll', onScroll);
  }, [recordView]);

  // Left at the bottom when the window came to hold the newest events (a page read that
  // added nothing below): it follows from there, as a scroll to the bottom would.
  const wasAtEnd = useRef(atEnd);
  useEffect(() => {
    const cameToEnd = atEnd && !wasAtEnd.current;
    wasAtEnd.current = atEnd;
    const element = scroller.current;
    if (!element || !cameToEnd || following) return;
    if (element.scrollHeight - element.scrollTop - element.clientHeight < FOLLOW_SLACK_PX) setFollowing(true);
  }, [atEnd, following]);

  const follow = (): void => {
    setFollowing(true);
    latest.current.following = true;
    if (!atEnd) history.toEnd();
  };
  const goToStart = (): void => {
    setFollowing(false);
    latest.current.following = false;
    toStart.current = true;
    if (atStart) virtualizer.scrollToOffset(0);
    else history.toStart();
  };

  return (
    <section className="events" aria-label="Events">
      <h2>
        Events <small>{lastSeq > 0 ? `#${firstSeq}–#${lastSeq}` : ''}</small>
        {!atStart && (
          <button type="button" className="link" onClick={goToStart}>
            Oldest events
          </button>
        )}
        {!(following && atEnd) && shown.length > 0 && (
          <button type="button" className="link" onClick={follow}>
            Follow new events
          </button>
        )}
        <label
          className="inline raw-toggle"
          title="The JSON lines the agent printed, as it printed them: the other events are read from them. Counted in the part of the history the page holds."
        >
          <input type="checkbox" checked={showRaw} onChange={(event) => setShowRaw(event.target.checked)} />
          {`Show raw lines (${rawLines})`}
        </label>
      </h2>
      {atStart && firstSeq > 1 && (
        <p className="note">Events before #{firstSeq} were dropped by retention ([store] max_events_per_story).</p>
      )}
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      <div
        className="event-scroller"
        ref={scroller}
        role="list"
        aria-label={`Events of ${storyId}`}
        aria-busy={!opened}
        // The range of seqs held in memory (the window), for whoever inspects the page.
        data-held={`${from}-${to}`}
      >
        <div style={{ height: virtualizer.getTotalSize(), position: 'relative' }}>
          {items.map((item) => {
            const event = shown[item.index]!;
            return (
              <div
                key={item.key}
                role="listitem"
                // Its place in the whole history, when every event is shown (-1: not known).
                aria-setsize={showRaw ? lastSeq - firstSeq + 1 : -1}
                aria-posinset={showRaw ? event.seq - firstSeq + 1 : undefined}
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

