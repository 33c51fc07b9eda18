import { readFileSync } from 'node:fs';
import type { AgentEvent } from '../../src/pool/events.js';

/** Reads events until one matches `until` (included), or the iterator ends. */
export async function readUntil(
  events: AsyncIterator<AgentEvent>,
  until: (event: AgentEvent) => boolean,
): Promise<AgentEvent[]> {
  const seen: AgentEvent[] = [];
  for (;;) {
    const next = await events.next();
    if (next.done) return seen;
    seen.push(next.value);
    if (until(next.value)) return seen;
  }
}

/** Whether an event ends a run. */
export function isTerminal(event: AgentEvent): boolean {
  return event.type === 'done' || event.type === 'error';
}

/** Whether a pid is a live (non-zombie) process. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}
