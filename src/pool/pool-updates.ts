import { AgentUpdates } from './agent-updates.js';
import type { AgentInfo } from './stories.js';

/**
 * While a story's events flow, its agent is pushed to update readers at most this often
 * (its lastSeq and lastEventAt), besides every change of its state, which goes at once.
 */
export const ACTIVITY_UPDATE_MS = 1000;

/**
 * Who hears of agents' changes: listeners called at once, and update readers (a
 * dashboard's live list) that keep the newest state per story. Events flowing count as a
 * change at most once per {@link ACTIVITY_UPDATE_MS}.
 */
export class PoolUpdates {
  readonly #listeners = new Set<(agent: AgentInfo) => void>();
  readonly #readers = new Set<AgentUpdates<AgentInfo>>();
  /** Stories whose events flowed since their agent was last pushed to update readers. */
  readonly #activityTimers = new Map<string, NodeJS.Timeout>();
  readonly #agentOf: (storyId: string) => AgentInfo | undefined;
  #closed = false;

  /** @param agentOf a story's agent as it is now. */
  constructor(agentOf: (storyId: string) => AgentInfo | undefined) {
    this.#agentOf = agentOf;
  }

  /** Calls `listener` with a story's agent whenever it changes. */
  listen(listener: (agent: AgentInfo) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** A new update reader; ended at once after {@link close}. */
  reader(): AsyncIterableIterator<AgentInfo> {
    const reader: AgentUpdates<AgentInfo> = new AgentUpdates(() => this.#readers.delete(reader));
    if (this.#closed) void reader.return();
    else this.#readers.add(reader);
    return reader;
  }

  /** A story's agent changed: everyone hears of it now. */
  changed(storyId: string): void {
    if (this.#listeners.size === 0 && this.#readers.size === 0) return;
    const agent = this.#agentOf(storyId);
    if (!agent) return;
    for (const listener of this.#listeners) listener(agent);
    for (const reader of this.#readers) reader.push(agent);
  }

  /** Events were appended: update readers hear of it within ACTIVITY_UPDATE_MS, once per window. */
  eventsFlowed(storyId: string): void {
    if (this.#readers.size === 0 || this.#activityTimers.has(storyId)) return;
    const timer = setTimeout(() => {
      this.#activityTimers.delete(storyId);
      this.changed(storyId);
    }, ACTIVITY_UPDATE_MS);
    timer.unref();
    this.#activityTimers.set(storyId, timer);
  }

  /** Ends every reader and timer. */
  close(): void {
    this.#closed = true;
    for (const timer of this.#activityTimers.values()) clearTimeout(timer);
    this.#activityTimers.clear();
    for (const reader of [...this.#readers]) void reader.return();
  }
}
