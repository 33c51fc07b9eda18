import { AGENT_EVENTS, type AgentEvent, type AgentEventsVariables, EVENT_PAGE, type EventPageVariables, queryText } from './api.js';
import type { Connection } from './client.js';
import type { ResultOf } from './graphql.js';

/** Events read per page: the newest page when a story opens, then one per step of scrolling. */
export const PAGE_SIZE = 200;
/** Events kept in memory at most: pages far from the view are dropped, and read again when needed. */
export const WINDOW_SIZE = 1000;
/** The range held spans this many seqs at most: with the raw lines hidden, their seqs are all it keeps of them. */
export const MAX_SPAN = 20_000;

/** What the Events region knows of a story's history at one moment. */
export interface EventWindowState {
  /** The events held around the view, oldest first, each once: every one in its range but the raw lines when they are hidden. */
  events: readonly AgentEvent[];
  /** The range of seqs held, both included (from = to + 1 when empty): raw lines count in it, shown or not. */
  from: number;
  to: number;
  /** The raw lines (AgentJsonEvent) in the range held, shown or not. */
  rawLines: number;
  /** The oldest event the server keeps (0 when none): older ones were dropped by retention. */
  firstSeq: number;
  /** The newest event known, stored or live. */
  lastSeq: number;
  /** Whether the range held starts at firstSeq: there is nothing older to read. */
  atStart: boolean;
  /** Whether the range held ends at the newest event: live events are added as they come. */
  atEnd: boolean;
  /** Whether the first page was read (before it, an empty list means nothing yet, not "no events"). */
  opened: boolean;
  error: string | undefined;
}

/** Where the list is: a seq in its view, and whether it follows the end. */
export interface View {
  seq: number | undefined;
  following: boolean;
}

interface GraphQLErrorShape {
  message: string;
  extensions?: { code?: string; firstSeq?: number };
}

type Page = NonNullable<ResultOf<typeof EVENT_PAGE>['agent']>;
type PageRequest = Omit<EventPageVariables, 'storyId'>;

/** A page read failed with the server's errors (or the socket's). */
class PageError extends Error {
  constructor(readonly errors: readonly GraphQLErrorShape[]) {
    super(errors[0]?.message ?? 'reading the events failed');
  }
}

/** A JSON line as the agent printed it (AgentJsonEvent): the other events are read from these. */
function isRawLine(event: AgentEvent): boolean {
  return event.__typename === 'AgentJsonEvent';
}

/**
 * A story's history as the Events region holds it: a range of seqs around the view, and
 * its events (without the raw lines while they are hidden), opened on the newest page and
 * moved by the list as a person scrolls.
 *
 * - The newest page is read first (`events(last)`), then live events from the newest seq
 *   that first read saw (`agentEvents(afterSeq)`; if a jump replaced that read, from the
 *   jump's). The subscription's variables are the object graphql-ws sends again when it
 *   reconnects, so `afterSeq` is kept at the last live seq received: after a dropped
 *   connection the server replays from there, with no gap and no duplicate.
 * - Live events join the range only while it reaches the newest event (`atEnd`) and only
 *   when they follow its last seq; otherwise they are counted (`lastSeq`) and left to be
 *   read as a page when the list gets there. The newest live events are also kept in a
 *   short tail, so that a page read forwards meets the live stream without reading again
 *   what came while it was read.
 * - `loadOlder()` and `loadNewer()` read one page at a time, next to the range: the server
 *   keeps nothing between (a batch the database refused leaves a hole in the seqs, which
 *   is no gap). A page whose edge moved while it was read is not applied.
 * - When more than WINDOW_SIZE events are held, or the range spans more than MAX_SPAN
 *   seqs, it gives up its other end: the newest after reading older pages, the oldest
 *   after reading newer ones, and, once per frame for live events, the end farther from
 *   the view (the oldest while the list follows the end).
 * - `toStart()` and `toEnd()` move the range to the oldest or the newest page at once.
 *
 * Changes are published at most once per animation frame, so a flood renders at the
 * page's pace.
 */
export class EventWindow {
  readonly #connection: Connection;
  readonly #storyId: string;
  #showRaw: boolean;
  /** The events held: those of the range [#from, #to], but the raw lines while hidden. */
  #events: AgentEvent[] = [];
  /** The seqs of the raw lines in the range, shown or not (for their count). */
  #rawSeqs: number[] = [];
  /** The range of seqs read, both included; empty (from = to + 1) before anything is. */
  #from = 1;
  #to = 0;
  #firstSeq = 0;
  #lastSeq = 0;
  #atEnd = false;
  #opened = false;
  #error: string | undefined;
  /** The newest live events, consecutive: fewer than twice PAGE_SIZE (cut back to PAGE_SIZE there). */
  #tail: AgentEvent[] = [];
  #view: View = { seq: undefined, following: true };
  /** Whether a page is being read: one at a time. */
  #reading = false;
  /** Bumped by every jump, so that a page read for an earlier position is not applied. */
  #generation = 0;
  #closed = false;
  /** Ends the live subscription; undefined until it is opened, after the first page read. */
  #unsubscribe: (() => void) | undefined;
  /** The page reads in flight, ended on close. */
  readonly #reads = new Set<() => void>();
  /** The wait before reading the first page again after it failed (doubled each time, up to 30 s). */
  #retryMs = 1000;
  #retry: ReturnType<typeof setTimeout> | undefined;
  #frame: number | undefined;
  #snapshot: EventWindowState;
  readonly #listeners = new Set<() => void>();

  constructor(connection: Connection, storyId: string, showRaw: boolean) {
    this.#connection = connection;
    this.#storyId = storyId;
    this.#showRaw = showRaw;
    this.#snapshot = this.#state();
  }

  /**
   * Reads the newest page, then follows the live events (again after a close: React may
   * open twice). The live events start once a first page was read, whichever page that
   * was (see #follow).
   */
  open(): void {
    this.#closed = false;
    void this.#jump({ last: PAGE_SIZE });
  }

  close(): void {
    this.#closed = true;
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    for (const end of this.#reads) end();
    this.#reads.clear();
    clearTimeout(this.#retry);
    if (this.#frame !== undefined) cancelAnimationFrame(this.#frame);
    this.#frame = undefined;
  }

  subscribe = (listener: () => void): (() => void) => {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  };

  getSnapshot = (): EventWindowState => this.#snapshot;

  /** The list says where its view is; it decides which end of an outgrown range is given up. */
  setView(view: View): void {
    this.#view = view;
  }

  /** Shows or hides the raw lines: the range is read again, at the end or around the view. */
  setShowRaw(show: boolean): void {
    if (show === this.#showRaw) return;
    this.#showRaw = show;
    const { seq, following } = this.#view;
    if (following || seq === undefined) void this.#jump({ last: PAGE_SIZE });
    else void this.#jump({ before: seq + PAGE_SIZE / 2, last: PAGE_SIZE });
  }

  /** Reads the page before the range, unless it starts at firstSeq or a page is being read. */
  loadOlder(): void {
    if (this.#reading || !this.#opened || this.#from <= Math.max(this.#firstSeq, 1)) return;
    const from = this.#from;
    void this.#read({ before: from, last: PAGE_SIZE }, (page) => {
      // Live events moved the range meanwhile (trimmed its start): read again from there.
      if (this.#from !== from) return;
      // The events kept in the PAGE_SIZE seqs before the range (a batch the database refused
      // leaves a hole in the seqs, which is no gap to fill): the range now starts there.
      const older = page.events.filter((event) => event.seq < from);
      if (older.length > 0) this.#add(older, 'start');
      this.#from = Math.min(this.#from, Math.max(page.firstSeq, 1, from - PAGE_SIZE));
      this.#trim('end');
    });
  }

  /** Reads the page after the range, unless it reaches the newest event or a page is being read. */
  loadNewer(): void {
    if (this.#reading || !this.#opened || this.#atEnd) return;
    const to = this.#to;
    void this.#read({ afterSeq: to, first: PAGE_SIZE }, (page) => {
      if (this.#to !== to) return;
      // The oldest events kept after the range. A page not full reached the newest stored
      // (newer ones may still be being written: they come live, or are read again).
      const newer = page.events.filter((event) => event.seq > to);
      if (newer.length > 0) this.#add(newer, 'end');
      this.#joinTail(page.events.length < PAGE_SIZE);
      this.#trim('start');
    });
  }

  /** Moves the range to the oldest events kept. */
  toStart(): void {
    void this.#jump({ afterSeq: Math.max(this.#firstSeq - 1, 0), first: PAGE_SIZE });
  }

  /** Moves the range to the newest events. */
  toEnd(): void {
    void this.#jump({ last: PAGE_SIZE });
  }

  #subscribe(afterSeq: number): void {
    if (this.#closed) return;
    const variables = { storyId: this.#storyId, afterSeq } satisfies AgentEventsVariables;
    /** Set when retention dropped events the subscription asked for: it ends, and starts again from there. */
    let restartFrom: number | undefined;
    const failed = (errors: readonly GraphQLErrorShape[]): void => {
      const truncated = errors.find((item) => item.extensions?.code === 'EVENTS_TRUNCATED')?.extensions?.firstSeq;
      if (truncated) {
        // Retention dropped events the page had not received (a long disconnection):
        // follow on from the oldest kept; the range reads what it needs as pages.
        this.#firstSeq = Math.max(this.#firstSeq, truncated);
        restartFrom = truncated - 1;
      } else {
        this.#error = errors[0]?.message ?? 'the event stream ended with an error';
      }
      this.#schedule();
    };
    const restart = (): void => {
      if (restartFrom === undefined || this.#closed) return;
      const from = restartFrom;
      restartFrom = undefined;
      this.#subscribe(from);
    };
    this.#unsubscribe = this.#connection.ws.subscribe<ResultOf<typeof AGENT_EVENTS>>(
      { query: queryText(AGENT_EVENTS), variables },
      {
        next: (result) => {
          // An error of the stream (EVENTS_TRUNCATED) comes as its last result, then it completes.
          if (result.errors?.length) failed(result.errors as GraphQLErrorShape[]);
          const event = result.data?.agentEvents;
          if (!event || event.seq <= variables.afterSeq) return;
          variables.afterSeq = event.seq;
          this.#live(event);
        },
        error: (reason) => {
          failed(Array.isArray(reason) ? (reason as GraphQLErrorShape[]) : []);
          restart();
        },
        complete: restart,
      },
    );
  }

  #live(event: AgentEvent): void {
    this.#lastSeq = Math.max(this.#lastSeq, event.seq);
    if (this.#tail.length > 0 && this.#tail.at(-1)!.seq !== event.seq - 1) this.#tail = [];
    this.#tail.push(event);
    // Cut back to PAGE_SIZE once it holds twice that: not a shift of the array per event.
    if (this.#tail.length >= 2 * PAGE_SIZE) this.#tail = this.#tail.slice(-PAGE_SIZE);
    if (this.#atEnd) {
      if (event.seq === this.#to + 1) {
        // Trimmed once per frame (#schedule): a flood adds many events in one. A page ago
        // over its bounds (a hidden tab runs no frames), at once.
        this.#add([event], 'end');
        if (this.#events.length > WINDOW_SIZE + PAGE_SIZE || this.#to - this.#from + 1 > MAX_SPAN + PAGE_SIZE) this.#trim('view');
      } else if (event.seq > this.#to + 1) {
        // Events came that the range has not got: they are read as a page.
        this.#atEnd = false;
      }
    }
    this.#schedule();
  }

  /** Adds consecutive events at one end of the range (they follow it, or precede it). */
  #add(events: readonly AgentEvent[], end: 'start' | 'end'): void {
    const shown: AgentEvent[] = end === 'end' ? this.#events : [];
    const raw: number[] = end === 'end' ? this.#rawSeqs : [];
    for (const event of events) {
      const isRaw = isRawLine(event);
      if (isRaw) raw.push(event.seq);
      if (!isRaw || this.#showRaw) shown.push(event);
    }
    if (end === 'end') {
      this.#to = events.at(-1)!.seq;
    } else {
      this.#events = shown.concat(this.#events);
      this.#rawSeqs = raw.concat(this.#rawSeqs);
      this.#from = events[0]!.seq;
    }
  }

  /**
   * Adds the live tail's events that follow the range. The range is at the end when it
   * holds the newest seq known, or when the page just read reached the newest stored
   * (`readToStored`): the events being written after it then come live and join it, and
   * one that does not follow its last seq sends it back to reading pages. Live events
   * received past it that could not join (more came during the read than the tail keeps)
   * are read as pages.
   */
  #joinTail(readToStored: boolean): void {
    const from = this.#tail.findIndex((event) => event.seq === this.#to + 1);
    if (from !== -1) this.#add(this.#tail.slice(from), 'end');
    const missed = (this.#tail.at(-1)?.seq ?? 0) > this.#to;
    this.#atEnd = (readToStored || this.#to >= this.#lastSeq) && !missed;
  }

  /**
   * Opens the live subscription once a first page was read: from the range's last seq when
   * it is at the end (what is still being written then comes live), else from the newest
   * seq that read saw (what lies between is read as pages, not streamed to be dropped).
   */
  #follow(page: Page): void {
    if (this.#unsubscribe || this.#closed) return;
    this.#subscribe(this.#atEnd ? this.#to : Math.max(page.lastSeq, this.#to));
  }

  /**
   * Gives up one end of the range until at most WINDOW_SIZE events are held and it spans at
   * most MAX_SPAN seqs ('view': the end farther from the view).
   */
  #trim(end: 'start' | 'end' | 'view'): void {
    const excess = this.#events.length - WINDOW_SIZE;
    const overSpan = this.#to - this.#from + 1 - MAX_SPAN;
    if (excess <= 0 && overSpan <= 0) return;
    if (end === 'view') {
      // The end with more events between it and the view (or, for the span, more seqs).
      const { seq, following } = this.#view;
      const index = seq === undefined ? -1 : this.#events.findIndex((event) => event.seq >= seq);
      const nearerEnd =
        excess > 0 && index !== -1 ? index >= this.#events.length - 1 - index : seq !== undefined && this.#to - seq < seq - this.#from;
      end = following || seq === undefined || nearerEnd ? 'start' : 'end';
    }
    if (end === 'start') {
      const from = Math.max(this.#from + Math.max(overSpan, 0), this.#events[Math.max(excess, 0)]?.seq ?? this.#from);
      this.#events = this.#events.filter((event) => event.seq >= from);
      this.#rawSeqs = this.#rawSeqs.filter((seq) => seq >= from);
      this.#from = from;
    } else {
      const to = Math.min(this.#to - Math.max(overSpan, 0), this.#events.at(-1 - Math.max(excess, 0))?.seq ?? this.#to);
      this.#events = this.#events.filter((event) => event.seq <= to);
      this.#rawSeqs = this.#rawSeqs.filter((seq) => seq <= to);
      this.#to = to;
      this.#atEnd = false;
    }
  }

  /** Replaces the range with one page (the newest, the oldest, or the one around the view). */
  async #jump(request: PageRequest): Promise<void> {
    this.#generation++;
    this.#reading = false;
    clearTimeout(this.#retry);
    this.#retry = undefined;
    await this.#read(request, (page) => {
      this.#events = [];
      this.#rawSeqs = [];
      if (page.events.length > 0) {
        this.#from = page.events[0]!.seq;
        this.#to = this.#from - 1;
        this.#add(page.events, 'end');
      } else {
        // Nothing stored there (a story without events yet): an empty range where it was asked for.
        this.#to = 'afterSeq' in request ? (request.afterSeq ?? 0) : (request.before ?? 1) - 1;
        this.#from = this.#to + 1;
      }
      // The newest page, or a page forwards not full, reached the newest stored.
      const newest = 'last' in request && request.before === undefined;
      this.#joinTail(newest || ('first' in request && page.events.length < PAGE_SIZE));
      this.#follow(page);
    });
  }

  /** Reads a page and applies it, unless a jump came in between; on an error the range stays as it was. */
  async #read(request: PageRequest, apply: (page: Page) => void): Promise<void> {
    const generation = this.#generation;
    this.#reading = true;
    let backingOff = false;
    try {
      const page = await this.#page(request);
      if (this.#closed || generation !== this.#generation) return;
      this.#firstSeq = page.firstSeq;
      this.#lastSeq = Math.max(this.#lastSeq, page.lastSeq);
      this.#error = undefined;
      this.#retryMs = 1000;
      this.#opened = true;
      apply(page);
    } catch (error) {
      if (this.#closed || generation !== this.#generation) return;
      const truncated = error instanceof PageError ? error.errors.find((item) => item.extensions?.code === 'EVENTS_TRUNCATED') : undefined;
      if (truncated?.extensions?.firstSeq) {
        // Retention dropped the events after the range: the list goes on at the end if it
        // follows it, else from the oldest kept.
        this.#firstSeq = truncated.extensions.firstSeq;
        if (this.#view.following) void this.#jump({ last: PAGE_SIZE });
        else void this.#jump({ afterSeq: truncated.extensions.firstSeq - 1, first: PAGE_SIZE });
        return;
      }
      this.#error = error instanceof Error ? error.message : String(error);
      // Not even a first page: read it again; else no page is read for a while. Either
      // way less and less often while reads fail.
      const first = !this.#unsubscribe;
      backingOff = true;
      this.#retry = setTimeout(() => {
        this.#retry = undefined;
        if (first) void this.#jump(request);
        else if (generation === this.#generation) this.#reading = false;
        this.#schedule();
      }, this.#retryMs);
      this.#retryMs = Math.min(this.#retryMs * 2, 30_000);
      return;
    } finally {
      if (generation === this.#generation && !backingOff) this.#reading = false;
      this.#schedule();
    }
  }

  /** One page of the story's events, read over the page's socket (not urql, whose cache would keep every page). */
  #page(request: PageRequest): Promise<Page> {
    let end: (() => void) | undefined;
    const read = new Promise<Page>((resolve, reject) => {
      let page: Page | undefined;
      end = this.#connection.ws.subscribe<ResultOf<typeof EVENT_PAGE>>(
        { query: queryText(EVENT_PAGE), variables: { storyId: this.#storyId, ...request } },
        {
          next: (result) => {
            if (result.errors?.length) reject(new PageError(result.errors as GraphQLErrorShape[]));
            else page = result.data?.agent ?? { firstSeq: 0, lastSeq: 0, events: [] };
          },
          error: (reason) => reject(new PageError(Array.isArray(reason) ? (reason as GraphQLErrorShape[]) : [])),
          complete: () => (page ? resolve(page) : reject(new PageError([]))),
        },
      );
      this.#reads.add(end);
    });
    return read.finally(() => end && this.#reads.delete(end));
  }

  #state(): EventWindowState {
    return {
      // A copy: the held array grows in place, and React compares by identity.
      events: this.#events.slice(),
      from: this.#from,
      to: this.#to,
      rawLines: this.#rawSeqs.length,
      firstSeq: this.#firstSeq,
      lastSeq: this.#lastSeq,
      atStart: this.#opened && this.#from <= Math.max(this.#firstSeq, 1),
      atEnd: this.#atEnd,
      opened: this.#opened,
      error: this.#error,
    };
  }

  #schedule(): void {
    if (this.#closed) return;
    this.#frame ??= requestAnimationFrame(() => {
      this.#frame = undefined;
      this.#trim('view');
      this.#snapshot = this.#state();
      for (const listener of this.#listeners) listener();
    });
  }
}
