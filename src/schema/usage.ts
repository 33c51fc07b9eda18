import type { Usage } from '../pool/events.js';
import { builder } from './builder.js';

/** The Usage type. */
export const UsageRef = builder.objectRef<Usage>('Usage').implement({
  description: 'Tokens and cost, as far as the agent CLI reports them (null where it reports nothing, never a guess).',
  fields: (t) => ({
    inputTokens: t.exposeInt('inputTokens', { nullable: true, description: 'All input tokens, those read from a cache included.' }),
    outputTokens: t.exposeInt('outputTokens', { nullable: true, description: 'Output tokens (reasoning included).' }),
    cachedInputTokens: t.exposeInt('cachedInputTokens', { nullable: true, description: 'The input tokens read from a cache.' }),
    costUsd: t.exposeFloat('costUsd', { nullable: true, description: 'Cost in US dollars, where the CLI reports one.' }),
  }),
});
