import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The fake agent script (see its header for the directives a prompt may hold). */
export const FAKE_AGENT = fileURLToPath(new URL('../fixtures/fake-agent.mjs', import.meta.url));

/** A plain-sh agent that prints 20 lines and a result and exits at once. */
export const SHORT_AGENT = fileURLToPath(new URL('../fixtures/short-agent.sh', import.meta.url));

/** Extra lines for each section of a test's agent-pool.toml. */
export interface ConfigLines {
  agent?: string;
  worktree?: string;
  pool?: string;
  store?: string;
  /** Whole tables after the sections (`[agents.NAME]` profiles). */
  tables?: string;
}

/**
 * Writes an agent-pool.toml at `root` that runs the fake agent as a claude-stream-json
 * agent, with a short stop grace so that tests of stubborn agents stay quick.
 */
export function writeFakeAgentConfig(root: string, lines: ConfigLines = {}): void {
  const text = [
    '[agent]',
    `command = ${JSON.stringify(FAKE_AGENT)}`,
    lines.agent ?? '',
    '[worktree]',
    lines.worktree ?? '',
    '[pool]',
    lines.pool ?? 'stop_grace_seconds = 0.5',
    '[store]',
    lines.store ?? '',
    lines.tables ?? '',
  ].join('\n');
  writeFileSync(path.join(root, 'agent-pool.toml'), `${text}\n`);
}
