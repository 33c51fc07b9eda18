import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

/** The git processes running in `dir` or below it (found by their working directory in /proc). */
export function gitProcessesIn(dir: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() !== 'git') continue;
      if (readlinkSync(`/proc/${entry}/cwd`).startsWith(dir)) found.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}
