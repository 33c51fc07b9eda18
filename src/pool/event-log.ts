import { AgentPoolError } from '../errors.js';
import type { AgentEvent, AgentEventPayload, EventPlace } from './events.js';

/** A replay asked for events that retention has already dropped. */
export class EventsTruncatedError extends AgentPoolError {
  constructor(storyId: string, requestedSeq: number, firstSeq: number) {
    super(
      'EVENTS_TRUNCATED',
      `events of story ${storyId} before seq ${firstSeq} are no longer kept (asked from seq ${requestedSeq}): ` +
        `subscribe again with afterSeq: ${firstSeq - 1} or more`,
      { extensions: { firstSeq } },
    );
  }
}

/** The seq range of a story's kept events. `lastSeq` is 0 for a story without events. */
export interface SeqBounds {
  /** The oldest event still kept (lastSeq + 1 when none is kept). */
  firstSeq: number;
  /** The newest event ever appended. */
  lastSeq: number;
}

/**
 * Where events are kept. The log numbers them and wakes readers; the storage keeps them
 * and applies retention (dropping the oldest), never renumbering what it keeps. Reads and
 * appends return Promises, so that an asynchronous database fits; the range of each story
 * is known without waiting (the storage is its stories' only writer).
 */
export interface EventStorage {
  /**
   * Keeps a batch of events of one story; they follow its newest event without a gap. The
   * log calls it for a story only once the previous batch is kept.
   */
  append(storyId: string, events: readonly AgentEvent[]): Promise<void>;
  /** Up to `limit` kept events of a story with `seq >= fromSeq`, in seq order. */
  read(storyId: string, fromSeq: number, limit: number): Promise<AgentEvent[]>;
  /** The story's kept range: what {@link append} has finished. */
  bounds(storyId: string): SeqBounds;
  /** When the story's newest kept event was recorded. */
  lastAt(storyId: string): Date | undefined;
  /**
   * Another writer (a server of the cluster) stored the story's events up to
   * `bounds.lastSeq`: reads from now on find them in the database.
   */
  observe?(storyId: string, bounds: ObservedBounds): void;
}

/** A story's stored range as another writer left it. */
export interface ObservedBounds extends SeqBounds {
  /** When its newest event was recorded. */
  lastAt: Date;
}

interface StoryEvents {
  events: AgentEvent[];
  /** Index in `events` of the oldest kept event; dropped ones are compacted away in bulk. */
  head: number;
  lastSeq: number;
}

/**
 * Keeps each story's newest `maxEventsPerStory` events in memory; when a story has more,
 * its oldest are dropped (a reader that still wants them gets EVENTS_TRUNCATED).
 */
export class MemoryEventStorage implements EventStorage {
  readonly #stories = new Map<string, StoryEvents>();

  /** @param maxEventsPerStory events kept per story. */
  constructor(readonly maxEventsPerStory: number) {}

  async append(storyId: string, events: readonly AgentEvent[]): Promise<void> {
    let story = this.#stories.get(storyId);
    if (!story) {
      story = { events: [], head: 0, lastSeq: 0 };
      this.#stories.set(storyId, story);
    }
    for (const event of events) story.events.push(event);
    story.lastSeq = events.at(-1)?.seq ?? story.lastSeq;
    const overflow = story.events.length - story.head - this.maxEventsPerStory;
    if (overflow > 0) story.head += overflow;
    // Dropping is O(1) per event: the array is compacted only once half of it is dead.
    if (story.head > 1024 && story.head * 2 > story.events.length) {
      story.events = story.events.slice(story.head);
      story.head = 0;
    }
  }

  async read(storyId: string, fromSeq: number, limit: number): Promise<AgentEvent[]> {
    const story = this.#stories.get(storyId);
    if (!story || story.head >= story.events.length) return [];
    const firstSeq = story.events[story.head]!.seq;
    const start = story.head + Math.max(0, fromSeq - firstSeq);
    return story.events.slice(start, start + limit);
  }

  bounds(storyId: string): SeqBounds {
    const story = this.#stories.get(storyId);
    if (!story) return { firstSeq: 1, lastSeq: 0 };
    const oldest = story.events[story.head];
    return { firstSeq: oldest ? oldest.seq : story.lastSeq + 1, lastSeq: story.lastSeq };
  }

  lastAt(storyId: string): Date | undefined {
    return this.#stories.get(storyId)?.events.at(-1)?.at;
  }
}

/**
 * How many events a reader takes from storage at a time. A reader that has delivered this
 * many without waiting (a replay, or one catching up) lets the event loop turn before it
 * reads the next page, so that replays of long histories share the thread with every other
 * client instead of holding it until they are done.
 */
const READ_PAGE_SIZE = 256;

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * The event log of every story: one writer per story owns `seq`; each batch is kept by the
 * storage before any reader sees it (batches of a story are kept one after another, in
 * order); readers are cursors that pull from storage, so a slow reader holds no queue of
 * its own and costs no memory.
 */
export class EventLog {
  readonly #storage: EventStorage;
  /** The newest seq given to each story's events (kept or on the way). */
  readonly #lastSeq = new Map<string, number>();
  /** When each story's newest event was recorded (kept or on the way). */
  readonly #lastAt = new Map<string, Date>();
  /** Each story's batch on its way to the storage, if one is. */
  readonly #storing = new Map<string, Promise<void>>();
  readonly #appendListeners = new Set<(storyId: string, local: boolean) => void>();
  readonly #errorListeners = new Set<(storyId: string, error: unknown) => void>();
  readonly #waiting = new Map<string, Set<EventCursor>>();
  readonly #cursors = new Set<EventCursor>();

  constructor(storage: EventStorage) {
    this.#storage = storage;
  }

  /** The seq of the story's newest event, 0 if it has none (the writer's view: it may still be on its way to the storage). */
  lastSeq(storyId: string): number {
    let lastSeq = this.#lastSeq.get(storyId);
    if (lastSeq === undefined) {
      lastSeq = this.#storage.bounds(storyId).lastSeq;
      this.#lastSeq.set(storyId, lastSeq);
    }
    return lastSeq;
  }

  /** When the story's newest event was recorded (the writer's view, as {@link lastSeq}); undefined if it has none. */
  lastEventAt(storyId: string): Date | undefined {
    return this.#lastAt.get(storyId) ?? this.#storage.lastAt(storyId);
  }

  /**
   * Calls `listener` with the story's id after each append is kept, once its readers were
   * woken; `local` is false for events another server stored ({@link observed}).
   */
  onAppend(listener: (storyId: string, local: boolean) => void): () => void {
    this.#appendListeners.add(listener);
    return () => this.#appendListeners.delete(listener);
  }

  /** Calls `listener` when the storage refuses a story's batch (the events are lost; the story's writer must end). */
  onError(listener: (storyId: string, error: unknown) => void): () => void {
    this.#errorListeners.add(listener);
    return () => this.#errorListeners.delete(listener);
  }

  /**
   * Numbers the payloads (the story's next seqs) and stamps them with the time, at once;
   * then stores them, and only once they are kept wakes the story's readers. The log takes
   * the payload objects over: they become the events. A storage that refuses the batch is
   * reported to {@link onError}.
   * @returns the events, numbered.
   */
  append(storyId: string, run: number, payloads: readonly AgentEventPayload[]): AgentEvent[] {
    if (payloads.length === 0) return [];
    let seq = this.lastSeq(storyId);
    const at = new Date();
    // The log takes the payloads over: each becomes its event in place, without a copy per event.
    const events = payloads.map((payload) => {
      const event = payload as AgentEventPayload & EventPlace;
      event.seq = ++seq;
      event.storyId = storyId;
      event.run = run;
      event.at = at;
      return event as AgentEvent;
    });
    this.#lastSeq.set(storyId, seq);
    this.#lastAt.set(storyId, at);
    const previous = this.#storing.get(storyId);
    const storing = (previous ? previous.then(() => this.#storage.append(storyId, events)) : this.#storage.append(storyId, events)).then(
      () => this.#kept(storyId, true),
      (error: unknown) => {
        for (const listener of this.#errorListeners) listener(storyId, error);
      },
    );
    this.#storing.set(storyId, storing);
    void storing.finally(() => {
      if (this.#storing.get(storyId) === storing) this.#storing.delete(storyId);
    });
    return events;
  }

  /** Settles once every batch appended so far is kept (or refused). */
  async settled(storyId?: string): Promise<void> {
    if (storyId !== undefined) await this.#storing.get(storyId);
    else await Promise.all(this.#storing.values());
  }

  /**
   * Another server stored the story's events up to `bounds.lastSeq` (its bell on the bus, or
   * the database read again after the bus was lost): readers are woken to read them from
   * the storage. An older or equal range changes nothing. Only a storage over a shared
   * database can observe.
   */
  observed(storyId: string, bounds: ObservedBounds): void {
    const storage = this.#storage;
    if (!storage.observe || bounds.lastSeq <= this.lastSeq(storyId)) return;
    storage.observe(storyId, bounds);
    this.#lastSeq.set(storyId, bounds.lastSeq);
    this.#lastAt.set(storyId, bounds.lastAt);
    this.#kept(storyId, false);
  }

  /**
   * Forgets the numbers given to the story's events that the storage did not keep (they
   * were refused): the next seq follows what the storage has.
   */
  rewind(storyId: string): void {
    if (this.#storing.has(storyId)) return;
    this.#lastSeq.delete(storyId);
    this.#lastAt.delete(storyId);
  }

  #kept(storyId: string, local: boolean): void {
    const waiting = this.#waiting.get(storyId);
    if (waiting) {
      this.#waiting.delete(storyId);
      for (const cursor of waiting) cursor.wake();
    }
    for (const listener of this.#appendListeners) listener(storyId, local);
  }

  /**
   * Up to `first` kept events of a story with `seq > afterSeq`, in order.
   * @throws EventsTruncatedError when events after `afterSeq` were dropped.
   */
  async page(storyId: string, afterSeq: number, first: number): Promise<AgentEvent[]> {
    const fromSeq = Math.max(afterSeq, 0) + 1;
    const { firstSeq, lastSeq } = this.#storage.bounds(storyId);
    if (fromSeq < firstSeq && fromSeq <= lastSeq) throw new EventsTruncatedError(storyId, fromSeq, firstSeq);
    return this.#storage.read(storyId, fromSeq, first);
  }

  /**
   * Up to `last` kept events of a story with `seq < before` (the newest when `before` is
   * undefined), in seq order: a page backwards, one range read (seqs have no gaps). What
   * retention dropped is simply not there: never {@link EventsTruncatedError}.
   */
  async pageBefore(storyId: string, before: number | undefined, last: number): Promise<AgentEvent[]> {
    const { firstSeq, lastSeq } = this.#storage.bounds(storyId);
    const end = Math.min(before ?? lastSeq + 1, lastSeq + 1);
    const fromSeq = Math.max(end - last, firstSeq);
    if (end <= fromSeq) return [];
    const events = await this.#storage.read(storyId, fromSeq, end - fromSeq);
    return events.filter((event) => event.seq < end); // retention may have moved on meanwhile
  }

  /** The story's kept range. */
  bounds(storyId: string): SeqBounds {
    return this.#storage.bounds(storyId);
  }

  /**
   * Reads a story's events with `seq > afterSeq` (all when 0): the stored ones, then live
   * ones as they are appended, with no gap and no duplicate. It may be opened before the
   * story has any event, and it stays open until `return()` or {@link close}.
   * @throws EventsTruncatedError (from `next()`) when events it needs were dropped.
   */
  read(storyId: string, afterSeq = 0): AsyncIterableIterator<AgentEvent> {
    const cursor = new EventCursor(this, storyId, Math.max(afterSeq, 0) + 1, {
      read: (fromSeq) => this.#storage.read(storyId, fromSeq, READ_PAGE_SIZE),
      wait: (waiter) => {
        let waiting = this.#waiting.get(storyId);
        if (!waiting) this.#waiting.set(storyId, (waiting = new Set()));
        waiting.add(waiter);
      },
      release: (released) => {
        this.#waiting.get(storyId)?.delete(released);
        this.#cursors.delete(released);
      },
    });
    this.#cursors.add(cursor);
    return cursor;
  }

  /** How many readers are open (for tests and diagnostics). */
  get openReaders(): number {
    return this.#cursors.size;
  }

  /** Ends every reader (they return `done`); used when the server shuts down. */
  close(): void {
    for (const cursor of [...this.#cursors]) void cursor.return();
  }
}

interface CursorHooks {
  read(fromSeq: number): Promise<AgentEvent[]>;
  wait(cursor: EventCursor): void;
  release(cursor: EventCursor): void;
}

/**
 * A reader's position in one story's log. Written by hand rather than as an async
 * generator: a generator parked in `await` cannot be ended by `return()` until the next
 * event arrives, so a disconnected client of an idle story would leak.
 */
class EventCursor implements AsyncIterableIterator<AgentEvent> {
  #nextSeq: number;
  #page: AgentEvent[] = [];
  #index = 0;
  /** Events delivered since the reader last waited for new ones (or let the loop turn). */
  #sinceWait = 0;
  #done = false;
  #wake: (() => void) | undefined;

  constructor(
    private readonly log: EventLog,
    private readonly storyId: string,
    fromSeq: number,
    private readonly hooks: CursorHooks,
  ) {
    this.#nextSeq = fromSeq;
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<AgentEvent> {
    return this;
  }

  wake(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  async next(): Promise<IteratorResult<AgentEvent>> {
    for (;;) {
      if (this.#done) return { done: true, value: undefined };
      if (this.#index < this.#page.length) {
        const event = this.#page[this.#index++]!;
        this.#nextSeq = event.seq + 1;
        this.#sinceWait++;
        return { done: false, value: event };
      }
      const { firstSeq, lastSeq } = this.log.bounds(this.storyId);
      if (this.#nextSeq <= lastSeq) {
        if (this.#nextSeq < firstSeq) {
          const error = new EventsTruncatedError(this.storyId, this.#nextSeq, firstSeq);
          this.#finish();
          throw error;
        }
        if (this.#sinceWait >= READ_PAGE_SIZE) {
          this.#sinceWait = 0;
          await nextTurn();
          continue;
        }
        let page: AgentEvent[];
        try {
          page = await this.hooks.read(this.#nextSeq);
        } catch (error) {
          this.#finish();
          throw error;
        }
        if (this.#done) continue;
        if (page.length === 0) {
          // Nothing kept up to lastSeq: those seqs belonged to a batch the storage refused,
          // and never come. Go past them, letting the loop turn.
          this.#nextSeq = lastSeq + 1;
          await nextTurn();
          continue;
        }
        this.#page = page;
        this.#index = 0;
        continue;
      }
      this.#sinceWait = 0;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        this.hooks.wait(this);
      });
    }
  }

  async return(): Promise<IteratorResult<AgentEvent>> {
    this.#finish();
    return { done: true, value: undefined };
  }

  #finish(): void {
    if (this.#done) return;
    this.#done = true;
    this.#page = [];
    this.hooks.release(this);
    this.wake();
  }
}
