// Every test file runs with a marker of its own in the environment that its children
// inherit; after the file, no process may still carry it. The suite fails if a test
// leaves a child process behind.
import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { afterAll, expect } from 'vitest';

/** The variable whose value marks the processes of one test file. */
export const VARIABLE = 'AGENT_POOL_TEST_FILE';
const marker = randomUUID();
process.env[VARIABLE] = marker;

/** The live processes, other than this one, that this test file started (pid and command line). */
export function leftovers(): string[] {
  const needle = `${VARIABLE}=${marker}`;
  const found: string[] = [];
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      const environ = readFileSync(`/proc/${pid}/environ`, 'latin1');
      if (!environ.split('\0').includes(needle)) continue;
      const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
      if (stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z') continue;
      found.push(`${pid} ${readFileSync(`/proc/${pid}/cmdline`, 'latin1').replaceAll('\0', ' ').trim()}`);
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

afterAll(() => {
  expect(leftovers(), 'processes left behind by this test file').toEqual([]);
});
