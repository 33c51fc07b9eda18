import type { AgentEvent } from '../pool/events.js';
import { AgentEventRef } from './agent-event.js';
import { builder } from './builder.js';

builder.objectRef<Extract<AgentEvent, { type: 'json' }>>('AgentJsonEvent').implement({
  description: 'A JSON line the agent printed (a stream-json event), parsed and otherwise unchanged.',
  interfaces: [AgentEventRef],
  fields: (t) => ({
    data: t.expose('data', { type: 'JSON', description: 'The parsed line.' }),
  }),
});
