import type { AgentEvent } from '../pool/events.js';
import { AgentEventRef } from './agent-event.js';
import { builder } from './builder.js';

builder.objectRef<Extract<AgentEvent, { type: 'plan' }>>('AgentPlanEvent').implement({
  description:
    'The agent\'s plan for the turn, whole each time it changes (an ACP agent\'s `plan` update). ' +
    'It follows the AgentJsonEvent of the message it came from (lineSeq).',
  interfaces: [AgentEventRef],
  fields: (t) => ({
    lineSeq: t.exposeInt('lineSeq', { nullable: true, description: 'The seq of the AgentJsonEvent of the message this came from.' }),
    entries: t.expose('entries', {
      type: 'JSON',
      description: 'The plan\'s entries as the agent sent them: ACP gives each `content`, `priority` (high, medium, low) and `status` (pending, in_progress, completed).',
    }),
  }),
});
