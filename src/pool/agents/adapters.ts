import type { AgentKind } from '../../config/config.js';
import type { AgentAdapter } from '../agent-adapter.js';
import { acpAdapter } from './acp.js';
import { claudeAdapter } from './claude.js';
import { codexAdapter } from './codex.js';
import { geminiAdapter } from './gemini.js';
import { opencodeAdapter } from './opencode.js';
import { textAdapter } from './text.js';

const ADAPTERS: Record<AgentKind, AgentAdapter> = {
  claude: claudeAdapter,
  codex: codexAdapter,
  gemini: geminiAdapter,
  opencode: opencodeAdapter,
  acp: acpAdapter,
  text: textAdapter,
};

/** The adapter of an agent kind. */
export function adapterFor(kind: AgentKind): AgentAdapter {
  return ADAPTERS[kind];
}
