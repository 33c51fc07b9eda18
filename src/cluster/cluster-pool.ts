import { randomUUID } from 'node:crypto';
import { AgentPoolError, type ErrorCode } from '../errors.js';
import { type Logger, ThrottledLog } from '../logger.js';
import type { BusChannel, BusMessage, RedisBus } from '../bus/redis-bus.js';
import type { AgentPool } from '../pool/agent-pool.js';
import { type PoolApi, STORY_OPERATIONS, type StoryOperation } from '../pool/pool-api.js';
import type { LiveState } from '../pool/stories.js';
import type { ServiceInfo, ServiceStatus } from '../pool/story-services.js';
import type { ClaimedRun, ClusterStore, LostRunner, ServerRole } from '../store/cluster-store.js';
import type { StateStore } from '../store/state-store.js';
import { endOrphans } from '../pool/recovery.js';
import { Membership } from './membership.js';

/**
 * How long a server waits for another to answer an operation it sent it (landing a story
 * may push to a remote).
 * @default 120 s
 */
export const FORWARD_TIMEOUT_MS = 120_000;

/** The server that holds a story (its run, its worktree) is not there to answer. */
export class ServerUnavailableError extends AgentPoolError {
  constructor(server: string, storyId: string, why: string) {
    super(
      'SERVER_UNAVAILABLE',
      `story ${storyId} is held by server ${server} (its run and worktree are there), which ${why}: start that server again, then retry`,
      { extensions: { storyId, server } },
    );
  }
}

/** A service's output streams from the server that runs the service, only. */
export class ServicesElsewhereError extends AgentPoolError {
  constructor(storyId: string, server: string) {
    super('INVALID_ARGUMENT', `story ${storyId}'s services run on server ${server}: subscribe to serviceOutput there`, { extensions: { storyId, server } });
  }
}

/**
 * The operations another server runs for this one. A story's services are read here (see
 * #servicesElsewhere): their output cannot cross the bus.
 */
const OPERATIONS: ReadonlySet<string> = new Set(STORY_OPERATIONS.filter((op) => op !== 'services'));

/**
 * How long a request's id is remembered, so that the same request is never run twice
 * (longer than a message may be old, see MAX_MESSAGE_AGE_MS).
 */
const SEEN_REQUESTS_MS = 60_000;

/** A bell: a story's events, as far as its server has stored them. */
interface EventsBell {
  kind: 'events';
  storyId: string;
  firstSeq: number;
  lastSeq: number;
  lastAt: Date;
}

/** A bell: a story changed (its record is in the store), with what its server knows live. */
interface AgentBell {
  kind: 'agent';
  storyId: string;
  live: LiveState | undefined;
}

/** How a server takes part in its cluster. */
export interface ClusterOptions {
  /** `api` runs no agents; `all` and `runner` claim queued runs. */
  role: ServerRole;
  /** The cluster's queue, heartbeats and claims (a connection of its own). */
  coordination: ClusterStore;
  /** `[cluster] heartbeat_seconds`, in ms. */
  heartbeatMs: number;
  /** `[cluster] lost_after_seconds`, in ms. */
  lostAfterMs: number;
  /** Makes the server's store write its runs as this registration only (PostgresStore.fence). */
  fence: (incarnation: number) => void;
  /** This server's registration, made before its recovery (ClusterStore.register). */
  incarnation?: number;
}

/** How long an orphan of a released run is given between signals (as `[pool] stop_grace_seconds` by default). */
const ORPHAN_GRACE_MS = 5000;

/** How often a server takes the outbox up again (deliveries whose holder left). */
const OUTBOX_SWEEP_MS = 60_000;

/** How long a server holds a webhook delivery it sends beyond the attempt's own time limit. */
const DELIVERY_CLAIM_MARGIN_MS = 60_000;

/** Whether server `name` is to send a webhook delivery now: it holds it for the attempt (and a minute), no other does. */
export function deliveryClaim(coordination: ClusterStore, name: string): (delivery: { id: string }, attemptMs: number) => Promise<boolean> {
  return (delivery, attemptMs) => coordination.claimDelivery(delivery.id, name, attemptMs + DELIVERY_CLAIM_MARGIN_MS);
}

interface Request {
  kind: 'request';
  id: string;
  from: string;
  op: StoryOperation;
  args: unknown[];
  /** The story's runner is lost: the asked server takes the story's branch up from the remote first. */
  adopt?: boolean;
}

/** What another runner can do for a story whose runner is lost, from the branch its runs pushed. */
const ADOPTABLE: ReadonlySet<StoryOperation> = new Set(['changes', 'diff', 'commits', 'landingStatus', 'merge', 'createPullRequest']);

interface Reply {
  kind: 'reply';
  id: string;
  ok: boolean;
  value?: unknown;
  error?: { code?: ErrorCode; message: string; extensions?: Record<string, unknown> };
}

/** A value the bus can carry: an AbortSignal (a client's, for git reads) stays with its server. */
function portable(args: readonly unknown[]): unknown[] {
  return args.map((arg) => {
    if (typeof arg !== 'object' || arg === null || !('signal' in arg)) return arg;
    const { signal: _signal, ...rest } = arg as Record<string, unknown>;
    return rest;
  });
}

/**
 * One server of a cluster: several agent-pool servers on one Postgres store and one Redis
 * bus, each running the agents it was asked to start, all answering any client about any
 * story. It wraps this server's {@link AgentPool}:
 *
 * - what this server stores, it rings on the bus: a story's events (`{storyId, lastSeq}`)
 *   and a story's change; the others read the events and the story from the store, and
 *   read everything again whenever the bus comes back after it was lost, so a bell the bus
 *   dropped loses nothing, and one heard twice reads nothing twice;
 * - an operation on a story that another server holds (its latest run ran there, and its
 *   worktree is there) is sent to that server and answered from there, after the change
 *   it made is read back here; a server that is not there is an error that names it.
 */
export class ClusterPool {
  readonly #pool: AgentPool;
  readonly #bus: RedisBus;
  readonly #store: StateStore;
  readonly #logger: Logger;
  readonly #name: string;
  /** Bells on their way, by `kind:storyId`, and those to ring again once they are sent. */
  readonly #ringing = new Set<string>();
  readonly #ringAgain = new Set<string>();
  /** Each story's read from the store in progress: an answer about it waits for it. */
  readonly #reloading = new Map<string, Promise<void>>();
  readonly #pending = new Map<
    string,
    { server: string; storyId: string; resolve: (value: unknown) => void; reject: (error: Error) => void; timer: NodeJS.Timeout }
  >();
  readonly #api: PoolApi;
  /** The ids of the requests run lately: one heard again is not run again. */
  readonly #seen = new Set<string>();
  /** Bells that could not be rung, logged a few at a time. */
  readonly #problems: ThrottledLog;
  readonly #options: ClusterOptions;
  readonly #membership: Membership;
  /** Runs this server claimed and is starting (they leave the queue as they begin). */
  readonly #claimed = new Set<string>();
  /** Runs this server runs, by `storyId:number`: a slot is free again when one ends. */
  readonly #running = new Set<string>();
  /** Claimed runs on their way to start here, by story: an operation on the story waits for it. */
  readonly #starting = new Map<string, Promise<void>>();
  #claiming = false;
  #claimAgain = false;
  /** Takes the outbox up again now and then: a delivery another server held, and then left, is sent. */
  readonly #outboxSweep: NodeJS.Timeout;
  #closing = false;

  private constructor(pool: AgentPool, bus: RedisBus, store: StateStore, logger: Logger, options: ClusterOptions) {
    this.#pool = pool;
    this.#bus = bus;
    this.#store = store;
    this.#logger = logger;
    this.#name = bus.name;
    this.#options = options;
    this.#problems = new ThrottledLog(logger);
    this.#membership = new Membership({
      store: options.coordination,
      name: this.#name,
      role: options.role,
      heartbeatMs: options.heartbeatMs,
      lostAfterMs: options.lostAfterMs,
      logger,
      events: {
        selfLost: (why) => pool.abandonRuns(`runner ${this.#name} lost: ${why}`),
        othersLost: (lost) => void this.#othersLost(lost),
        tick: () => void this.#claimRuns(),
        registered: (incarnation) => options.fence(incarnation),
      },
    });
    this.#outboxSweep = setInterval(() => {
      void pool.resumeDeliveries().catch((error: unknown) => this.#problems.warn(`cluster: the outbox could not be read: ${(error as Error).message}`));
    }, OUTBOX_SWEEP_MS);
    this.#outboxSweep.unref();
    // Every start is queued for a runner (this one among them, unless it is an api server).
    pool.queueRunsIn({ enqueue: (run, resumeSessionId, affinity) => this.#enqueue(run.storyId, run.number, resumeSessionId, affinity) });
    pool.eventLog.onAppend((storyId, local) => {
      if (local) this.#ring('events', storyId);
    });
    // Only what this server ran: a story read back from another server's bell is not rung
    // again (the bells would go back and forth).
    pool.onAgentChange((agent) => {
      if (!this.#ranHere(agent.storyId)) return;
      this.#ring('agent', agent.storyId);
      this.#runChanged(agent.storyId, agent.runs.at(-1));
    });
    bus.onMessage((message, channel) => this.#heard(message, channel));
    bus.onReconnect((connection) => {
      // What this server rang while it could not publish is rung again.
      if (connection === 'publisher') return this.#ringOwn();
      // Answers sent while the bus was away are lost: whoever waits for one is told at once.
      for (const [id, pending] of this.#pending) {
        this.#settle(id);
        pending.reject(
          new ServerUnavailableError(pending.server, pending.storyId, 'may not have answered: the bus was lost meanwhile; the operation may have been done, so read the story before you retry'),
        );
      }
      // Read again, then ask the others to ring their own: what their agents wait for is said only in bells.
      void this.#resync().then(() => this.#bus.publish({ kind: 'hello' }).catch(() => {}));
    });
    // Everything an AgentPool is, but its story operations go where the story is held.
    this.#api = new Proxy(pool, {
      get: (target, key) => {
        if (typeof key === 'string' && OPERATIONS.has(key)) {
          return (...args: unknown[]) => this.#operate(key as StoryOperation, args);
        }
        if (key === 'services') {
          return (storyId: string) => (this.#ranElsewhere(storyId) ? this.#servicesElsewhere(storyId) : pool.services(storyId));
        }
        if (key === 'serviceOutput') {
          return (storyId: string, ...rest: unknown[]) => {
            const runner = pool.runnerOf(storyId);
            if (runner !== undefined && runner !== this.#name) throw new ServicesElsewhereError(storyId, runner);
            return (pool.serviceOutput as (...args: unknown[]) => unknown).call(pool, storyId, ...rest);
          };
        }
        const value: unknown = Reflect.get(target, key, target);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    }) as unknown as PoolApi;
  }

  /**
   * Joins the cluster: its heartbeat begins, the others hear that this server is here and
   * tell it what their agents wait for, and (unless it is an api server) it claims the
   * runs that wait in the queue.
   */
  static async join(pool: AgentPool, bus: RedisBus, store: StateStore, logger: Logger, options: ClusterOptions): Promise<ClusterPool> {
    const cluster = new ClusterPool(pool, bus, store, logger, options);
    const { wasLost } = await cluster.#membership.join(options.incarnation === undefined ? undefined : { incarnation: options.incarnation });
    if (wasLost) logger.warn(`cluster: the others had declared ${cluster.#name} lost meanwhile; its runs were ended there`);
    // Runs it claimed and had not started when it stopped go back to the queue, and whatever
    // of theirs began (setup) ends, as the orphans of its other runs did at its start.
    const released = await options.coordination.releaseAll(cluster.#name);
    await endOrphans(
      released.map((run) => run.marker),
      ORPHAN_GRACE_MS,
    );
    for (const { storyId, number } of released) {
      logger.warn(`story ${storyId} run ${number}: claimed here before this server stopped, and not started: back in the queue`);
      await cluster.#reload(storyId);
    }
    // What changed while this server was away (its own recovery among it) is read, and rung.
    await cluster.#resync();
    await bus.publish({ kind: 'hello' });
    void cluster.#claimRuns();
    return cluster;
  }

  /** Queues a run for a runner, tells everyone of the story, and wakes the runners. */
  async #enqueue(storyId: string, number: number, resumeSessionId: string | undefined, affinity: string | undefined): Promise<void> {
    try {
      await this.#options.coordination.enqueue(storyId, number, resumeSessionId, affinity);
    } catch (error) {
      // Not left PENDING for ever: it ends FAILED, saying why (a start after it is taken).
      await this.#options.coordination.cancel(storyId, number, `it could not be queued for a runner: ${(error as Error).message}`).catch(() => false);
      await this.#readBack(storyId).catch(() => {});
      throw error;
    }
    await this.#sendBell('agent', storyId).catch(() => {});
    await this.#bus.publish({ kind: 'queued' }).catch(() => {});
    void this.#claimRuns();
  }

  /**
   * Claims queued runs while this server has free slots (`[pool] max_concurrent`), and
   * starts each here; one at a time, again when asked meanwhile.
   */
  async #claimRuns(): Promise<void> {
    if (this.#options.role === 'api' || this.#closing) return;
    if (this.#claiming) {
      this.#claimAgain = true;
      return;
    }
    this.#claiming = true;
    try {
      do {
        this.#claimAgain = false;
        const incarnation = this.#membership.incarnation;
        // Its own claims come back until they begin: those on their way here are not started twice.
        const claims = (await this.#options.coordination.claim(this.#name, incarnation, this.#pool.freeSlots())).filter(
          (claim) => !this.#claimed.has(`${claim.storyId}:${claim.number}`) && !this.#running.has(`${claim.storyId}:${claim.number}`),
        );
        // Every claim is known before any starts: an operation on one of them waits for its start.
        const opened = claims.map((claim) => {
          let open!: () => void;
          this.#starting.set(claim.storyId, new Promise<void>((resolve) => (open = resolve)));
          return open;
        });
        for (const [index, claim] of claims.entries()) {
          try {
            // Shutting down, or lost and back as another incarnation: the claim is the queue's again.
            if (this.#closing || this.#membership.incarnation !== incarnation) await this.#giveBack(claim);
            else await this.#startClaimed(claim);
          } finally {
            this.#starting.delete(claim.storyId);
            opened[index]!();
          }
        }
      } while (this.#claimAgain && !this.#closing);
    } catch (error) {
      this.#problems.warn(`cluster: queued runs could not be claimed: ${(error as Error).message}`);
    } finally {
      this.#claiming = false;
    }
  }

  /** Starts a claimed run here, with the story as the store has it; one that cannot start ends FAILED, saying why. */
  async #startClaimed(claim: ClaimedRun): Promise<void> {
    const { storyId, number } = claim;
    const key = `${storyId}:${number}`;
    this.#claimed.add(key);
    try {
      await this.#reload(storyId);
      const bounds = await this.#store.eventBounds(storyId);
      if (bounds) this.#pool.observeEvents(storyId, bounds);
      if (this.#closing) throw new AgentPoolError('POOL_CLOSED', 'agent-pool is shutting down');
      // It leaves the queue before it begins: from here, were this server lost, the run
      // ends FAILED rather than go to another runner while this one may still run it.
      await this.#options.coordination.dequeue(this.#name, storyId, number);
      this.#running.add(key);
      this.#pool.runClaimed(claim);
    } catch (error) {
      this.#running.delete(key);
      if (error instanceof AgentPoolError && error.code === 'POOL_CLOSED') {
        await this.#giveBack(claim);
        return;
      }
      const why = `it could not start on runner ${this.#name}: ${(error as Error).message}`;
      this.#logger.warn(`story ${storyId} run ${number}: ${why}`);
      await this.#options.coordination.fail(this.#name, storyId, number, why);
      await this.#readBack(storyId);
      return;
    } finally {
      this.#claimed.delete(key);
    }
    this.#logger.info(`story ${storyId} run ${number}: claimed from the queue`);
  }

  /** Gives a claimed run back to the queue (this server stops, or is no longer the incarnation that claimed it). */
  async #giveBack(claim: ClaimedRun): Promise<void> {
    await this.#options.coordination.release(this.#name, claim.storyId, claim.number);
    await this.#readBack(claim.storyId);
    await this.#bus.publish({ kind: 'queued' }).catch(() => {});
  }

  /** A story this server runs changed: a run that ended frees its slot for the next. */
  #runChanged(storyId: string, latest: { number: number; status: string } | undefined): void {
    if (!latest) return;
    const key = `${storyId}:${latest.number}`;
    if (latest.status === 'PENDING' || latest.status === 'RUNNING') return;
    if (this.#running.delete(key)) void this.#claimRuns();
  }

  /**
   * Servers this one declared lost: their ended runs are read back and rung (with the
   * webhooks that report their end), and their claimed runs are claimed again.
   */
  async #othersLost(lost: LostRunner[]): Promise<void> {
    for (const runner of lost) {
      for (const { storyId } of runner.ended) {
        await this.#readBack(storyId);
        this.#pool.reportEnded(storyId);
      }
      for (const { storyId } of runner.requeued) await this.#readBack(storyId);
    }
    // Its webhook deliveries: whoever holds none of them now sends them.
    await this.#pool.resumeDeliveries().catch((error: unknown) => this.#logger.warn(`cluster: the outbox could not be read: ${(error as Error).message}`));
    if (lost.some((runner) => runner.requeued.length > 0)) await this.#bus.publish({ kind: 'queued' }).catch(() => {});
    void this.#claimRuns();
  }

  /** A story another server (or the store) changed: read back here, with its events, and rung for the others. */
  async #readBack(storyId: string): Promise<void> {
    await this.#reload(storyId);
    const bounds = await this.#store.eventBounds(storyId);
    if (bounds) this.#pool.observeEvents(storyId, bounds);
    await this.#sendBell('agent', storyId).catch(() => {});
    await this.#sendBell('events', storyId).catch(() => {});
  }

  /** The pool as the server's API uses it. */
  get api(): PoolApi {
    return this.#api;
  }

  /** Whether another server runs (or last ran) the story's latest run. */
  #ranElsewhere(storyId: string): boolean {
    const runner = this.#pool.runnerOf(storyId);
    return runner !== undefined && runner !== this.#name;
  }

  /** A story's services as the server that runs them last stored them (their output stays there). */
  async #servicesElsewhere(storyId: string): Promise<ServiceInfo[]> {
    const records = (await this.#store.services()).filter((record) => record.storyId === storyId);
    return records.map((record) => ({
      name: record.name,
      status: record.status as ServiceStatus,
      port: record.port,
      pid: record.pid,
      output: () => [],
    }));
  }

  /** Whether this server runs (or last ran) the story's latest run. */
  #ranHere(storyId: string): boolean {
    return this.#pool.runnerOf(storyId) === this.#name;
  }

  async #operate(op: StoryOperation, args: unknown[]): Promise<unknown> {
    const storyId = args[0] as string;
    const pool = this.#pool as unknown as Record<StoryOperation, (...args: unknown[]) => unknown>;
    // A start is queued from any server, for whichever runner claims it.
    if (op === 'start' || op === 'continue') return pool[op](...args);
    if (op === 'stop' && typeof storyId === 'string') {
      // A start made here a moment ago is stored and queued first (another server's is, before anyone hears of it).
      await this.#pool.inQueue(storyId);
      const queued = this.#pool.isQueued(storyId);
      if (queued && (await this.#options.coordination.cancel(storyId, queued.number))) {
        this.#logger.info(`story ${storyId} run ${queued.number}: stopped while it waited for a runner`);
        await this.#readBack(storyId);
        return this.#pool.get(storyId);
      }
      // A runner claimed it meanwhile: the stop is that runner's.
      if (queued) await this.#reload(storyId);
    }
    await this.#starting.get(storyId);
    const runner = this.#pool.runnerOf(storyId);
    if (runner === undefined || runner === this.#name) return pool[op](...args);
    try {
      return await this.#forward(runner, storyId, op, portable(args));
    } catch (error) {
      if (!(error instanceof ServerUnavailableError) || !ADOPTABLE.has(op)) throw error;
      // Its runner is lost (or has left): another runner takes the story's pushed branch up and answers.
      const standIn = await this.#standIn(runner);
      if (standIn === undefined) throw error;
      if (standIn !== this.#name) return this.#forward(standIn, storyId, op, portable(args), true);
      await this.#pool.adoptStory(storyId);
      const value = await pool[op](...args);
      await this.#sendBell('agent', storyId).catch(() => {});
      return value;
    }
  }

  /**
   * Which server answers for a story whose runner, `holder`, does not: this one if it runs
   * agents, else one that does; none while `holder` is still the cluster's (it may be back).
   */
  async #standIn(holder: string): Promise<string | undefined> {
    const servers = await this.#options.coordination.runners();
    const held = servers.find((server) => server.name === holder);
    if (held && !held.lost && !held.left) return undefined;
    if (this.#options.role !== 'api') return this.#name;
    // One that beats now (one silent for a few beats may be gone, not yet declared so).
    const alive = (server: (typeof servers)[number]): boolean => !server.lost && !server.left && server.silentMs < 3 * this.#options.heartbeatMs;
    return servers.find((server) => server.role !== 'api' && alive(server) && server.name !== holder)?.name;
  }

  async #forward(server: string, storyId: string, op: StoryOperation, args: unknown[], adopt = false): Promise<unknown> {
    const id = randomUUID();
    const answered = new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new ServerUnavailableError(server, storyId, `did not answer ${op} within ${FORWARD_TIMEOUT_MS / 1000} s`));
      }, FORWARD_TIMEOUT_MS);
      timer.unref();
      this.#pending.set(id, { server, storyId, resolve, reject, timer });
    });
    const request: Omit<Request, 'from'> = { kind: 'request', id, op, args, ...(adopt ? { adopt } : {}) };
    let heard: number;
    try {
      heard = await this.#bus.send(server, request as unknown as BusMessage);
    } catch (error) {
      this.#settle(id);
      throw new ServerUnavailableError(server, storyId, `cannot be reached: the bus failed (${(error as Error).message})`);
    }
    if (heard === 0) {
      this.#settle(id);
      throw new ServerUnavailableError(server, storyId, 'is not running');
    }
    return answered;
  }

  /** Forgets a request: it will not be answered. */
  #settle(id: string): void {
    const pending = this.#pending.get(id);
    if (!pending) return;
    clearTimeout(pending.timer);
    this.#pending.delete(id);
  }

  #heard(message: BusMessage, channel: BusChannel): void {
    // Requests and answers come to this server by name, never to all.
    if ((message.kind === 'request' || message.kind === 'reply') && channel !== 'direct') return;
    switch (message.kind) {
      case 'events': {
        const bell = message as unknown as EventsBell;
        this.#pool.observeEvents(bell.storyId, bell);
        return;
      }
      case 'agent': {
        const bell = message as unknown as AgentBell;
        void this.#reload(bell.storyId, bell.live);
        return;
      }
      case 'hello':
        this.#ringOwn();
        return;
      case 'queued':
        void this.#claimRuns();
        return;
      case 'request':
        void this.#answer(message as unknown as Request);
        return;
      case 'reply':
        void this.#replied(message as unknown as Reply);
        return;
      default:
        this.#logger.debug(`the bus: a message of kind ${String(message.kind)} was ignored`);
    }
  }

  /** Reads a story again from the store; answers about it wait for this. */
  #reload(storyId: string, live?: LiveState): Promise<void> {
    const previous = this.#reloading.get(storyId) ?? Promise.resolve();
    const reloading = previous
      .then(() => this.#pool.reloadStory(storyId, live))
      .catch((error: unknown) => this.#logger.warn(`story ${storyId}: could not be read again from the store: ${(error as Error).message}`));
    this.#reloading.set(storyId, reloading);
    void reloading.finally(() => {
      if (this.#reloading.get(storyId) === reloading) this.#reloading.delete(storyId);
    });
    return reloading;
  }

  /** Runs an operation another server sent, and answers once its change is in the store and rung. */
  async #answer(request: Request): Promise<void> {
    if (this.#seen.has(request.id)) return;
    this.#seen.add(request.id);
    setTimeout(() => this.#seen.delete(request.id), SEEN_REQUESTS_MS).unref();
    let reply: Reply;
    try {
      if (!OPERATIONS.has(request.op) || !Array.isArray(request.args)) throw new Error(`the bus asked for ${String(request.op)}, which is no story operation`);
      const pool = this.#pool as unknown as Record<StoryOperation, (...args: unknown[]) => unknown>;
      // A run of the story this server claimed a moment ago is started first (a stop must find it).
      await this.#starting.get(String(request.args[0]));
      if (request.adopt === true) {
        if (!ADOPTABLE.has(request.op)) throw new Error(`the bus asked to take story ${String(request.args[0])} up for ${request.op}, which needs its own runner`);
        await this.#pool.adoptStory(String(request.args[0]));
      }
      // An argument left out travels as null (JSON has no undefined): it is left out again.
      const value = await pool[request.op](...request.args.map((arg) => arg ?? undefined));
      reply = { kind: 'reply', id: request.id, ok: true, value };
    } catch (caught) {
      // This server is going: to the asking server's client, that is the story's server unavailable.
      const error =
        caught instanceof AgentPoolError && caught.code === 'POOL_CLOSED'
          ? new ServerUnavailableError(this.#name, String(request.args[0]), 'is shutting down')
          : caught;
      reply = {
        kind: 'reply',
        id: request.id,
        ok: false,
        error:
          error instanceof AgentPoolError
            ? { code: error.code, message: error.message, extensions: { ...error.extensions } }
            : { message: (error as Error).message },
      };
    }
    // The change first, then the answer: the asking server reads the story back before it answers its client.
    await this.#pool.writesSettled();
    const storyId = request.args[0];
    // A stand-in rings what it changed too (a landing): the story is not its own.
    if (typeof storyId === 'string' && (this.#ranHere(storyId) || request.adopt === true)) await this.#sendBell('agent', storyId).catch(() => {});
    await this.#bus.send(request.from, reply as unknown as BusMessage).catch((error: unknown) => {
      this.#logger.warn(`the answer to ${request.op} from server ${request.from} could not be sent: ${(error as Error).message}`);
    });
  }

  async #replied(reply: Reply): Promise<void> {
    const pending = this.#pending.get(reply.id);
    if (!pending) return;
    this.#settle(reply.id);
    await this.#reloading.get(pending.storyId);
    if (reply.ok) pending.resolve(reply.value);
    else if (reply.error?.code) pending.reject(new AgentPoolError(reply.error.code, reply.error.message, { extensions: reply.error.extensions }));
    else pending.reject(new Error(reply.error?.message ?? 'the other server failed'));
  }

  /** Rings both bells of every story this server ran: the others read them again. */
  #ringOwn(): void {
    for (const agent of this.#pool.list(undefined, true)) {
      if (!this.#ranHere(agent.storyId)) continue;
      this.#ring('agent', agent.storyId);
      this.#ring('events', agent.storyId);
    }
  }

  /** Rings a bell for a story, once its changes are in the store; one of each kind per story on the way at a time. */
  #ring(kind: 'events' | 'agent', storyId: string): void {
    const key = `${kind}:${storyId}`;
    if (this.#ringing.has(key)) {
      this.#ringAgain.add(key);
      return;
    }
    this.#ringing.add(key);
    void this.#sendBell(kind, storyId)
      .catch((error: unknown) => this.#problems.warn(`the bus: story ${storyId}'s ${kind} could not be told (${(error as Error).message}); the others read it again when the bus is back`))
      .finally(() => {
        this.#ringing.delete(key);
        if (this.#ringAgain.delete(key)) this.#ring(kind, storyId);
      });
  }

  async #sendBell(kind: 'events' | 'agent', storyId: string): Promise<void> {
    if (kind === 'events') {
      const { firstSeq, lastSeq } = this.#pool.eventLog.bounds(storyId);
      const lastAt = this.#pool.eventLog.lastEventAt(storyId) ?? new Date();
      await this.#bus.publish({ kind, storyId, firstSeq, lastSeq, lastAt } satisfies EventsBell);
      return;
    }
    await this.#pool.writesSettled();
    await this.#bus.publish({ kind, storyId, live: this.#pool.liveState(storyId) } satisfies AgentBell);
  }

  /**
   * The bus came back: bells may have been lost while it was away. Every story another
   * server holds is read again from the store, events and all, and this server's own are
   * rung, so that the others do the same for them.
   */
  async #resync(): Promise<void> {
    try {
      for (const { storyId } of await this.#store.stories()) {
        if (this.#ranHere(storyId)) {
          this.#ring('agent', storyId);
          this.#ring('events', storyId);
          continue;
        }
        await this.#reload(storyId);
        const bounds = await this.#store.eventBounds(storyId);
        if (bounds) this.#pool.observeEvents(storyId, bounds);
      }
    } catch (error) {
      this.#logger.warn(`after the bus came back, the stories could not be read again: ${(error as Error).message}`);
    }
  }

  /** Claims no more queued runs (the server is stopping): they are the other runners'. */
  stopClaiming(): void {
    this.#closing = true;
  }

  /** Leaves the cluster: no more claims, no more heartbeat, and requests still waiting are refused. */
  async close(): Promise<void> {
    this.#closing = true;
    clearInterval(this.#outboxSweep);
    await this.#membership.close();
    for (const [id, pending] of this.#pending) {
      this.#settle(id);
      pending.reject(new AgentPoolError('POOL_CLOSED', 'agent-pool is shutting down'));
    }
    await this.#bus.close();
  }
}
