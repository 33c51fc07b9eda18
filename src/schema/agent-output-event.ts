import type { AgentEvent } from '../pool/events.js';
import { AgentEventRef } from './agent-event.js';
import { builder } from './builder.js';

builder.objectRef<Extract<AgentEvent, { type: 'output' }>>('AgentOutputEvent').implement({
  description: 'Text the agent said (a text block of its message), or a line it printed that is not JSON (ANSI codes removed).',
  interfaces: [AgentEventRef],
  fields: (t) => ({
    text: t.exposeString('text', { description: 'The text.' }),
  }),
});
