import { spawn } from 'node:child_process';
import type { AgentProcess, ProcessExit, SpawnRequest } from './agent-process.js';

/**
 * How long the output pipes are read after the agent exits, for what it wrote last, before
 * they are let go: a process it left in the background may hold them open for ever (the
 * supervisor ends it next).
 * @default 2000
 */
const DRAIN_WAIT_MS = 2000;

/** An agent on pipes: its stdout and stderr apart, and no terminal. */
export interface PipedProcess extends AgentProcess {
  /** The agent's stderr, in chunks (its stdout is {@link AgentProcess.onData}). */
  onStderr(listener: (chunk: Buffer) => void): void;
  /** Whether the agent has exited (its output may still be being read: see `exited`). */
  readonly hasExited: boolean;
}

/**
 * Starts an agent with pipes for stdin, stdout and stderr, in a session and process group
 * of its own (as a terminal would give it), for protocols that need a clean byte stream
 * (the Agent Client Protocol: JSON-RPC on stdin and stdout). `exited` settles once the
 * agent has exited and its pipes are read to their end (or {@link DRAIN_WAIT_MS} later).
 * @throws Error when the program cannot be started.
 */
export function spawnPipeProcess(request: SpawnRequest): PipedProcess {
  const child = spawn(request.file, [...request.args], {
    cwd: request.cwd,
    env: { ...request.env },
    detached: true,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  // A program that cannot be started has no pid (below); later errors are only of signals.
  child.on('error', () => undefined);
  // The agent may exit with input still unwritten (EPIPE): its exit says why.
  child.stdin.on('error', () => undefined);
  child.stdout.on('error', () => undefined);
  child.stderr.on('error', () => undefined);
  if (child.pid === undefined) {
    child.stdin.destroy();
    throw new Error(`could not start ${request.file}`);
  }
  const pid = child.pid;

  const outputClosed = Promise.all(
    [child.stdout, child.stderr].map((stream) => new Promise<void>((resolve) => stream.once('close', () => resolve()))),
  );
  let hasExited = false;
  const exited = new Promise<ProcessExit>((resolve) => {
    child.once('exit', (exitCode, signal) => {
      hasExited = true;
      const drained = setTimeout(() => {
        child.stdout.destroy();
        child.stderr.destroy();
      }, DRAIN_WAIT_MS);
      void outputClosed.then(() => {
        clearTimeout(drained);
        child.stdin.destroy();
        resolve({ exitCode: signal ? null : exitCode, signal });
      });
    });
  });

  return {
    pid,
    get hasExited() {
      return hasExited;
    },
    onData(listener) {
      child.stdout.on('data', listener);
    },
    onStderr(listener) {
      child.stderr.on('data', listener);
    },
    write() {
      throw new Error(`${request.file} has no terminal: it is driven through its protocol on stdin`);
    },
    // Nothing to resize: the agent has no terminal.
    resize() {},
    writeStdin(data) {
      if (!child.stdin.writableEnded && !child.stdin.destroyed) child.stdin.write(data);
    },
    closeStdin() {
      if (!child.stdin.writableEnded) child.stdin.end();
    },
    signalGroup(signal) {
      try {
        process.kill(-pid, signal);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
      }
    },
    exited,
  };
}
