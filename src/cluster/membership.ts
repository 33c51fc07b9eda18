import type { Logger } from '../logger.js';
import type { ClusterStore, LostRunner, ServerRole } from '../store/cluster-store.js';

/** What a server's membership of its cluster tells it. */
export interface MembershipEvents {
  /**
   * This server is, or may be, lost to the others (they declared it lost, or it could not
   * renew its heartbeat for `lostAfterMs`): it must stop its own runs, which the others end
   * or will end. Membership resumes once the returned promise settles.
   */
  selfLost(why: string): Promise<void>;
  /** Servers declared lost by this one: their runs ended, their claimed runs back in the queue. */
  othersLost(lost: LostRunner[]): void;
  /** Called after each heartbeat: a moment to claim queued runs this server missed. */
  tick(): void;
  /** This server registered as a new incarnation: its store writes its runs as that one from now on. */
  registered(incarnation: number): void;
}

/**
 * A server's heartbeat in the cluster's database, every `heartbeatMs`, and its watch over
 * the others: a server silent for `lostAfterMs` (by the database's clock) is declared lost,
 * by one server only. One that cannot renew its own heartbeat that long, or finds that
 * the others declared it lost, stops its own runs before it goes on, so that no two
 * servers ever run one story.
 */
export class Membership {
  readonly #store: ClusterStore;
  readonly #name: string;
  readonly #role: ServerRole;
  readonly #heartbeatMs: number;
  readonly #lostAfterMs: number;
  readonly #logger: Logger;
  readonly #events: MembershipEvents;
  #timer: NodeJS.Timeout | undefined;
  /** Watches, apart from the heartbeat's own call (which may hang until it times out), how long this server has been silent. */
  #watchdog: NodeJS.Timeout | undefined;
  /** When this server last renewed its heartbeat (its own clock: how long it has been silent). */
  #renewedAt = Date.now();
  /** Whether it stopped its runs for being silent, and has not renewed since. */
  #silent = false;
  #ticking: Promise<void> | undefined;
  #closed = false;
  /** This server's registration in the cluster's runners (0: not yet). */
  #incarnation = 0;

  constructor(options: {
    store: ClusterStore;
    name: string;
    role: ServerRole;
    heartbeatMs: number;
    lostAfterMs: number;
    logger: Logger;
    events: MembershipEvents;
  }) {
    this.#store = options.store;
    this.#name = options.name;
    this.#role = options.role;
    this.#heartbeatMs = options.heartbeatMs;
    this.#lostAfterMs = options.lostAfterMs;
    this.#logger = options.logger;
    this.#events = options.events;
  }

  /**
   * Records this server as alive (unless `registered` says it is, as that incarnation), and
   * beats from now on.
   * @returns whether the others had declared it lost while it was away.
   */
  async join(registered?: { incarnation: number }): Promise<{ wasLost: boolean }> {
    // Registered already (before the server's recovery): that incarnation beats from now on.
    const joined = registered ? this.#adopt(registered.incarnation) : await this.#register();
    this.#schedule();
    // Its runs stop a heartbeat before the others may declare it lost: never two hosts on one story.
    const stopAfterMs = Math.max(this.#lostAfterMs - this.#heartbeatMs, this.#heartbeatMs);
    this.#watchdog = setInterval(() => {
      const silentMs = Date.now() - this.#renewedAt;
      if (this.#silent || silentMs < stopAfterMs) return;
      this.#silent = true;
      void this.#selfLost(`it could not renew its heartbeat for ${(silentMs / 1000).toFixed(1)} s`);
    }, this.#heartbeatMs);
    this.#watchdog.unref();
    return joined;
  }

  /** This server's current registration, for the claims it makes. */
  get incarnation(): number {
    return this.#incarnation;
  }

  #adopt(incarnation: number): { wasLost: boolean } {
    this.#incarnation = incarnation;
    this.#renewedAt = Date.now();
    return { wasLost: false };
  }

  async #register(): Promise<{ wasLost: boolean }> {
    const sentAt = Date.now();
    const { incarnation, wasLost } = await this.#store.register(this.#name, this.#role);
    this.#incarnation = incarnation;
    this.#renewedAt = sentAt;
    this.#events.registered(incarnation);
    return { wasLost };
  }

  #schedule(): void {
    if (this.#closed) return;
    this.#timer = setTimeout(() => {
      this.#ticking = this.#beat().finally(() => {
        this.#ticking = undefined;
        this.#schedule();
      });
    }, this.#heartbeatMs);
    this.#timer.unref();
  }

  async #beat(): Promise<void> {
    let alive: boolean;
    // Measured from when it was sent: the database may have taken it at any moment after.
    const sentAt = Date.now();
    try {
      alive = await this.#store.heartbeat(this.#name, this.#incarnation);
    } catch (error) {
      this.#logger.warn(`cluster: the heartbeat of ${this.#name} could not be renewed: ${(error as Error).message}`);
      return;
    }
    if (!alive) {
      await this.#selfLost('the other servers declared it lost (it was silent too long)');
      // Back among the others, as a new incarnation, with no run of its own left.
      try {
        await this.#register();
      } catch (error) {
        this.#logger.warn(`cluster: could not join again (tried at the next heartbeat): ${(error as Error).message}`);
        return;
      }
    }
    if (alive) this.#renewedAt = sentAt;
    this.#silent = false;
    try {
      const lost = await this.#store.declareLost(this.#lostAfterMs);
      for (const runner of lost) {
        this.#logger.warn(
          `cluster: server ${runner.name} was silent for ${this.#lostAfterMs / 1000} s: declared lost; ` +
            `${runner.ended.length} run(s) of it ended FAILED, ${runner.requeued.length} claimed run(s) back in the queue`,
        );
      }
      if (lost.length > 0) this.#events.othersLost(lost);
    } catch (error) {
      this.#logger.warn(`cluster: could not look for lost servers: ${(error as Error).message}`);
    }
    this.#events.tick();
  }

  async #selfLost(why: string): Promise<void> {
    this.#logger.error(`cluster: this server (${this.#name}) is lost to the cluster: ${why}; it stops its runs`);
    await this.#events.selfLost(why).catch((error: unknown) => this.#logger.error('cluster: stopping this server\'s runs failed', error));
  }

  /** Stops beating and leaves the cluster (the others do not wait for it to be lost). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    clearInterval(this.#watchdog);
    await this.#ticking;
    await this.#store.leave(this.#name, this.#incarnation).catch((error: unknown) => this.#logger.warn(`cluster: could not leave: ${(error as Error).message}`));
  }
}
