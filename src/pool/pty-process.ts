import { randomBytes } from 'node:crypto';
import { constants } from 'node:os';
import * as nodePty from 'node-pty';
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
  'sentinel=$1; shift',
  'trap : INT TERM',
  '"$@"',
  'code=$?',
  `printf '\\n%s %s\\n' "$sentinel" "$code"`,
  'read -r _ack',
  'exit "$code"',
].join('\n');

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
  const pty = nodePty.spawn('/bin/sh', ['-c', RUN_HELPER, 'agent-pool-run', sentinel.toString(), request.file, ...request.args], {
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
  });

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
      if (!drained && !exitedAlready) pty.write(data);
    },
    resize(cols, rows) {
      if (!drained && !exitedAlready) pty.resize(cols, rows);
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
