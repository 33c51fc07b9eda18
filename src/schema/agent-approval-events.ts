import { type AgentEvent, claudeApprovalOptions } from '../pool/events.js';
import { AgentEventRef } from './agent-event.js';
import { ApprovalOptionRef } from './approval.js';
import { builder } from './builder.js';

builder.objectRef<Extract<AgentEvent, { type: 'approval_request' }>>('AgentApprovalRequestEvent').implement({
  description:
    'The agent asks a person to allow a tool call, and waits (Agent.pendingApprovals lists it until it is answered). ' +
    'It follows the AgentJsonEvent of the line it came from (lineSeq).',
  interfaces: [AgentEventRef],
  fields: (t) => ({
    lineSeq: t.exposeInt('lineSeq', { nullable: true, description: 'The seq of the AgentJsonEvent of the line this came from.' }),
    requestId: t.exposeID('requestId', { description: 'The request\'s id, which respondToApproval names.' }),
    tool: t.exposeString('tool', { description: 'The tool\'s name, as the CLI calls it.' }),
    input: t.expose('input', { type: 'JSON', nullable: true, description: 'The call\'s arguments.' }),
    suggestions: t.expose('suggestions', {
      type: 'JSON',
      nullable: true,
      description: 'The agent\'s own suggested permission rules (remember: true applies them).',
    }),
    options: t.field({
      type: [ApprovalOptionRef],
      description: 'The answers it offers (as Approval.options).',
      resolve: (event) => event.options ?? claudeApprovalOptions(event.suggestions),
    }),
  }),
});

builder.objectRef<Extract<AgentEvent, { type: 'approval_resolved' }>>('AgentApprovalResolvedEvent').implement({
  description:
    'An approval request was answered, or refused by agent-pool because its turn or run ended first (reason says why).',
  interfaces: [AgentEventRef],
  fields: (t) => ({
    requestId: t.exposeID('requestId', { description: 'The request that was answered.' }),
    allowed: t.exposeBoolean('allowed', { description: 'Whether the tool call was allowed to run.' }),
    optionId: t.exposeID('optionId', {
      nullable: true,
      description: 'The option chosen (ApprovalOption.id); null when agent-pool refused the request because its turn or run ended.',
    }),
    reason: t.exposeString('reason', {
      nullable: true,
      description:
        'A denial: what the model was told, or why agent-pool refused the request; an allowance: the person\'s message, if any.',
    }),
  }),
});
