import type { AgentFormat } from '../../config/config.js';
import type { AgentAdapter } from '../agent-adapter.js';
import { claudeAdapter } from './claude.js';
import { textAdapter } from './text.js';

const ADAPTERS: Record<AgentFormat, AgentAdapter> = {
  'claude-stream-json': claudeAdapter,
  text: textAdapter,
};

/** The adapter that reads the output of agents of this format. */
export function adapterFor(format: AgentFormat): AgentAdapter {
  return ADAPTERS[format];
}
