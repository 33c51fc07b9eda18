import type { EventRecord, StateStore } from '../store/state-store.js';
import { type EventStorage, EventsTruncatedError, type ObservedBounds, type SeqBounds } from './event-log.js';
import type { AgentEvent } from './events.js';

/**
 * How many of each story's newest events are also kept in memory, so that live readers
 * (the common case) never touch the database.
 * @default 500
 */
export const TAIL_EVENTS = 500;

interface StoryTail {
  events: AgentEvent[];
  /** Index in `events` of the oldest cached event. */
  head: number;
  firstSeq: number;
  lastSeq: number;
  lastAt: Date | undefined;
}

/**
 * An event's own fields as stored. A JSON line is stored as the agent printed it; the
 * other kinds as JSON of their fields.
 */
function payloadOf(event: AgentEvent): string {
  if (event.type === 'json') return event.raw ?? JSON.stringify(event.data);
  const { seq: _seq, storyId: _storyId, run: _run, at: _at, type: _type, ...fields } = event;
  return JSON.stringify(fields);
}

function toRecord(event: AgentEvent): EventRecord {
  return { storyId: event.storyId, seq: event.seq, run: event.run, at: event.at, type: event.type, payload: payloadOf(event) };
}

function fromRecord(record: EventRecord): AgentEvent {
  const place = { seq: record.seq, storyId: record.storyId, run: record.run, at: record.at };
  if (record.type === 'json') return { type: 'json', data: JSON.parse(record.payload), raw: record.payload, ...place };
  return { ...(JSON.parse(record.payload) as object), type: record.type, ...place } as AgentEvent;
}

/**
 * Events in the state database: every batch is written (one transaction) before anyone can
 * read it, replays come from the database however far back they go, and each story's
 * newest {@link TAIL_EVENTS} are cached in memory for live readers. Each story's range is
 * kept in memory too (loaded by {@link load} at start; this storage is its stories' only
 * writer), so that bounds never wait for the database. Retention keeps each story's newest
 * `maxEventsPerStory`; the oldest are deleted in batches, and kept events never change seq.
 */
export class StoredEventStorage implements EventStorage {
  readonly #store: StateStore;
  readonly #maxEventsPerStory: number;
  readonly #stories = new Map<string, StoryTail>();

  constructor(store: StateStore, maxEventsPerStory: number) {
    this.#store = store;
    this.#maxEventsPerStory = maxEventsPerStory;
  }

  /** Reads the stored range of each story named (at start, before anything is appended). */
  async load(storyIds: Iterable<string>): Promise<void> {
    for (const storyId of storyIds) {
      const stored = await this.#store.eventBounds(storyId);
      if (!stored) continue;
      this.#stories.set(storyId, { events: [], head: 0, firstSeq: stored.firstSeq, lastSeq: stored.lastSeq, lastAt: stored.lastAt });
    }
  }

  async append(storyId: string, events: readonly AgentEvent[]): Promise<void> {
    await this.#store.appendEvents(events.map(toRecord));
    const story = this.#story(storyId);
    for (const event of events) story.events.push(event);
    story.lastSeq = events.at(-1)?.seq ?? story.lastSeq;
    story.lastAt = events.at(-1)?.at ?? story.lastAt;
    if (story.events.length - story.head > TAIL_EVENTS) story.head = story.events.length - TAIL_EVENTS;
    if (story.head > TAIL_EVENTS) {
      story.events = story.events.slice(story.head);
      story.head = 0;
    }
    // Deleting in batches (10% over the limit) keeps retention off the per-event path.
    const slack = Math.max(100, Math.floor(this.#maxEventsPerStory / 10));
    if (story.lastSeq - story.firstSeq + 1 > this.#maxEventsPerStory + slack) {
      story.firstSeq = story.lastSeq - this.#maxEventsPerStory + 1;
      await this.#store.deleteEventsBefore(storyId, story.firstSeq);
    }
  }

  async read(storyId: string, fromSeq: number, limit: number): Promise<AgentEvent[]> {
    const story = this.#story(storyId);
    const from = Math.max(fromSeq, story.firstSeq);
    const cached = story.events[story.head];
    if (cached && from >= cached.seq) {
      // By seq, not by position: a batch the database refused left a hole in the numbers.
      let low = story.head;
      let high = story.events.length;
      while (low < high) {
        const middle = (low + high) >>> 1;
        if (story.events[middle]!.seq < from) low = middle + 1;
        else high = middle;
      }
      return story.events.slice(low, low + limit);
    }
    if (from > story.lastSeq) return [];
    const events = (await this.#store.readEvents(storyId, from, limit)).map(fromRecord);
    // Another server's retention may have dropped them since this one last heard of the
    // story: the range is read again, and a reader asking below it is told so.
    if (events.length > 0 && events[0]!.seq > from) {
      const stored = await this.#store.eventBounds(storyId);
      if (stored && stored.firstSeq > story.firstSeq) story.firstSeq = stored.firstSeq;
      if (from < story.firstSeq) throw new EventsTruncatedError(storyId, from, story.firstSeq);
    }
    return events;
  }

  bounds(storyId: string): SeqBounds {
    const { firstSeq, lastSeq } = this.#story(storyId);
    return { firstSeq, lastSeq };
  }

  lastAt(storyId: string): Date | undefined {
    return this.#stories.get(storyId)?.lastAt;
  }

  /**
   * Another server stored the story's events up to `bounds.lastSeq`: its range moves there,
   * and the cached tail is dropped (it would miss them), so reads go to the database until
   * this server appends to the story again.
   */
  observe(storyId: string, bounds: ObservedBounds): void {
    const story = this.#story(storyId);
    if (bounds.lastSeq <= story.lastSeq) return;
    story.events = [];
    story.head = 0;
    story.firstSeq = Math.max(story.firstSeq, bounds.firstSeq);
    story.lastSeq = bounds.lastSeq;
    story.lastAt = bounds.lastAt;
  }

  #story(storyId: string): StoryTail {
    let story = this.#stories.get(storyId);
    if (!story) {
      story = { events: [], head: 0, firstSeq: 1, lastSeq: 0, lastAt: undefined };
      this.#stories.set(storyId, story);
    }
    return story;
  }
}
