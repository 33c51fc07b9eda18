// The lock that keeps a second server off a project, against the owners it can find in
// its lock file: a live one (refused), a zombie (a server that was killed and whose parent
// has not reaped it yet: taken over), and the real CLI killed with SIGKILL.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { ServerAlreadyRunningError, ServerLock } from '../../src/server/server-lock.js';
import { BIN, runCli, serverUrl, userEnv } from '../support/cli.js';
import { isAlive } from '../support/events.js';
import { tempDir, tempRepo } from '../support/temp.js';

/** Field 3 (the state) and field 22 (the start time) of `/proc/<pid>/stat`. */
function stat(pid: number): { state: string; startTime: string } {
  const text = readFileSync(`/proc/${pid}/stat`, 'latin1');
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { state: fields[0]!, startTime: fields[19]! };
}

function lockFile(root: string): string {
  return path.join(root, '.agent-pool', 'server.lock');
}

function writeLock(root: string, owner: { pid: number; startTime: string }): void {
  mkdirSync(path.dirname(lockFile(root)), { recursive: true });
  writeFileSync(lockFile(root), JSON.stringify(owner), { mode: 0o600 });
}

/** Kills `child` (by its pid) when the test ends, if it still runs, and waits for it. */
function endWithTest(child: ChildProcess): Promise<void> {
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  onTestFinished(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await closed;
  });
  return closed;
}

/** Reads `stream` from now on; resolves with what it has written once `pattern` matches it. */
function written(stream: NodeJS.ReadableStream, pattern: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (chunk: Buffer): void => {
      text += chunk.toString();
      if (!pattern.test(text)) return;
      stream.off('data', onData);
      resolve(text);
    };
    stream.on('data', onData);
    stream.once('end', () => reject(new Error(`the stream ended before ${pattern}: ${JSON.stringify(text)}`)));
  });
}

/**
 * Python that runs `argv` as its child and does not reap it: it writes the child's pid on
 * fd 3, then `exited` once the child has exited (waitid with WNOWAIT leaves it a zombie),
 * and holds the zombie until its stdin closes, then reaps it.
 */
const NON_REAPING_PARENT = `
import os, sys
pid = os.fork()
if pid == 0:
    os.close(3)
    os.execvp(sys.argv[1], sys.argv[1:])
os.write(3, f"{pid}\\n".encode())
os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
os.write(3, b"exited\\n")
sys.stdin.read()
os.waitpid(pid, 0)
`;

/** `argv` run under {@link NON_REAPING_PARENT}: its pid, and when it has exited (a zombie). */
async function underNonReapingParent(argv: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) {
  const parent = spawn('python3', ['-c', NON_REAPING_PARENT, ...argv], {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: ['pipe', 'pipe', 'pipe', 'pipe'],
  });
  const closed = endWithTest(parent);
  parent.stderr!.resume();
  const report = parent.stdio[3] as NodeJS.ReadableStream;
  const reported = written(report, /^\d+\n/);
  const exited = written(report, /\nexited\n$/).then(() => undefined);
  exited.catch(() => undefined); // awaited by the tests that need it
  const pid = Number.parseInt(await reported, 10);
  onTestFinished(() => {
    if (isAlive(pid)) process.kill(pid, 'SIGKILL');
  });
  return {
    parent,
    pid,
    /** Resolves with what the child writes on stdout once `pattern` matches it. */
    stdout: (pattern: RegExp) => written(parent.stdout!, pattern),
    /** Resolves once the child has exited; it stays a zombie until {@link release}. */
    exited,
    /** Lets the parent reap the child and end. */
    release: async () => {
      parent.stdin!.end();
      await closed;
    },
  };
}

describe('ServerLock', () => {
  it('takes over the lock of a zombie owner (exited, not yet reaped by its parent)', async () => {
    const root = tempDir();
    const zombie = await underNonReapingParent(['sh', '-c', 'exit 0']);
    await zombie.exited;
    const { state, startTime } = stat(zombie.pid);
    expect(state).toBe('Z');
    writeLock(root, { pid: zombie.pid, startTime });

    const lock = ServerLock.acquire(root);
    expect(JSON.parse(readFileSync(lockFile(root), 'utf8'))).toEqual({ pid: process.pid, startTime: stat(process.pid).startTime });
    lock.release();
    await zombie.release();
  });

  it('refuses the lock of a live owner (the honest twin)', async () => {
    const root = tempDir();
    const live = await underNonReapingParent(['sleep', '60']);
    writeLock(root, { pid: live.pid, startTime: stat(live.pid).startTime });

    expect(() => ServerLock.acquire(root)).toThrow(ServerAlreadyRunningError);
    expect(() => ServerLock.acquire(root)).toThrow(`another agent-pool server (pid ${live.pid}) is already running for ${root}`);
    expect(JSON.parse(readFileSync(lockFile(root), 'utf8')).pid).toBe(live.pid);
    process.kill(live.pid, 'SIGKILL');
    await live.exited;
    await live.release();
  });

  it('takes over the lock of a pid that a later process reuses (another start time)', async () => {
    const root = tempDir();
    const live = await underNonReapingParent(['sleep', '60']);
    writeLock(root, { pid: live.pid, startTime: String(Number(stat(live.pid).startTime) - 1) });
    ServerLock.acquire(root).release();
    process.kill(live.pid, 'SIGKILL');
    await live.exited;
    await live.release();
  });
});

describe('agent-pool serve after the server before it was killed with SIGKILL', () => {
  /** The environment of a user who set no token. */
  it('starts while the killed server is a zombie its parent has not reaped', async () => {
    const root = tempRepo();
    const first = await underNonReapingParent([process.execPath, BIN, 'serve', '--port', '0'], { cwd: root, env: userEnv() });
    await first.stdout(/\/graphql\?token=\S+\n/);
    expect(JSON.parse(readFileSync(lockFile(root), 'utf8')).pid).toBe(first.pid);

    process.kill(first.pid, 'SIGKILL');
    await first.exited;
    expect(stat(first.pid).state).toBe('Z');
    const second = runCli(['serve', '--port', '0'], { cwd: root, env: userEnv() });
    await serverUrl(second);
    expect(JSON.parse(readFileSync(lockFile(root), 'utf8')).pid).toBe(second.child.pid);
    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
    await first.release();
  });

  it('starts again at once', async () => {
    const root = tempRepo();
    const first = runCli(['serve', '--port', '0'], { cwd: root, env: userEnv() });
    await serverUrl(first);
    first.child.kill('SIGKILL');
    const second = runCli(['serve', '--port', '0'], { cwd: root, env: userEnv() });
    await serverUrl(second);
    expect(await first.exited).toBe(null);
    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
  });
});
