import { onTestFinished } from 'vitest';
import { AgentPool, type AgentPoolOptions } from '../../src/pool/agent-pool.js';
import { type ConfigLines, writeFakeAgentConfig } from './fake-agent.js';
import { tempRepo } from './temp.js';

/** A pool in memory over a new repository whose agent-pool.toml runs the fake agent; disposed after the test. */
export function fakeAgentPool(lines: ConfigLines = {}, options: Partial<AgentPoolOptions> = {}): AgentPool {
  const root = tempRepo();
  writeFakeAgentConfig(root, lines);
  const pool = new AgentPool({ projectRoot: root, ...options });
  onTestFinished(() => pool.dispose());
  return pool;
}
