import type { AgentEvent } from '../pool/events.js';
import { builder } from './builder.js';

/** The GraphQL type of each kind of event. */
export const EVENT_TYPE_NAMES = {
  status: 'AgentStatusEvent',
  output: 'AgentOutputEvent',
  json: 'AgentJsonEvent',
  done: 'AgentDoneEvent',
  error: 'AgentErrorEvent',
  tool_call: 'AgentToolCallEvent',
  tool_result: 'AgentToolResultEvent',
  usage: 'AgentUsageEvent',
  approval_request: 'AgentApprovalRequestEvent',
  approval_resolved: 'AgentApprovalResolvedEvent',
  plan: 'AgentPlanEvent',
} as const satisfies Record<AgentEvent['type'], string>;

/** The AgentEvent interface that every event type implements. */
export const AgentEventRef = builder.interfaceRef<AgentEvent>('AgentEvent').implement({
  description:
    'Something that happened to a story. seq starts at 1 per story and grows by exactly 1 per event, across runs.',
  resolveType: (event) => EVENT_TYPE_NAMES[event.type],
  fields: (t) => ({
    seq: t.exposeInt('seq', { description: 'The event\'s place in its story: 1, 2, 3, … without gaps.' }),
    storyId: t.exposeID('storyId', { description: 'The story the event belongs to.' }),
    at: t.expose('at', { type: 'DateTime', description: 'When agent-pool recorded the event.' }),
    run: t.exposeInt('run', { nullable: true, description: 'The run (1, 2, … per story) the event belongs to.' }),
  }),
});
