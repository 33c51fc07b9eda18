import { isIP } from 'node:net';
import path from 'node:path';
import { type AgentPoolConfig, loadConfig } from '../config/config.js';
import { type Logger, type LogLevel, stderrLogger, ThrottledLog } from '../logger.js';
import { AgentPool } from '../pool/agent-pool.js';
import { GRAPHQL_PATH, startServer } from '../server/agent-pool-server.js';
import { MCP_PATH } from '../server/mcp-endpoint.js';
import { parseOrigin } from '../server/request-guard.js';
import { removeServerInfo, writeServerInfo } from '../server/server-info.js';
import { ServerAlreadyRunningError, ServerLock } from '../server/server-lock.js';
import { resolveToken, TokenFileError } from '../server/token.js';
import { PostgresStore } from '../store/postgres-store.js';
import type { StateStore } from '../store/state-store.js';
import { RedisBus } from '../bus/redis-bus.js';
import { ClusterPool, deliveryClaim } from '../cluster/cluster-pool.js';
import { ClusterStore, type ServerRole } from '../store/cluster-store.js';
import { withoutPassword } from '../url.js';
import { hostname } from 'node:os';
import { Store } from '../store/store.js';
import { StoreError } from '../store/store-error.js';
import { excludeFromGit, prepareStateDir, resolveProjectRoot, STATE_DIR_NAME } from '../worktree/project.js';
import { ServeError } from './serve-error.js';

/** The options of `agent-pool serve`. */
export interface ServeOptions {
  /** The project directory. */
  project: string;
  /** @default "127.0.0.1" */
  host: string;
  /** @default 4747 */
  port: number;
  /** The token, given on the command line (where `ps` shows it). */
  token: string | undefined;
  /** A file that holds the token. */
  tokenFile?: string | undefined;
  noAuth: boolean;
  /** Web origins besides the server's own that may call it. */
  allowOrigins: string[];
  /** Host names besides the defaults that requests may be addressed to. */
  allowHosts: string[];
  /** The quietest level logged. @default "info" */
  logLevel?: LogLevel;
  /** This server's name in a cluster (`[bus]` set). @default the host name */
  runnerName?: string;
  /** Its part in a cluster: `api` runs no agents. @default "all" */
  role?: ServerRole;
}


/** Whether a host name or address can only be reached from this machine. */
export function isLoopbackHost(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1' || host === '0:0:0:0:0:0:0:1';
}

/** Resolves once SIGINT or SIGTERM arrives. */
function shutdownSignal(logger: Logger): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    let received: NodeJS.Signals | undefined;
    const onSignal = (signal: NodeJS.Signals): void => {
      if (received) {
        logger.warn(`${signal} received again: still stopping the agents (they get SIGKILL after the grace)`);
        return;
      }
      received = signal;
      resolve(signal);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}

/**
 * `agent-pool serve`: serves the project's agents over GraphQL until SIGINT or SIGTERM,
 * then stops every agent (each recorded STOPPED, every process gone) and returns 0.
 * @throws ServeError, NotAGitRepositoryError, ConfigError, ServerAlreadyRunningError for
 *   what makes it exit 2.
 */
export async function serveCommand(options: ServeOptions): Promise<number> {
  if (options.noAuth && !isLoopbackHost(options.host)) {
    throw new ServeError(
      `--no-auth is refused on ${options.host}: without a token anyone who can reach that address could run commands on this machine; bind a loopback address (127.0.0.1) or keep auth on`,
    );
  }
  for (const origin of options.allowOrigins) {
    try {
      parseOrigin(origin);
    } catch (error) {
      throw new ServeError((error as Error).message);
    }
  }
  const projectRoot = await resolveProjectRoot(options.project);
  const config = loadConfig(projectRoot);
  await prepareStateDir(projectRoot);
  let lock: ServerLock;
  try {
    lock = ServerLock.acquire(projectRoot);
  } catch (error) {
    if (error instanceof ServerAlreadyRunningError) throw new ServeError(error.message);
    throw error;
  }
  const logger = stderrLogger(options.logLevel);
  let store: StateStore | undefined;
  let cluster: ClusterPool | undefined;
  let coordination: ClusterStore | undefined;
  let queuedRuns: Set<string> | undefined;
  let wasLost = false;
  let incarnation: number | undefined;
  /** This server's name in a cluster. */
  let runner: string | undefined;
  try {
    let busUrl: string | undefined;
    try {
      busUrl = urlOf('bus', config.bus, process.env);
      runner = busUrl === undefined ? undefined : (options.runnerName ?? hostname());
      if (busUrl === undefined && (options.role ?? 'all') !== 'all') {
        throw new StoreError(`--role ${options.role} is a server's part in a cluster: set [store] url and [bus] url in agent-pool.toml, or leave --role out`);
      }
      if (busUrl !== undefined && config.cluster.lost_after_seconds <= config.cluster.heartbeat_seconds) {
        throw new StoreError(
          `[cluster] lost_after_seconds (${config.cluster.lost_after_seconds}) must be longer than heartbeat_seconds (${config.cluster.heartbeat_seconds}): a few heartbeats, 30 and 5 by default`,
        );
      }
      store = await openStore(projectRoot, config.store, process.env, runner);
      if (busUrl !== undefined) {
        coordination = new ClusterStore(urlOf('store', config.store, process.env)!);
        // Registered (and fenced) before its recovery writes anything: were the others declaring
        // it lost at this moment, one of the two goes first, and its runs are ended once.
        const registered = await coordination.register(runner!, options.role ?? 'all');
        (store as PostgresStore).fence(registered.incarnation);
        incarnation = registered.incarnation;
        wasLost = registered.wasLost;
        if (wasLost) logger.warn(`cluster: the others had declared ${runner} lost while it was away; its runs were ended there, and what survived of them ends now`);
        queuedRuns = new Set((await coordination.queued()).map((run) => `${run.storyId}:${run.number}`));
      }
    } catch (error) {
      if (error instanceof StoreError) throw new ServeError(error.message);
      throw error;
    }
    let token: string | null = null;
    if (!options.noAuth) {
      try {
        token = resolveToken({ flag: options.token, file: options.tokenFile, env: process.env, projectRoot }).token;
      } catch (error) {
        if (error instanceof TokenFileError) throw new ServeError(error.message);
        throw error;
      }
    }
    if (options.token !== undefined) {
      logger.warn('--token is visible to every user of this machine in ps and /proc: use --token-file FILE or AGENT_POOL_TOKEN instead');
    }
    const pool = await AgentPool.open({
      projectRoot,
      logger,
      store,
      runner,
      queuedRuns,
      wasLost,
      // Each webhook attempt is held by one server of the cluster, from the first at the start.
      claimDelivery: coordination && runner !== undefined ? deliveryClaim(coordination, runner) : undefined,
      // Wherever its value is, the token is kept from agents (the configuration's secrets are, at each start).
      secrets: { values: token === null ? [] : [token] },
    });
    if (busUrl !== undefined && runner !== undefined) {
      let bus: RedisBus | undefined;
      try {
        // Signed with the token every server of the cluster shares.
        bus = await RedisBus.open({ url: busUrl, prefix: `agent-pool:${await store.clusterId()}`, name: runner, secret: token ?? undefined, logger });
        cluster = await ClusterPool.join(pool, bus, store, logger, {
          role: options.role ?? 'all',
          coordination: coordination!,
          heartbeatMs: config.cluster.heartbeat_seconds * 1000,
          lostAfterMs: config.cluster.lost_after_seconds * 1000,
          fence: (next) => (store as PostgresStore).fence(next),
          incarnation,
        });
      } catch (error) {
        await bus?.close();
        await pool.dispose();
        throw new ServeError(`the bus at ${withoutPassword(busUrl)} cannot be used (${(error as Error).message}): check [bus] url (or url_env), and that Redis runs there`);
      }
      logger.info(`serving as ${runner} in a cluster (role ${options.role ?? 'all'})`);
    }
    const signal = shutdownSignal(logger);
    keepServingAfterUnhandledRejections(logger);
    const server = await startServer({
      pool: cluster?.api ?? pool,
      host: options.host,
      port: options.port,
      token,
      allowOrigins: options.allowOrigins,
      allowHosts: options.allowHosts,
      logger,
    }).catch(
      async (error: NodeJS.ErrnoException) => {
        await pool.dispose();
        if (error.code === 'EADDRINUSE') {
          throw new ServeError(`port ${options.port} on ${options.host} is already in use: pass --port <another port> (0 picks a free one)`);
        }
        if (error.code === 'EADDRNOTAVAIL' || error.code === 'ENOTFOUND') {
          throw new ServeError(`cannot listen on ${options.host}: it is not an address of this machine`);
        }
        throw error;
      },
    );
    // Where clients on this machine find it (agent-pool mcp): its addresses, not its token;
    // written before the URL is printed, so that whoever reads that line finds the file.
    writeServerInfo(projectRoot, {
      url: `${server.localOrigin}${GRAPHQL_PATH}`,
      mcpUrl: `${server.localOrigin}${MCP_PATH}`,
      dashboardUrl: `${server.localOrigin}/`,
      pid: process.pid,
      startedAt: new Date().toISOString(),
    });

    const query = token === null ? '' : `?token=${encodeURIComponent(token)}`;
    // One write: a reader of the first line finds the second with it.
    process.stdout.write(
      `agent-pool is serving ${projectRoot} at ${server.origin}${GRAPHQL_PATH}${query}\n` +
        `the dashboard: ${server.origin}/${query}\n`,
    );
    logger.info(`listening on ${server.origin}${GRAPHQL_PATH}${token === null ? ' (auth off)' : ''}`);
    const received = await signal;
    const running = pool.list().filter((agent) => agent.status === 'RUNNING' || agent.status === 'PENDING').length;
    logger.info(`${received}: stopping ${running} agent(s) and shutting down`);
    // No more claims: what waits in the queue is for the other runners.
    cluster?.stopClaiming();
    await pool.dispose();
    await server.close();
    await cluster?.close();
    logger.info('stopped');
    return 0;
  } finally {
    await cluster?.close();
    // A server that did not get as far as joining leaves too: the others do not wait for it to be lost.
    if (!cluster && coordination && runner !== undefined && incarnation !== undefined) await coordination.leave(runner, incarnation).catch(() => {});
    removeServerInfo(projectRoot);
    await coordination?.close();
    await store?.close();
    lock.release();
  }
}

/**
 * A promise that rejects with no one to hear it must not end the server and orphan its
 * agents: yoga's executor abandons the other items of a list once one fails a non-null
 * field, and their later rejections (a read cut short) reach no handler. They are logged,
 * throttled (a client can cause them), and the server goes on.
 */
function keepServingAfterUnhandledRejections(logger: Logger): void {
  const log = new ThrottledLog(logger);
  process.on('unhandledRejection', (reason) => {
    log.warn(`a promise rejected with no handler (the server goes on): ${reason instanceof Error ? reason.message : String(reason)}`);
  });
}

/**
 * The URL a section's `url` or `url_env` gives (undefined: neither is set).
 * @throws StoreError when the keys contradict each other, or the variable is not set.
 */
function urlOf(section: 'store' | 'bus', keys: { url: string; url_env: string }, env: NodeJS.ProcessEnv): string | undefined {
  if (keys.url !== '' && keys.url_env !== '') throw new StoreError(`[${section}] has both url and url_env: keep one`);
  if (keys.url_env === '') return keys.url || undefined;
  const url = env[keys.url_env];
  if (!url) throw new StoreError(`[${section}] url_env names ${keys.url_env}, which is not set: set it to the ${section === 'store' ? 'Postgres' : 'Redis'} URL, or remove url_env`);
  return url;
}

/**
 * The state database: Postgres when `[store] url` or `url_env` names one (shared by every
 * server of the project), else the SQLite file of `path`.
 * @throws StoreError when it cannot be used, or the keys contradict each other.
 */
async function openStore(projectRoot: string, config: AgentPoolConfig['store'], env: NodeJS.ProcessEnv, runner: string | undefined): Promise<StateStore> {
  const url = urlOf('store', config, env);
  if (url) return PostgresStore.open(url, { runner });
  if (runner !== undefined) throw new StoreError('[bus] needs [store] url (or url_env): the servers of a cluster share their state in Postgres');
  const databaseFile = path.resolve(projectRoot, config.path);
  await keepOutOfGitStatus(projectRoot, databaseFile);
  return Store.open(databaseFile);
}

/** A database placed inside the project but outside `.agent-pool/` is kept out of `git status` too. */
async function keepOutOfGitStatus(projectRoot: string, databaseFile: string): Promise<void> {
  const relative = path.relative(projectRoot, databaseFile);
  if (relative.startsWith('..') || path.isAbsolute(relative)) return;
  const parts = relative.split(path.sep);
  if (parts[0] === STATE_DIR_NAME) return;
  // The file and SQLite's -wal and -shm files beside it.
  await excludeFromGit(projectRoot, [`/${parts.join('/')}*`]);
}
