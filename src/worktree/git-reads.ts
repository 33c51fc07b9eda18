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

interface Waiter {
  resolve(): void;
  reject(error: GitReadError): void;
}

/**
 * The reads of stories' git work (changes, diff, commits) that clients ask for, bounded:
 * a few at a time, each with a time limit, each ended (waiting or running) when the client
 * that asked leaves, and all of them ended, their git processes gone, before the server
 * lets go of the project (so that no git of this server runs beside a server started
 * after it).
 */
export class GitReads {
  readonly #concurrency: number;
  readonly #timeoutMs: number;
  readonly #closing = new AbortController();
  readonly #waiting = new Set<Waiter>();
  readonly #running = new Set<Promise<unknown>>();
  /** Reads that hold a slot: running, or given their turn and about to run. */
  #active = 0;

  constructor(limits: GitReadLimits = {}) {
    this.#concurrency = limits.concurrency ?? 4;
    this.#timeoutMs = limits.timeoutMs ?? 60_000;
  }

  /** How many reads run or wait now (for tests and diagnostics). */
  get pending(): number {
    return this.#active + this.#waiting.size;
  }

  /**
   * Runs `read` in its turn with a signal that aborts when `signal` (the client's) does,
   * when the time limit passes, or when the reads are closed.
   * @throws GitReadError when it is cut short or the reads are closed.
   */
  async run<T>(signal: AbortSignal | undefined, read: (signal: AbortSignal) => Promise<T>): Promise<T> {
    await this.#turn(signal);
    const reading = this.#read(signal, read);
    this.#running.add(reading);
    try {
      return await reading;
    } finally {
      this.#running.delete(reading);
      this.#passTurn();
    }
  }

  /** Refuses new reads, ends those waiting and running (their git processes exit) and waits for them. */
  async close(): Promise<void> {
    this.#closing.abort();
    for (const waiter of this.#waiting) waiter.reject(this.#ended(undefined)!);
    this.#waiting.clear();
    await Promise.allSettled([...this.#running]);
  }

  /** Why a read may not go on, if it may not. */
  #ended(signal: AbortSignal | undefined): GitReadError | undefined {
    if (this.#closing.signal.aborted) return new GitReadError('the server is shutting down', 'POOL_CLOSED');
    if (signal?.aborted) return new GitReadError('the client that asked for this read has gone', 'GIT_READ_CANCELLED');
    return undefined;
  }

  /** Resolves when a slot is free; a waiting read whose client leaves gives up its place. */
  #turn(signal: AbortSignal | undefined): Promise<void> {
    const refused = this.#ended(signal);
    if (refused) return Promise.reject(refused);
    if (this.#active < this.#concurrency && this.#waiting.size === 0) {
      this.#active++;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const leave = (): void => {
        this.#waiting.delete(waiter);
        reject(this.#ended(signal)!);
      };
      const waiter: Waiter = {
        resolve: () => {
          signal?.removeEventListener('abort', leave);
          resolve();
        },
        reject: (error) => {
          signal?.removeEventListener('abort', leave);
          reject(error);
        },
      };
      signal?.addEventListener('abort', leave, { once: true });
      this.#waiting.add(waiter);
    });
  }

  /** A read ended: its slot goes to the oldest waiting read. */
  #passTurn(): void {
    const [next] = this.#waiting;
    if (!next) {
      this.#active--;
      return;
    }
    this.#waiting.delete(next);
    next.resolve();
  }

  async #read<T>(signal: AbortSignal | undefined, read: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const controller = new AbortController();
    const abort = (): void => controller.abort();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, this.#timeoutMs);
    signal?.addEventListener('abort', abort, { once: true });
    this.#closing.signal.addEventListener('abort', abort, { once: true });
    try {
      const refused = this.#ended(signal);
      if (refused) throw refused;
      return await read(controller.signal);
    } catch (error) {
      if (timedOut) {
        throw new GitReadError(`git took longer than ${this.#timeoutMs / 1000} s and was ended: the worktree may be very large, or git is stuck`, 'GIT_READ_TIMEOUT', { cause: error });
      }
      throw this.#ended(signal) ?? error;
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', abort);
      this.#closing.signal.removeEventListener('abort', abort);
    }
  }
}
