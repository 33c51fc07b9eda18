import type { AgentProfileInfo } from '../pool/agent-pool.js';
import { builder } from './builder.js';

/** The AgentProfile type: one agent profile of agent-pool.toml. */
export const AgentProfileRef = builder.objectRef<AgentProfileInfo>('AgentProfile').implement({
  description: 'An agent profile of agent-pool.toml: [agent] ("default") or [agents.NAME].',
  fields: (t) => ({
    name: t.exposeString('name', { description: 'What startAgent(agent:) names it.' }),
    kind: t.exposeString('kind', { description: 'Its agent CLI: claude, codex, gemini, opencode or text.' }),
    permissionMode: t.exposeString('permissionMode', {
      description: 'Claude\'s permission mode; all but bypassPermissions ask a person to approve tool calls.',
    }),
    isDefault: t.exposeBoolean('isDefault', { description: 'Whether a new story gets it when startAgent names none.' }),
  }),
});
