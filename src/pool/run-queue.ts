import type { Logger } from '../logger.js';
import type { Run } from './run.js';

/**
 * The runs that wait for a slot, first come first served, and the runs that hold one: at
 * most `limit` execute at once. A run holds its slot until it has ended and all its
 * processes are gone.
 */
export class RunQueue {
  readonly #waiting: Run[] = [];
  readonly #holding = new Set<Run>();
  readonly #logger: Logger;
  #limit: number;

  constructor(limit: number, logger: Logger) {
    this.#limit = limit;
    this.#logger = logger;
  }

  /** The number of runs that may execute at once (`max_concurrent`, read at each start). */
  set limit(limit: number) {
    this.#limit = limit;
    this.#drain();
  }

  /** Queues a run; it executes as soon as a slot is free. */
  add(run: Run): void {
    this.#waiting.push(run);
    this.#drain();
  }

  /** Takes a run out of the queue (it was stopped before it got a slot). */
  remove(run: Run): void {
    const index = this.#waiting.indexOf(run);
    if (index !== -1) this.#waiting.splice(index, 1);
  }

  #drain(): void {
    while (this.#holding.size < this.#limit && this.#waiting.length > 0) {
      const run = this.#waiting.shift()!;
      if (run.ended) continue;
      this.#holding.add(run);
      run
        .execute()
        .catch((error: unknown) => {
          // The run has ended in memory; only recording its end failed (the store refused).
          this.#logger.error(`story ${run.storyId} run ${run.state.number}: its end could not be recorded`, error);
        })
        .finally(() => {
          this.#holding.delete(run);
          this.#drain();
        });
    }
  }
}
