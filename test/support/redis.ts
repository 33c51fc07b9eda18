import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

/**
 * Why a private Redis cannot run here, or undefined when it can (Debian's `redis-server`).
 * The caller skips with it, and fails under CI=true.
 */
export function redisUnavailable(): string | undefined {
  if (spawnSync('redis-server', ['--version']).status === 0) return undefined;
  const why = 'Redis is not installed (Debian: apt-get install redis-server; .ci/run does)';
  console.warn(`skipping the Redis tests: ${why}`);
  return why;
}

/** A Redis of the test's own, on a loopback port nobody else uses, keeping nothing on disk. */
export interface PrivateRedis {
  /** redis://127.0.0.1:PORT */
  readonly url: string;
  /** Ends it at once (SIGKILL): every connection drops, and every message on its way is lost. */
  kill(): Promise<void>;
  /** Starts it again on the same port, empty. */
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** A loopback port that was free a moment ago. */
async function freePort(): Promise<number> {
  const server = createServer();
  server.on('error', () => {});
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Starts redis-server on `port`; resolves once it accepts connections. */
async function startRedisServer(port: number, dir: string): Promise<ChildProcess> {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--daemonize', 'no'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('Ready to accept connections')) resolve(child);
    });
    child.on('exit', (code) => reject(new Error(`redis-server exited (${code}) before it was ready: ${output.slice(-500)}`)));
  });
}

/** Starts a Redis private to the caller on a free loopback port. */
export async function startRedis(): Promise<PrivateRedis> {
  const dir = mkdtempSync(path.join(tmpdir(), 'agent-pool-redis-'));
  const port = await freePort();
  let child: ChildProcess | undefined = await startRedisServer(port, dir);
  const kill = async (signal: NodeJS.Signals): Promise<void> => {
    const running = child;
    child = undefined;
    if (!running || running.exitCode !== null || running.signalCode !== null) return;
    const exited = once(running, 'exit');
    running.kill(signal);
    await exited;
  };
  return {
    url: `redis://127.0.0.1:${port}`,
    kill: () => kill('SIGKILL'),
    async start() {
      child = await startRedisServer(port, dir);
    },
    async stop() {
      await kill('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
