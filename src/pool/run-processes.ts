import { readdir, readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * The environment variable that marks every process of a run. Each run gets its own
 * value; every descendant inherits it, including children that leave the run's process
 * group or session (Claude's Bash tool starts its commands in a session of their own), so
 * reading it back from `/proc` finds all of them. A reused pid never carries it.
 *
 * It is how a run's processes are found, never a signal: nothing read from a process's
 * output, argv or environment decides how a run ended.
 */
export const RUN_MARKER_VARIABLE = 'AGENT_POOL_RUN';

/**
 * How often the processes of a run are looked for while they are asked to exit: soon at
 * first (most exit at once), then less often, so that a stuck process does not keep the
 * server reading all of `/proc` many times a second.
 */
const POLL_INTERVALS_MS = [10, 20, 50, 100, 200];

async function readProc(file: string): Promise<Buffer | undefined> {
  try {
    return await readFile(file);
  } catch {
    return undefined; // gone, or another user's process
  }
}

/** Whether a `/proc/<pid>/stat` says the process has exited (a zombie, or dead): it holds nothing any more. */
export function hasExited(stat: string): boolean {
  // The state follows the command name, which is in parentheses and may contain spaces.
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state === 'Z' || state === 'X' || state === 'x';
}

/**
 * The live processes whose environment carries `AGENT_POOL_RUN=<marker>`, excluding this
 * process. Linux only (it reads `/proc`); the reads are asynchronous, so looking does not
 * stall the server's sockets on a host with many processes.
 */
export async function findRunProcesses(marker: string): Promise<number[]> {
  const needle = Buffer.from(`\0${RUN_MARKER_VARIABLE}=${marker}\0`);
  const first = needle.subarray(1);
  const pids = (await readdir('/proc')).map(Number).filter((pid) => Number.isInteger(pid) && pid !== process.pid);
  const found = await Promise.all(
    pids.map(async (pid) => {
      const environ = await readProc(`/proc/${pid}/environ`);
      if (!environ || environ.length === 0) return undefined;
      // The variable may be the first entry, which has no NUL before it.
      if (environ.indexOf(needle) === -1 && !environ.subarray(0, first.length).equals(first)) return undefined;
      const stat = (await readProc(`/proc/${pid}/stat`))?.toString('latin1');
      return stat === undefined || hasExited(stat) ? undefined : pid;
    }),
  );
  return found.filter((pid): pid is number => pid !== undefined);
}

function signalAll(pids: readonly number[], signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

/**
 * Waits until no process of the run is left, for at most `timeoutMs`.
 * @returns the pids still alive at the end (empty when all are gone).
 */
export async function waitForRunProcesses(marker: string, timeoutMs: number): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  for (let round = 0; ; round++) {
    const alive = await findRunProcesses(marker);
    if (alive.length === 0 || Date.now() >= deadline) return alive;
    const interval = POLL_INTERVALS_MS[Math.min(round, POLL_INTERVALS_MS.length - 1)]!;
    await sleep(Math.min(interval, Math.max(1, deadline - Date.now())));
  }
}

/** How many rounds of SIGKILL a stop sends before it reports the processes it cannot end. */
const KILL_ROUNDS = 10;

/**
 * Ends every process of a run: SIGTERM to each, then SIGKILL after `graceMs` to whatever is
 * left, and returns once none is left. New processes that appear meanwhile (a child forked
 * during the stop) are found by the next look and get the same treatment.
 * @returns the pids that even SIGKILL did not end within about ten seconds (a process
 *   stuck in the kernel); normally empty.
 */
export async function terminateRunProcesses(marker: string, graceMs: number): Promise<number[]> {
  let running = await findRunProcesses(marker);
  if (running.length === 0) running = await confirmNone(marker);
  if (running.length === 0) return [];
  signalAll(running, 'SIGTERM');
  let alive = await waitForRunProcesses(marker, graceMs);
  for (let round = 0; round < KILL_ROUNDS; round++) {
    if (alive.length === 0) alive = await confirmNone(marker);
    if (alive.length === 0) break;
    signalAll(alive, 'SIGKILL');
    alive = await waitForRunProcesses(marker, 1000);
  }
  return alive;
}

/**
 * Looks once more, a moment after a look that found nothing: a process that forked and
 * died while `/proc` was being read can leave a child that look missed.
 */
async function confirmNone(marker: string): Promise<number[]> {
  await sleep(POLL_INTERVALS_MS[0]!);
  return findRunProcesses(marker);
}
