import { AgentPoolError } from '../errors.js';

/** A read of git was refused or cut short; the message says why. */
export class GitReadError extends AgentPoolError {
  constructor(message: string, code: 'GIT_READ_TIMEOUT' | 'GIT_READ_CANCELLED' | 'POOL_CLOSED', options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** How git reads are bounded. */
export interface GitReadLimits {
  /**
   * How many reads run at once; more wait their turn, first come first served.
   * @default 4
   */
  concurrency?: number;
  /**
   * How long one read may take before its git is ended.
   * @default 60_000
   */
  timeoutMs?: number;
}

/**
 * The reads of stories' git work (changes, diff, commits) that clients ask for, bounded:
 * a few at a time, each with a time limit, each ended when the client that asked leaves,
 * and all of them ended, their git processes gone, before the server lets go of the
 * project (so that no git of this server runs beside a server started after it).
 */
export class GitReads {
  readonly #concurrency: number;
  readonly #timeoutMs: number;
  readonly #closing = new AbortController();
  readonly #waiting: Array<() => void> = [];
  readonly #running = new Set<Promise<unknown>>();
  #active = 0;

  constructor(limits: GitReadLimits = {}) {
    this.#concurrency = limits.concurrency ?? 4;
    this.#timeoutMs = limits.timeoutMs ?? 60_000;
  }

  /** How many reads run or wait now (for tests and diagnostics). */
  get pending(): number {
    return this.#active + this.#waiting.length;
  }

  /**
   * Runs `read` in its turn with a signal that aborts when `signal` (the client's) does,
   * when the time limit passes, or when the reads are closed.
   * @throws GitReadError when it is cut short or the reads are closed.
   */
  async run<T>(signal: AbortSignal | undefined, read: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const ended = (): GitReadError | undefined => {
      if (this.#closing.signal.aborted) return new GitReadError('the server is shutting down', 'POOL_CLOSED');
      if (signal?.aborted) return new GitReadError('the client that asked for this read has gone', 'GIT_READ_CANCELLED');
      return undefined;
    };
    const refused = ended();
    if (refused) throw refused;
    if (this.#active >= this.#concurrency) {
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
    } else {
      this.#active++;
    }
    const timeout = AbortSignal.timeout(this.#timeoutMs);
    const reading = (async () => {
      try {
        const cut = ended();
        if (cut) throw cut;
        const signals = [this.#closing.signal, timeout, ...(signal ? [signal] : [])];
        return await read(AbortSignal.any(signals));
      } catch (error) {
        if (timeout.aborted) {
          throw new GitReadError(`git took longer than ${this.#timeoutMs / 1000} s and was ended: the worktree may be very large, or git is stuck`, 'GIT_READ_TIMEOUT', { cause: error });
        }
        throw ended() ?? error;
      } finally {
        const next = this.#waiting.shift();
        if (next) next(); // the slot passes on
        else this.#active--;
      }
    })();
    this.#running.add(reading);
    try {
      return await reading;
    } finally {
      this.#running.delete(reading);
    }
  }

  /** Refuses new reads, ends those running (their git processes exit) and waits for them. */
  async close(): Promise<void> {
    this.#closing.abort();
    for (const next of this.#waiting.splice(0)) next();
    await Promise.allSettled([...this.#running]);
  }
}
