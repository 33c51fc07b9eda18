import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, constants as fsConstants, mkdtempSync, openSync, rmSync } from 'node:fs';
import net from 'node:net';
import { constants, tmpdir } from 'node:os';
import path from 'node:path';
import * as nodePty from 'node-pty';
import { InputBacklogFullError } from './pool-errors.js';
import type { AgentProcess, ProcessExit, SpawnRequest } from './agent-process.js';

/**
 * The run helper: a fixed POSIX sh script that runs the agent's argv (its positional
 * parameters; no user text is ever parsed by the shell) in the terminal, and holds the
 * terminal after the agent exits until agent-pool has read everything the agent wrote.
 *
 * Why it holds the terminal: on Linux, bytes a process writes to a pseudo-terminal just
 * before it exits can be discarded when the last holder of the terminal closes it
 * (microsoft/node-pty issues 72 and 726; measured here: node-pty alone lost the tail of 10
 * of 1,000 short runs).
 *
 * How, with nothing the agent can print or read taken as a signal: the helper talks to the
 * server over two FIFOs in a private directory, which it opens and then removes before the
 * agent starts (the agent gets neither descriptor, and the paths in the helper's argv no
 * longer exist). When the agent exits, the helper says `exited` on the `exit` FIFO; only
 * then does the server make a drain secret and send it over the `drain` FIFO; the helper
 * prints it as a line of its own and waits. The secret did not exist while the agent ran,
 * so when the server reads that line, everything before it is the agent's, all of it. The
 * server then acknowledges, and the helper exits with the agent's exit status, which is the
 * run's exit code: nothing written to the FIFOs is (an agent of the same user could reopen
 * them through `/proc/<helper>/fd`, and at most make the server send its line early).
 *
 * The helper ignores SIGINT and SIGTERM (its children get the default handlers), so a
 * polite stop reaches the agent and the helper still reports it.
 */
const RUN_HELPER = [
  'dir=$1; input=$2; shift 2',
  'exec 3>"$dir/exit" 4<"$dir/drain"',
  'if [ "$input" = pipe ]; then exec 5<"$dir/stdin"; fi',
  'rm -f "$dir/exit" "$dir/drain" "$dir/stdin"; rmdir "$dir" 2>/dev/null',
  // The server may close the agent's stdin now: the helper holds the FIFO open.
  `printf 'ready\\n' >&3`,
  'trap : INT TERM',
  // With a pipe for stdin, the agent reads it instead of the terminal.
  'if [ "$input" = pipe ]; then "$@" <&5 3>&- 4<&- 5<&-; else "$@" 3>&- 4<&-; fi',
  'code=$?',
  'if [ "$input" = pipe ]; then exec 5<&-; fi',
  `printf 'exited\\n' >&3`,
  'IFS= read -r secret <&4 || exit "$code"',
  `printf '\\n%s\\n' "$secret"`,
  'read -r _ack <&4',
  'exit "$code"',
].join('\n');

/**
 * A FIFO of the run's private directory, held open by the server read-write (Linux allows
 * it): the helper's opens never wait, and the server never sees an end of file. No libuv
 * thread ever blocks on it.
 */
function openFifo(dir: string, name: string, use: { readable: boolean; writable: boolean }): net.Socket {
  const file = path.join(dir, name);
  execFileSync('mkfifo', ['-m', '600', file]);
  const fd = openSync(file, fsConstants.O_RDWR | fsConstants.O_NONBLOCK);
  try {
    const socket = new net.Socket({ fd, ...use });
    // The helper may be gone (EPIPE): its exit says why.
    socket.on('error', () => undefined);
    return socket;
  } catch (error) {
    closeSync(fd);
    throw error;
  }
}

/** The server's ends of a run's channels to its helper, and the private dir they were made in. */
class HelperChannels {
  readonly dir = mkdtempSync(path.join(tmpdir(), 'agent-pool-run-'));
  readonly #sockets: net.Socket[] = [];
  readonly exit: net.Socket;
  readonly drain: net.Socket;
  /** The agent's stdin, with `stdin: "pipe"`. */
  readonly stdin: net.Socket | undefined;

  constructor(stdin: boolean) {
    try {
      this.exit = this.#open('exit', { readable: true, writable: false });
      this.drain = this.#open('drain', { readable: false, writable: true });
      this.stdin = stdin ? this.#open('stdin', { readable: false, writable: true }) : undefined;
    } catch (error) {
      this.dispose();
      throw error;
    }
  }

  #open(name: string, use: { readable: boolean; writable: boolean }): net.Socket {
    const socket = openFifo(this.dir, name, use);
    this.#sockets.push(socket);
    return socket;
  }

  /** Closes the server's ends and removes the dir (the helper has usually removed it already). */
  dispose(): void {
    for (const socket of this.#sockets) socket.destroy();
    rmSync(this.dir, { recursive: true, force: true });
  }
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

const CR = 0x0d;
const LF = 0x0a;

/**
 * How long the helper is waited for to print the drain line before it is let go anyway
 * (and again each time after): a terminal whose output an agent stopped (`stty tostop`, a
 * flow-control stop) or changed would otherwise hold the run for ever.
 * @default 2000
 */
const DRAIN_WAIT_MS = 2000;

/** A drain secret: digits only, which no terminal output mode (`stty olcuc`) changes. */
function drainSecret(): Buffer {
  const digits = [...randomBytes(24)].map((byte) => String(byte % 10)).join('');
  return Buffer.from(`${digits}`);
}

/**
 * Where the drain line `<secret>` is in `bytes`, as a whole line (after a line break,
 * followed by one; the terminal may have turned "\n" into "\r\n"): from the line break
 * before it to the end of its own.
 */
function findDrainLine(bytes: Buffer, secret: Buffer): { start: number; end: number } | undefined {
  for (let at = bytes.indexOf(secret); at !== -1; at = bytes.indexOf(secret, at + 1)) {
    let end = at + secret.length;
    if (bytes[end] === CR) end++;
    if (at === 0 || bytes[at - 1] !== LF || bytes[end] !== LF) continue;
    return { start: at >= 2 && bytes[at - 2] === CR ? at - 2 : at - 1, end: end + 1 };
  }
  return undefined;
}

/**
 * Starts an agent in a new pseudo-terminal with node-pty, through the run helper. The
 * helper leads the terminal's session and process group, and the agent runs in that
 * group, in the foreground, as it would in a terminal window.
 */
export function spawnPtyProcess(request: SpawnRequest): AgentProcess {
  const channels = new HelperChannels(request.stdin === 'pipe');
  let pty: nodePty.IPty;
  try {
    pty = nodePty.spawn('/bin/sh', ['-c', RUN_HELPER, 'agent-pool-run', channels.dir, request.stdin ?? 'terminal', request.file, ...request.args], {
      name: 'xterm-256color',
      cols: request.cols,
      rows: request.rows,
      cwd: request.cwd,
      env: { ...request.env },
      encoding: null,
    });
  } catch (error) {
    channels.dispose();
    throw error;
  }

  const listeners: Array<(chunk: Buffer) => void> = [];
  const deliver = (chunk: Buffer): void => {
    if (chunk.length > 0) for (const listener of listeners) listener(chunk);
  };

  /** The drain secret, made once the helper said the agent exited. */
  let secret: Buffer | undefined;
  /** Output read since the secret was sent that may still hold (the start of) its line. */
  let held: Buffer = Buffer.alloc(0);
  let drained = false;
  let exitedAlready = false;
  /** Lets the helper go if the drain line does not come (a terminal whose output is stopped or mangled). */
  let release: NodeJS.Timeout | undefined;
  let settle!: (exit: ProcessExit) => void;
  const exited = new Promise<ProcessExit>((resolve) => {
    settle = resolve;
  }).finally(() => {
    clearInterval(release);
    channels.dispose();
  });

  const stdin = channels.stdin;
  /** Whether the helper has opened its FIFOs: until then, closing the agent's stdin would lose what waits in it. */
  let ready = false;
  let closeStdinWhenReady = false;
  // The helper's reports, one per line: `ready`, then `exited`. Nothing in them is trusted
  // beyond "send the drain secret now": the exit code is the helper's own exit status.
  let reported = '';
  channels.exit.on('data', (data: Buffer) => {
    if (secret) return;
    // Only whole short lines matter; an agent that writes into the FIFO through /proc cannot grow this.
    reported = (reported + data.toString('latin1')).slice(-64);
    for (let newline = reported.indexOf('\n'); newline !== -1 && !secret; newline = reported.indexOf('\n')) {
      reported = reported.slice(newline + 1);
      if (!ready) {
        ready = true;
        if (closeStdinWhenReady && stdin && !stdin.writableEnded) stdin.end();
        continue;
      }
      secret = drainSecret();
      channels.drain.write(`${secret.toString()}\n`);
      release = setInterval(() => channels.drain.write('\n'), DRAIN_WAIT_MS);
      release.unref();
    }
  });

  // node-pty delivers Buffers when `encoding` is null, although its types say string.
  pty.onData((data: string | Buffer) => {
    const chunk = typeof data === 'string' ? Buffer.from(data) : data;
    if (!secret || drained) {
      deliver(chunk);
      return;
    }
    const bytes = held.length === 0 ? chunk : Buffer.concat([held, chunk]);
    held = Buffer.alloc(0);
    const found = findDrainLine(bytes, secret);
    if (found) {
      drained = true;
      // Everything written before the line has been read: let the helper go. What follows
      // it (a background process's output) is still delivered, until the terminal closes.
      // (The release timer keeps running until the helper exits: an agent that reads the
      // drain FIFO through /proc could take this acknowledgement.)
      channels.drain.write('\n');
      deliver(bytes.subarray(0, found.start));
      deliver(bytes.subarray(found.end));
      return;
    }
    // Hold back the last partial line, and its line break, which could be the start of the drain line.
    const lastBreak = bytes.lastIndexOf(LF);
    const keepFrom = lastBreak === -1 ? 0 : lastBreak > 0 && bytes[lastBreak - 1] === CR ? lastBreak - 1 : lastBreak;
    deliver(bytes.subarray(0, keepFrom));
    held = Buffer.from(bytes.subarray(keepFrom));
  });

  // The helper exits with the agent's exit status (or is killed): that is the run's exit.
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
      if (!stdin.writableEnded && !stdin.destroyed) stdin.write(data);
    },
    closeStdin() {
      // The server's end is the FIFO's only writer: closing it (once what was written is
      // flushed) is the agent's end of input, once the helper holds the FIFO's other end.
      if (!ready) closeStdinWhenReady = true;
      else if (stdin && !stdin.writableEnded) stdin.end();
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
