import type { Usage } from '../pool/events.js';
import { builder } from './builder.js';

/** The largest GraphQL Int. */
const MAX_INT = 2 ** 31 - 1;

/**
 * A token count as GraphQL's Int can carry it: an agent can print any number, and a count
 * past the largest Int would fail the whole field; it reads as the largest (that many or more).
 */
export function tokenCount(count: number | undefined): number | null {
  if (count === undefined) return null;
  return Math.max(0, Math.min(Math.trunc(count), MAX_INT));
}

/** The Usage type. */
export const UsageRef = builder.objectRef<Usage>('Usage').implement({
  description: 'Tokens and cost, as far as the agent CLI reports them (null where it reports nothing, never a guess).',
  fields: (t) => ({
    inputTokens: t.int({ nullable: true, description: 'All input tokens, those read from a cache included.', resolve: (usage) => tokenCount(usage.inputTokens) }),
    outputTokens: t.int({ nullable: true, description: 'Output tokens (reasoning included).', resolve: (usage) => tokenCount(usage.outputTokens) }),
    cachedInputTokens: t.int({ nullable: true, description: 'The input tokens read from a cache.', resolve: (usage) => tokenCount(usage.cachedInputTokens) }),
    costUsd: t.exposeFloat('costUsd', { nullable: true, description: 'Cost in US dollars, where the CLI reports one.' }),
  }),
});
