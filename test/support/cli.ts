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

/** Starts `agent-pool <args>`; it is killed (by its pid) when the test ends if still running. */
export function runCli(args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): CliProcess {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  onTestFinished(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  return { child, stdout: () => out, stderr: () => err, exited };
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
