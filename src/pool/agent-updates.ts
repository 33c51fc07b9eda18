/**
 * A reader of agents as they change, for a dashboard's live list. It holds at most one
 * pending value per story, the newest: a slow reader skips states that were already
 * replaced, never a story's latest state, and its memory is bounded by the number of
 * stories. Written by hand, as the event cursors are, so that `return()` ends a reader
 * parked in `next()` at once.
 */
export class AgentUpdates<T extends { storyId: string }> implements AsyncIterableIterator<T> {
  readonly #pending = new Map<string, T>();
  #wake: (() => void) | undefined;
  #done = false;

  /** @param release called once when the reader ends (it unsubscribes). */
  constructor(private readonly release: () => void) {}

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }

  /** Keeps `agent` as its story's next value, replacing one not yet read. */
  push(agent: T): void {
    if (this.#done) return;
    // The story moves to the back: stories are read in the order of their latest change.
    this.#pending.delete(agent.storyId);
    this.#pending.set(agent.storyId, agent);
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  async next(): Promise<IteratorResult<T>> {
    for (;;) {
      if (this.#done) return { done: true, value: undefined };
      const first = this.#pending.entries().next();
      if (!first.done) {
        const [storyId, agent] = first.value;
        this.#pending.delete(storyId);
        return { done: false, value: agent };
      }
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
      });
    }
  }

  async return(): Promise<IteratorResult<T>> {
    if (!this.#done) {
      this.#done = true;
      this.#pending.clear();
      this.release();
      const wake = this.#wake;
      this.#wake = undefined;
      wake?.();
    }
    return { done: true, value: undefined };
  }
}
