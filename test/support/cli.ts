import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { type Client, createClient } from 'graphql-ws';
import { onTestFinished } from 'vitest';
import WebSocket from 'ws';

/** The `agent-pool` command, as npm installs it. */
export const BIN = fileURLToPath(new URL('../../bin/agent-pool.js', import.meta.url));

/** A running `agent-pool` process and what it printed so far. */
export interface CliProcess {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code (null when killed by a signal). */
  exited: Promise<number | null>;
}

/**
 * Starts a command in a process group of its own and collects what it prints; the group is
 * killed (by its id) when the test ends if the command still runs, so that nothing it
 * started outlives the test.
 */
export function startProcess(
  command: string,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): CliProcess {
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (err += chunk.toString()));
  // A command that cannot start (ENOENT) says so in its stderr; 'close' follows.
  child.on('error', (error) => (err += `${error.message}\n`));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  onTestFinished(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // the group is gone already
    }
    await exited;
  });
  return { child, stdout: () => out, stderr: () => err, exited };
}

/**
 * The environment of a user who set no token (`AGENT_POOL_TOKEN` left out, so that the
 * server makes or reads its own), with `extra` variables.
 */
export function userEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env = Object.fromEntries(Object.entries(process.env).filter((entry): entry is [string, string] => entry[1] !== undefined));
  delete env.AGENT_POOL_TOKEN;
  return { ...env, ...extra };
}

/** Starts `agent-pool <args>`; it is killed (by its process group) when the test ends if still running. */
export function runCli(args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): CliProcess {
  return startProcess(process.execPath, [BIN, ...args], options);
}

/** Waits for the URL line a server prints once it accepts connections. */
export async function serverUrl(cli: CliProcess): Promise<URL> {
  for (;;) {
    const match = /(http:\/\/\S+\/graphql\S*)/.exec(cli.stdout());
    if (match) return new URL(match[1]!);
    const exited = await Promise.race([
      new Promise<false>((resolve) => cli.child.stdout!.once('data', () => resolve(false))),
      cli.exited.then(() => true),
    ]);
    if (exited && !/(http:\/\/\S+\/graphql\S*)/.test(cli.stdout())) {
      throw new Error(`agent-pool exited before it served: ${cli.stderr()}`);
    }
  }
}

/** A graphql-ws client of the server at `url` (the URL line, with its token), disposed when the test ends. */
export function wsClientOf(url: URL): Client {
  const client = createClient({
    url: `ws://${url.host}/graphql`,
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${url.searchParams.get('token')}` },
    retryAttempts: 0,
  });
  onTestFinished(() => client.dispose());
  return client;
}
