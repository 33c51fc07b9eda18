import type { AgentEvent } from '../pool/events.js';
import { AgentEventRef } from './agent-event.js';
import { builder } from './builder.js';
import { tokenCount } from './usage.js';

builder.objectRef<Extract<AgentEvent, { type: 'usage' }>>('AgentUsageEvent').implement({
  description:
    'What the agent reported it used: per turn or per step (Codex, opencode) or for the run (Claude, Gemini), as its CLI ' +
    'reports it. It follows the AgentJsonEvent of the line it came from (lineSeq).',
  interfaces: [AgentEventRef],
  fields: (t) => ({
    lineSeq: t.exposeInt('lineSeq', { nullable: true, description: 'The seq of the AgentJsonEvent of the line this came from.' }),
    inputTokens: t.int({ nullable: true, description: 'All input tokens, those read from a cache included.', resolve: (event) => tokenCount(event.inputTokens) }),
    outputTokens: t.int({ nullable: true, description: 'Output tokens.', resolve: (event) => tokenCount(event.outputTokens) }),
    cachedInputTokens: t.int({ nullable: true, description: 'The input tokens read from a cache.', resolve: (event) => tokenCount(event.cachedInputTokens) }),
    costUsd: t.exposeFloat('costUsd', { nullable: true, description: 'Cost in US dollars, where the CLI reports one.' }),
  }),
});
