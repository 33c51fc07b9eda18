import { readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * The environment variable that marks every process of a run. Each run gets its own
 * value; every descendant inherits it, including children that leave the run's process
 * group or session (Claude's Bash tool starts its commands in a session of their own), so
 * reading it back from `/proc` finds all of them. A reused pid never carries it.
 */
export const RUN_MARKER_VARIABLE = 'AGENT_POOL_RUN';

/** How often the processes of a run are looked for while they are asked to exit. */
const POLL_INTERVAL_MS = 20;

function readProc(file: string): Buffer | undefined {
  try {
    return readFileSync(file);
  } catch {
    return undefined; // gone, or another user's process
  }
}

/** Whether a pid is a zombie (exited, not yet reaped: it holds nothing any more). */
function isZombie(pid: number): boolean {
  const stat = readProc(`/proc/${pid}/stat`)?.toString('latin1');
  if (stat === undefined) return true;
  // The state follows the command name, which is in parentheses and may contain spaces.
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z';
}

/**
 * The live processes whose environment carries `AGENT_POOL_RUN=<marker>`, excluding this
 * process. Linux only (it reads `/proc`).
 */
export function findRunProcesses(marker: string): number[] {
  const needle = Buffer.from(`\0${RUN_MARKER_VARIABLE}=${marker}\0`);
  const first = needle.subarray(1);
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    const environ = readProc(`/proc/${pid}/environ`);
    if (!environ || environ.length === 0) continue;
    // The variable may be the first entry, which has no NUL before it.
    if (environ.indexOf(needle) === -1 && !environ.subarray(0, first.length).equals(first)) continue;
    if (!isZombie(pid)) pids.push(pid);
  }
  return pids;
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
  for (;;) {
    const alive = findRunProcesses(marker);
    if (alive.length === 0 || Date.now() >= deadline) return alive;
    await sleep(Math.min(POLL_INTERVAL_MS, Math.max(1, deadline - Date.now())));
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
  const running = findRunProcesses(marker);
  if (running.length === 0) return [];
  signalAll(running, 'SIGTERM');
  let alive = await waitForRunProcesses(marker, graceMs);
  for (let round = 0; alive.length > 0 && round < KILL_ROUNDS; round++) {
    signalAll(alive, 'SIGKILL');
    alive = await waitForRunProcesses(marker, 1000);
  }
  return alive;
}
