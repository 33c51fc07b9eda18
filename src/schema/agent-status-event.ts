import type { AgentEvent } from '../pool/events.js';
import { AgentEventRef } from './agent-event.js';
import { AgentStatusEnum } from './agent-status.js';
import { builder } from './builder.js';

builder.objectRef<Extract<AgentEvent, { type: 'status' }>>('AgentStatusEvent').implement({
  description: 'The story\'s status changed. A run\'s terminal event is preceded by the matching status event.',
  interfaces: [AgentEventRef],
  fields: (t) => ({
    status: t.expose('status', { type: AgentStatusEnum, description: 'The new status.' }),
  }),
});
