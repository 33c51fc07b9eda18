// The real gemini CLI over the Agent Client Protocol: see acp-agents.ts.
import { describeAcpCli } from './acp-agents.js';

describeAcpCli('gemini');
