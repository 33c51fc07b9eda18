import { connect, createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import stripAnsi from 'strip-ansi';
import type { AgentPoolConfig } from '../config/config.js';
import { type PlaceholderValues, placeholderVariable, portPlaceholders, renderShellTemplate, renderTemplate } from '../config/placeholders.js';
import type { ServiceConfig } from '../config/services-config.js';
import type { Logger } from '../logger.js';
import type { ServiceRecord } from '../store/state-store.js';
import { describeExit, type ProcessExit } from './agent-process.js';
import { LineReader } from './line-reader.js';
import { spawnPipeProcess } from './pipe-process.js';
import { InvalidArgumentError, NoFreePortError, UnknownServiceError } from './pool-errors.js';
import { RunSupervisor } from './run-supervisor.js';

/** Where a story's service is. */
export type ServiceStatus = 'STARTING' | 'READY' | 'STOPPED' | 'FAILED';

/** A service as callers see it. */
export interface ServiceInfo {
  name: string;
  status: ServiceStatus;
  port: number;
  /** The pid of its shell, while it runs. */
  pid: number | undefined;
  /** Its newest output lines, oldest first (at most `last`). */
  output(last: number): string[];
}

/** How many of a service's output lines are kept: a dev server that logs every request keeps only its newest. */
export const SERVICE_OUTPUT_LINES = 1000;

/** The longest output line kept, in characters; a longer one is cut there, and its rest is a line of its own. */
const MAX_OUTPUT_LINE = 4096;

/**
 * What is taken out of an output line besides colour codes: control characters (but tab),
 * and the marks that reorder text around them, which could make a line read as another.
 */
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/** How often a service without `ready` is tried on its port while it starts: soon at first, then less often. */
const CONNECT_INTERVALS_MS = [50, 100, 200, 500];

/** The line agent-pool adds to a service's output, marked as its own. */
function note(text: string): string {
  return `[agent-pool] ${text}`;
}

/** Whether something already listens on `port` (on any address of this host, IPv4 or IPv6). */
export async function portInUse(port: number): Promise<boolean> {
  const taken = (options: { host: string; ipv6Only?: boolean }): Promise<boolean> => {
    const server = createServer();
    return new Promise((resolve) => {
      // No IPv6 on this host (EAFNOSUPPORT, EADDRNOTAVAIL) is no listener there.
      server.once('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'EADDRINUSE' || error.code === 'EACCES'));
      server.listen({ port, exclusive: true, ...options }, () => server.close(() => resolve(false)));
    });
  };
  return (await taken({ host: '0.0.0.0' })) || (await taken({ host: '::', ipv6Only: true }));
}

/** Whether a TCP connection to `port` on loopback (IPv4, then IPv6) is accepted. */
async function accepts(port: number): Promise<boolean> {
  for (const host of ['127.0.0.1', '::1']) {
    const accepted = await new Promise<boolean>((resolve) => {
      const socket = connect({ port, host });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (accepted) return true;
  }
  return false;
}

/** A service's newest output lines, and who reads them as they come. */
class ServiceOutput {
  readonly #lines: string[] = [];
  readonly #readers = new Set<(line: string) => void>();

  add(line: string): void {
    // A copy of its own: a slice would keep the whole chunk it was read from alive.
    const kept = Buffer.from(line, 'utf8').toString('utf8');
    this.#lines.push(kept);
    if (this.#lines.length > SERVICE_OUTPUT_LINES) this.#lines.splice(0, this.#lines.length - SERVICE_OUTPUT_LINES);
    for (const reader of this.#readers) reader(kept);
  }

  last(count: number): string[] {
    return count <= 0 ? [] : this.#lines.slice(-count);
  }

  listen(reader: (line: string) => void): () => void {
    this.#readers.add(reader);
    return () => this.#readers.delete(reader);
  }
}

/** One story's service: its state, its output, and while it runs, its supervisor. */
class Service {
  status: ServiceStatus = 'STOPPED';
  pid: number | undefined;
  marker: string | undefined;
  error: string | undefined;
  readonly output = new ServiceOutput();
  /** The supervisor of its latest start, while it may still have processes. */
  supervisor: RunSupervisor | undefined;
  /** Settles when its latest start's processes are all gone. */
  ended: Promise<void> = Promise.resolve();
  /** A start on its way (its port being checked), which a second start waits for. */
  starting: Promise<void> | undefined;
  /** Counts stops: a start that a stop overtook does not launch. */
  stops = 0;

  constructor(
    readonly storyId: string,
    readonly name: string,
    readonly port: number,
  ) {}

  get running(): boolean {
    return this.status === 'STARTING' || this.status === 'READY';
  }

  record(): ServiceRecord {
    return { storyId: this.storyId, name: this.name, port: this.port, status: this.status, pid: this.pid, marker: this.marker, error: this.error };
  }
}

/** What starting a service needs from the pool. */
export interface ServiceStart {
  config: AgentPoolConfig;
  /** The story's worktree, where the service runs. */
  worktreePath: string;
  branch: string;
  projectRoot: string;
  /** The environment it inherits (the server's, without its secrets). */
  baseEnv: Record<string, string>;
}

/** What the registry is built from. */
export interface StoryServicesOptions {
  logger: Logger;
  /** Stores a service's port and state. */
  save: (service: ServiceRecord) => void;
  /** Drops a story's stored services (their ports are free again). */
  forget: (storyId: string) => void;
  /** A story's services changed (a status, a pid). */
  changed: (storyId: string) => void;
}

/**
 * Every story's services (`[services.NAME]`): their ports, given once per story and
 * service and kept, and their processes. A service belongs to its story, not to a run: it
 * is started and stopped on its own, and runs come and go around it. Each start has a
 * supervisor of its own, which owns its whole process tree (as a run's does), so a stop
 * leaves nothing behind.
 */
export class StoryServices {
  readonly #options: StoryServicesOptions;
  /** By story, then by name. */
  readonly #services = new Map<string, Map<string, Service>>();
  readonly #takenPorts = new Set<number>();
  /** Stories whose worktree is being removed, or is gone: no service of theirs starts. */
  readonly #closed = new Set<string>();
  /** Each open output reader's end, with its story (ended at dispose, or when the story gives its services up). */
  readonly #readers = new Map<() => void, string>();

  constructor(options: StoryServicesOptions) {
    this.#options = options;
  }

  /**
   * Brings back the stored services (at start). Those a crash left STARTING or READY are
   * FAILED, and their markers returned, so that their orphans are ended.
   */
  restore(records: readonly ServiceRecord[]): string[] {
    const orphans: string[] = [];
    for (const record of records) {
      const service = this.#add(record.storyId, record.name, record.port);
      service.status = record.status as ServiceStatus;
      service.error = record.error;
      service.marker = record.marker;
      if (service.running) {
        if (record.marker !== undefined) orphans.push(record.marker);
        service.status = 'FAILED';
        service.pid = undefined;
        service.error = 'server stopped while the service was running';
        this.#options.save(service.record());
      }
      // Its output is not kept across a restart: why it failed is.
      if (service.status === 'FAILED' && service.error !== undefined) service.output.add(note(service.error));
    }
    return orphans;
  }

  /**
   * The ports of a story's configured services, each given now if it has none (the lowest
   * free one of `[services] ports`) and kept while the story exists; `missing` names those
   * that the used-up range left without one.
   */
  assignPorts(storyId: string, config: AgentPoolConfig): { ports: Record<string, number>; missing: string[] } {
    const ports: Record<string, number> = {};
    const missing: string[] = [];
    for (const name of Object.keys(config.services.defined)) {
      const service = this.#serviceIfPort(storyId, name, config);
      if (service) ports[name] = service.port;
      else missing.push(name);
    }
    return { ports, missing };
  }

  /**
   * A story's configured services, in the file's order, their ports given now if they have
   * none (not for an archived story, which has no worktree to run them in: port 0), then
   * those that run though the file no longer names them. One the used-up range left
   * without a port is listed FAILED, on port 0, saying so: a list never fails for it.
   */
  list(storyId: string, config: AgentPoolConfig, archived: boolean): ServiceInfo[] {
    const known = this.#services.get(storyId);
    const listed = Object.keys(config.services.defined).map((name): ServiceInfo => {
      const service = archived ? known?.get(name) : this.#serviceIfPort(storyId, name, config);
      if (service) return info(service);
      if (archived) return { name, status: 'STOPPED', port: 0, pid: undefined, output: () => [] };
      const why = note(`no port is left in [services] ports (${config.services.ports}) for it: widen the range in agent-pool.toml`);
      return { name, status: 'FAILED', port: 0, pid: undefined, output: (last) => (last > 0 ? [why] : []) };
    });
    const unlisted = [...(known?.values() ?? [])].filter((service) => service.running && !Object.hasOwn(config.services.defined, service.name));
    return [...listed, ...unlisted.map(info)];
  }

  /**
   * Starts a story's service in its worktree, unless it runs; returns at once, STARTING (or
   * FAILED when its port is in use). READY follows its `ready` line, or the first accepted
   * connection to its port.
   * @throws UnknownServiceError, NoFreePortError.
   */
  async start(storyId: string, name: string, start: ServiceStart): Promise<void> {
    const definition = start.config.services.defined[name];
    if (!definition) throw new UnknownServiceError(name, Object.keys(start.config.services.defined));
    if (this.#closed.has(storyId)) throw noWorktreeError(storyId);
    const service = this.#service(storyId, name, start.config);
    // Every port its command and env name must be there: a used-up range is said, not left empty.
    const { missing } = this.assignPorts(storyId, start.config);
    const named = [definition.command, ...Object.values(definition.env)].flatMap((text) => portPlaceholders(text).services);
    const lacking = missing.find((other) => named.includes(other));
    if (lacking !== undefined) throw new NoFreePortError(storyId, lacking, start.config.services.ports);
    if (service.starting) return service.starting;
    if (service.running) return;
    const stops = service.stops;
    service.starting = (async () => {
      // The previous start's processes are all gone first: the port is free of them.
      await service.ended;
      if (await portInUse(service.port)) {
        if (service.stops === stops) this.#fail(service, `port ${service.port} in use`);
        return;
      }
      if (service.stops === stops) this.#launch(service, definition, start);
    })().finally(() => {
      service.starting = undefined;
    });
    return service.starting;
  }

  /**
   * Stops a story's service and returns once every process of it is gone; STOPPED. A
   * service that does not run is left as it is.
   * @throws UnknownServiceError.
   */
  async stop(storyId: string, name: string, config: AgentPoolConfig): Promise<void> {
    const service = this.#services.get(storyId)?.get(name);
    if (!service && !Object.hasOwn(config.services.defined, name)) throw new UnknownServiceError(name, Object.keys(config.services.defined));
    if (!service) return;
    await this.#stop(service, { kind: 'stopped' });
  }

  /**
   * A story's worktree goes (it is archived, or its run's stop removes it): its services
   * are stopped and none starts until {@link reopen}. Archived (`release`), it gives its
   * ports back, and its services' output goes.
   */
  async close(storyId: string, options: { release: boolean }): Promise<void> {
    this.#closed.add(storyId);
    const services = [...(this.#services.get(storyId)?.values() ?? [])];
    await Promise.all(services.map((service) => this.#stop(service, { kind: 'stopped' })));
    if (!options.release) return;
    for (const service of services) this.#takenPorts.delete(service.port);
    this.#services.delete(storyId);
    this.#options.forget(storyId);
    for (const [end, readerStory] of this.#readers) if (readerStory === storyId) end();
  }

  /** The story has its worktree again (a run made it): its services may start. */
  reopen(storyId: string): void {
    this.#closed.delete(storyId);
  }

  /** Stops every service (the server stops). */
  async dispose(): Promise<void> {
    const all = [...this.#services.values()].flatMap((services) => [...services.values()]);
    await Promise.all(all.map((service) => this.#stop(service, { kind: 'shutdown' })));
    for (const end of [...this.#readers.keys()]) end();
  }

  /**
   * A service's output as it comes: its newest `last` lines first, then each new one.
   * A reader that falls more than {@link SERVICE_OUTPUT_LINES} behind skips the oldest,
   * with a line saying how many.
   * @throws UnknownServiceError.
   */
  outputReader(storyId: string, name: string, last: number, config: AgentPoolConfig): AsyncIterableIterator<string> {
    if (!Object.hasOwn(config.services.defined, name)) throw new UnknownServiceError(name, Object.keys(config.services.defined));
    const service = this.#service(storyId, name, config);
    const queue: string[] = service.output.last(last);
    let skipped = 0;
    let wake: (() => void) | undefined;
    let done = false;
    const unlisten = service.output.listen((line) => {
      queue.push(line);
      if (queue.length > SERVICE_OUTPUT_LINES) {
        queue.shift();
        skipped++;
      }
      wake?.();
    });
    const finish = (): IteratorResult<string> => {
      done = true;
      unlisten();
      this.#readers.delete(finish);
      wake?.();
      return { done: true, value: undefined };
    };
    this.#readers.set(finish, storyId);
    return {
      [Symbol.asyncIterator]() {
        return this;
      },
      async next() {
        for (;;) {
          if (done) return { done: true, value: undefined };
          if (skipped > 0) {
            const text = note(`${skipped} lines skipped: this reader fell behind`);
            skipped = 0;
            return { done: false, value: text };
          }
          const line = queue.shift();
          if (line !== undefined) return { done: false, value: line };
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
          wake = undefined;
        }
      },
      async return() {
        return finish();
      },
    };
  }

  /** The story's service, or undefined when it has no port and none is left. */
  #serviceIfPort(storyId: string, name: string, config: AgentPoolConfig): Service | undefined {
    try {
      return this.#service(storyId, name, config);
    } catch (error) {
      if (error instanceof NoFreePortError) return undefined;
      throw error;
    }
  }

  /**
   * The story's service, made (with its port) on first use.
   * @throws NoFreePortError when it has no port and none is left.
   */
  #service(storyId: string, name: string, config: AgentPoolConfig): Service {
    const known = this.#services.get(storyId)?.get(name);
    if (known) return known;
    const { first, last, ports } = config.services;
    let port = first;
    while (port <= last && this.#takenPorts.has(port)) port++;
    if (port > last) throw new NoFreePortError(storyId, name, ports);
    const service = this.#add(storyId, name, port);
    this.#options.save(service.record());
    return service;
  }

  #add(storyId: string, name: string, port: number): Service {
    let services = this.#services.get(storyId);
    if (!services) this.#services.set(storyId, (services = new Map()));
    const service = new Service(storyId, name, port);
    services.set(name, service);
    this.#takenPorts.add(port);
    return service;
  }

  #launch(service: Service, definition: ServiceConfig, start: ServiceStart): void {
    const { config } = start;
    const { logger } = this.#options;
    const label = `story ${service.storyId} service ${service.name}`;
    const supervisor = new RunSupervisor({ graceMs: config.pool.stop_grace_seconds * 1000, logger, label });
    const { ports } = this.assignPorts(service.storyId, config);
    const values: PlaceholderValues = {
      story_id: service.storyId,
      worktree_path: start.worktreePath,
      branch: start.branch,
      project_root: start.projectRoot,
      port: String(service.port),
      ...Object.fromEntries(Object.entries(ports).map(([name, port]) => [`port:${name}`, String(port)])),
    };
    const variables = Object.fromEntries(Object.entries(values).map(([name, value]) => [placeholderVariable(name), value]));
    const env: Record<string, string> = {
      ...start.baseEnv,
      ...variables,
      ...Object.fromEntries(Object.entries(definition.env).map(([name, value]) => [name, renderTemplate(value, values)])),
      PORT: String(service.port),
    };
    service.supervisor = supervisor;
    service.marker = supervisor.marker;
    service.status = 'STARTING';
    service.error = undefined;
    let child;
    try {
      child = supervisor.spawnAgent(
        spawnPipeProcess,
        { file: 'sh', args: ['-c', renderShellTemplate(definition.command)], cwd: start.worktreePath, env: { ...env, PWD: start.worktreePath }, cols: 200, rows: 50 },
        (running) => running.signalGroup('SIGTERM'),
      );
    } catch (error) {
      service.supervisor = undefined;
      this.#fail(service, `could not be started: ${(error as Error).message}`);
      return;
    }
    service.pid = child.pid;
    service.output.add(note(`started on port ${service.port}: ${definition.command}`));
    logger.info(`${label}: started on port ${service.port}`);
    this.#changed(service);

    const ready = definition.ready === '' ? undefined : new RegExp(definition.ready);
    const readers = [new LineReader({ maxLineLength: MAX_OUTPUT_LINE }), new LineReader({ maxLineLength: MAX_OUTPUT_LINE })];
    const onLine = (line: string): void => {
      const plain = stripAnsi(line.length > MAX_OUTPUT_LINE ? `${line.slice(0, MAX_OUTPUT_LINE)}…` : line).replace(CONTROL, '');
      service.output.add(plain);
      if (ready && service.status === 'STARTING' && service.supervisor === supervisor && ready.test(plain)) this.#ready(service);
    };
    child.onData((chunk) => readers[0]!.push(chunk).forEach(onLine));
    child.onStderr((chunk) => readers[1]!.push(chunk).forEach(onLine));
    if (!ready) void this.#awaitPort(service, supervisor);
    service.ended = child.exited
      .then(async (exit) => {
        for (const reader of readers) reader.end().forEach(onLine);
        await supervisor.end();
        this.#exited(service, supervisor, exit);
      })
      .catch((error: unknown) => logger.error(`${label}: its end could not be recorded`, error));
  }

  /** Tries the service's port until it accepts a connection (READY), it exits, or it is stopped. */
  async #awaitPort(service: Service, supervisor: RunSupervisor): Promise<void> {
    for (let round = 0; service.status === 'STARTING' && service.supervisor === supervisor && !supervisor.signal.aborted; round++) {
      if (await accepts(service.port)) {
        if (service.status === 'STARTING' && service.supervisor === supervisor) this.#ready(service);
        return;
      }
      await sleep(CONNECT_INTERVALS_MS[Math.min(round, CONNECT_INTERVALS_MS.length - 1)]!, undefined, { signal: supervisor.signal }).catch(() => undefined);
    }
  }

  #ready(service: Service): void {
    service.status = 'READY';
    this.#options.logger.info(`story ${service.storyId} service ${service.name}: READY on port ${service.port}`);
    this.#changed(service);
  }

  /** Its process exited: STOPPED when a stop ended it, FAILED (with its exit) when it ended on its own. */
  #exited(service: Service, supervisor: RunSupervisor, exit: ProcessExit): void {
    if (service.supervisor !== supervisor) return;
    service.supervisor = undefined;
    service.pid = undefined;
    if (supervisor.endReason) {
      service.status = 'STOPPED';
      service.output.add(note(supervisor.endReason.kind === 'shutdown' ? 'stopped: the server stops' : 'stopped'));
      this.#changed(service);
      return;
    }
    this.#fail(service, describeExit(exit));
  }

  #fail(service: Service, reason: string): void {
    service.status = 'FAILED';
    service.error = reason;
    service.output.add(note(reason));
    this.#options.logger.warn(`story ${service.storyId} service ${service.name}: FAILED, ${reason}`);
    this.#changed(service);
  }

  async #stop(service: Service, reason: { kind: 'stopped' } | { kind: 'shutdown' }): Promise<void> {
    service.stops++;
    await service.starting;
    const supervisor = service.supervisor;
    if (supervisor) await supervisor.stop(reason);
    await service.ended;
  }

  #changed(service: Service): void {
    this.#options.save(service.record());
    this.#options.changed(service.storyId);
  }
}

/** A service as callers see it. */
function info(service: Service): ServiceInfo {
  return {
    name: service.name,
    status: service.status,
    port: service.port,
    pid: service.pid,
    output: (last) => service.output.last(Math.min(Math.max(last, 0), SERVICE_OUTPUT_LINES)),
  };
}

/** A story without a worktree has nowhere to run a service. */
export function noWorktreeError(storyId: string): InvalidArgumentError {
  return new InvalidArgumentError(
    `story ${storyId} has no worktree to run a service in (it is archived, or its first run has not made it yet): start the story first`,
  );
}
