import type { AgentEvent } from '../pool/events.js';
import { AgentEventRef } from './agent-event.js';
import { builder } from './builder.js';

builder.objectRef<Extract<AgentEvent, { type: 'error' }>>('AgentErrorEvent').implement({
  description: 'The run ended FAILED or STOPPED: its terminal event.',
  interfaces: [AgentEventRef],
  fields: (t) => ({
    message: t.exposeString('message', { description: 'Why: the agent\'s own error, the exit code and last output, or "stopped by request".' }),
  }),
});
