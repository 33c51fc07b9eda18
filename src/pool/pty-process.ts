import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, createWriteStream, constants as fsConstants, mkdtempSync, openSync, rmSync, type WriteStream } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import path from 'node:path';
import * as nodePty from 'node-pty';
import { InputBacklogFullError } from './pool-errors.js';
import type { AgentProcess, ProcessExit, SpawnRequest } from './agent-process.js';

/**
 * The run helper: a fixed POSIX sh script that runs the agent's argv (its positional
 * parameters; no user text is ever parsed by the shell), then prints a sentinel line with
 * the agent's exit code and holds the terminal until agent-pool confirms it has read that
 * line.
 *
 * Why: on Linux, bytes a process writes to a pseudo-terminal just before it exits can be
 * discarded when the last holder of the terminal closes it (microsoft/node-pty issues 72
 * and 726; measured here: node-pty alone lost the tail of 10 of 1,000 short runs). While
 * the helper holds the terminal nothing is discarded, and everything before the sentinel
 * is known to have been read. The helper ignores SIGINT and SIGTERM (its children get the
 * default handlers), so a polite stop reaches the agent and the helper still reports it.
 */
const RUN_HELPER = [
  'sentinel=$1; input=$2; shift 2',
  'trap : INT TERM',
  // With a pipe for stdin, the agent reads it instead of the terminal.
  'if [ "$input" = - ]; then "$@"; else "$@" <"$input"; fi',
  'code=$?',
  `printf '\\n%s %s\\n' "$sentinel" "$code"`,
  'read -r _ack',
  'exit "$code"',
].join('\n');

/**
 * A named pipe (FIFO) for an agent's stdin, in a private temp dir: node-pty always gives
 * the child the terminal as stdin, so the run helper reopens stdin from this path. Writes
 * wait until the agent opens it; once it is gone, they go nowhere.
 */
function openStdinPipe(): { path: string; write(data: string): void; close(): void; dispose(): void } {
  const dir = mkdtempSync(path.join(tmpdir(), 'agent-pool-stdin-'));
  const fifo = path.join(dir, 'stdin');
  execFileSync('mkfifo', ['-m', '600', fifo]);
  const stream: WriteStream = createWriteStream(fifo);
  // The agent may be gone before or while it is written to (EPIPE): its exit says why.
  stream.on('error', () => undefined);
  return {
    path: fifo,
    write: (data) => {
      if (!stream.writableEnded) stream.write(data);
    },
    close: () => {
      if (!stream.writableEnded) stream.end();
    },
    dispose: () => {
      // A writer still waiting for a reader (the agent never opened its stdin) holds a
      // thread of libuv's pool: opening the reading end lets that open finish.
      try {
        closeSync(openSync(fifo, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK));
      } catch {
        // already gone
      }
      stream.destroy();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * The most bytes of terminal input that may wait for an agent that does not read it;
 * node-pty keeps what the terminal does not take in a queue of its own, with no bound.
 * @default 1 MiB
 */
export const MAX_QUEUED_INPUT_BYTES = 1024 * 1024;

/**
 * The bytes node-pty holds for the terminal, not yet taken by it (its write queue is not
 * public: read with care, 0 when it cannot be found).
 */
function queuedInputBytes(pty: nodePty.IPty): number {
  const queue = (pty as unknown as { _writeStream?: { _writeQueue?: unknown } })._writeStream?._writeQueue;
  if (!Array.isArray(queue)) return 0;
  let bytes = 0;
  for (const task of queue as Array<{ buffer?: { length: number }; offset?: number }>) {
    bytes += (task.buffer?.length ?? 0) - (task.offset ?? 0);
  }
  return bytes;
}

function signalName(signal: number | undefined): NodeJS.Signals | null {
  if (!signal) return null;
  const entry = Object.entries(constants.signals).find(([, number]) => number === signal);
  return (entry?.[0] as NodeJS.Signals | undefined) ?? null;
}

/**
 * Starts an agent in a new pseudo-terminal with node-pty, through the run helper. The
 * helper leads the terminal's session and process group, and the agent runs in that
 * group, in the foreground, as it would in a terminal window.
 */
export function spawnPtyProcess(request: SpawnRequest): AgentProcess {
  const sentinel = Buffer.from(`AGENT_POOL_EXIT_${randomBytes(16).toString('hex')}`);
  const stdin = request.stdin === 'pipe' ? openStdinPipe() : undefined;
  const helperArgs = [sentinel.toString(), stdin?.path ?? '-', request.file, ...request.args];
  const pty = nodePty.spawn('/bin/sh', ['-c', RUN_HELPER, 'agent-pool-run', ...helperArgs], {
    name: 'xterm-256color',
    cols: request.cols,
    rows: request.rows,
    cwd: request.cwd,
    env: { ...request.env },
    encoding: null,
  });

  const listeners: Array<(chunk: Buffer) => void> = [];
  const deliver = (chunk: Buffer): void => {
    if (chunk.length > 0) for (const listener of listeners) listener(chunk);
  };

  let held: Buffer = Buffer.alloc(0);
  /** After the sentinel: the bytes of its line read so far (they carry the exit code). */
  let exitLine: Buffer | undefined;
  let drained = false;
  let exitedAlready = false;
  let settle!: (exit: ProcessExit) => void;
  const exited = new Promise<ProcessExit>((resolve) => {
    settle = resolve;
  }).finally(() => stdin?.dispose());

  const readExitLine = (): void => {
    const newline = exitLine!.indexOf(0x0a);
    if (newline === -1) return;
    const code = Number.parseInt(exitLine!.subarray(0, newline).toString('latin1').trim(), 10);
    drained = true;
    // Everything the agent wrote has been read: let the helper go.
    pty.write('\n');
    settle({ exitCode: Number.isNaN(code) ? null : code, signal: null });
  };

  // node-pty delivers Buffers when `encoding` is null, although its types say string.
  pty.onData((data: string | Buffer) => {
    if (drained) return;
    const chunk = typeof data === 'string' ? Buffer.from(data) : data;
    if (exitLine) {
      exitLine = Buffer.concat([exitLine, chunk]);
      readExitLine();
      return;
    }
    const bytes = held.length === 0 ? chunk : Buffer.concat([held, chunk]);
    held = Buffer.alloc(0);
    const at = bytes.indexOf(sentinel);
    if (at !== -1) {
      deliver(bytes.subarray(0, at));
      exitLine = bytes.subarray(at + sentinel.length);
      readExitLine();
      return;
    }
    // The sentinel always starts a line: hold back a last partial line that could be the
    // start of it. No line is complete without its newline, so holding costs no latency.
    const tailStart = bytes.lastIndexOf(0x0a) + 1;
    const tail = bytes.subarray(tailStart);
    if (tail.length > 0 && sentinel.subarray(0, tail.length).equals(tail)) {
      held = Buffer.from(tail);
      deliver(bytes.subarray(0, tailStart));
    } else {
      deliver(bytes);
    }
  });

  // Without the sentinel (the helper was killed), node-pty's exit is the best there is.
  pty.onExit(({ exitCode, signal }) => {
    exitedAlready = true;
    deliver(held);
    held = Buffer.alloc(0);
    const killedBy = signalName(signal);
    settle({ exitCode: killedBy ? null : exitCode, signal: killedBy });
  });

  return {
    pid: pty.pid,
    onData(listener) {
      listeners.push(listener);
    },
    // After the end, the terminal is gone: input and resizes have nowhere to go.
    write(data) {
      if (drained || exitedAlready) return;
      const queued = queuedInputBytes(pty);
      if (queued + Buffer.byteLength(data) > MAX_QUEUED_INPUT_BYTES) throw new InputBacklogFullError(queued, MAX_QUEUED_INPUT_BYTES);
      pty.write(data);
    },
    resize(cols, rows) {
      if (!drained && !exitedAlready) pty.resize(cols, rows);
    },
    writeStdin(data) {
      if (!stdin) throw new Error('this agent reads its stdin from its terminal');
      stdin.write(data);
    },
    closeStdin() {
      stdin?.close();
    },
    signalGroup(signal) {
      try {
        process.kill(-pty.pid, signal);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
      }
    },
    exited,
  };
}
