// Codex through its ACP adapter, codex-acp, over the Agent Client Protocol: see acp-agents.ts.
import { describeAcpCli } from './acp-agents.js';

describeAcpCli('codex');
