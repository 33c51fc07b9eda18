import type { AgentEvent } from '../pool/events.js';
import { AgentEventRef } from './agent-event.js';
import { builder } from './builder.js';

builder.objectRef<Extract<AgentEvent, { type: 'tool_result' }>>('AgentToolResultEvent').implement({
  description: 'A tool call\'s result. It follows the AgentJsonEvent of the line it came from (lineSeq).',
  interfaces: [AgentEventRef],
  fields: (t) => ({
    lineSeq: t.exposeInt('lineSeq', { nullable: true, description: 'The seq of the AgentJsonEvent of the line this came from.' }),
    callId: t.exposeString('callId', { description: 'The id of the AgentToolCallEvent this answers.' }),
    isError: t.exposeBoolean('isError', { description: 'Whether the tool failed.' }),
    output: t.exposeString('output', { nullable: true, description: 'What the tool returned, as text.' }),
  }),
});
