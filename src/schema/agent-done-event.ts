import type { AgentEvent } from '../pool/events.js';
import { AgentEventRef } from './agent-event.js';
import { builder } from './builder.js';

builder.objectRef<Extract<AgentEvent, { type: 'done' }>>('AgentDoneEvent').implement({
  description: 'The run ended COMPLETED: its terminal event.',
  interfaces: [AgentEventRef],
  fields: (t) => ({
    sessionId: t.exposeString('sessionId', { nullable: true, description: 'The agent\'s session id, if it reported one.' }),
    exitCode: t.exposeInt('exitCode', { nullable: true, description: 'The agent\'s exit code.' }),
  }),
});
