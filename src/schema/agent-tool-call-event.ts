import type { AgentEvent } from '../pool/events.js';
import { AgentEventRef } from './agent-event.js';
import { builder } from './builder.js';
import { ToolKindEnum } from './tool-kind.js';

builder.objectRef<Extract<AgentEvent, { type: 'tool_call' }>>('AgentToolCallEvent').implement({
  description: 'The agent called a tool. It follows the AgentJsonEvent of the line it came from (lineSeq).',
  interfaces: [AgentEventRef],
  fields: (t) => ({
    lineSeq: t.exposeInt('lineSeq', { nullable: true, description: 'The seq of the AgentJsonEvent of the line this came from.' }),
    callId: t.exposeString('callId', { description: 'The call\'s id, which its AgentToolResultEvent repeats.' }),
    tool: t.exposeString('tool', { description: 'The tool\'s name, as the CLI calls it.' }),
    kind: t.expose('kind', { type: ToolKindEnum, description: 'What the tool does.' }),
    input: t.expose('input', { type: 'JSON', nullable: true, description: 'The call\'s arguments, as the CLI printed them.' }),
  }),
});
