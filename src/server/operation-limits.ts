import { maxAliasesPlugin } from '@escape.tech/graphql-armor-max-aliases';
import { maxDepthPlugin } from '@escape.tech/graphql-armor-max-depth';
import { maxDirectivesPlugin } from '@escape.tech/graphql-armor-max-directives';
import { maxTokensPlugin } from '@escape.tech/graphql-armor-max-tokens';
import type { Plugin } from 'graphql-yoga';
import { MAX_COMPLEXITY } from '../schema/complexity.js';

/**
 * The limits every operation must stay under, so that one request cannot stall the
 * server. GraphiQL's full introspection query has depth 21 counting its fragments, 183
 * tokens and no aliases; agent-pool's own operations are far smaller.
 */
export const OPERATION_LIMITS = {
  /** Selection depth, each fragment spread counting as a level. */
  maxDepth: 24,
  /** Aliases in one operation. */
  maxAliases: 30,
  /** Lexical tokens in one document. */
  maxTokens: 2000,
  /**
   * The cost of an operation, counted by the schema (Pothos' complexity plugin) with its
   * variables' values and list sizes: see {@link MAX_COMPLEXITY}.
   */
  maxCost: MAX_COMPLEXITY,
  /** Directives in one operation. */
  maxDirectives: 50,
} as const;

/**
 * The envelop plugins that enforce {@link OPERATION_LIMITS} but the cost (which the schema
 * checks itself), on HTTP, SSE and WebSocket alike.
 */
export function operationLimitPlugins(): Plugin[] {
  return [
    maxTokensPlugin({ n: OPERATION_LIMITS.maxTokens }),
    maxDepthPlugin({ n: OPERATION_LIMITS.maxDepth, flattenFragments: false, ignoreIntrospection: false }),
    maxAliasesPlugin({ n: OPERATION_LIMITS.maxAliases, allowList: [] }),
    maxDirectivesPlugin({ n: OPERATION_LIMITS.maxDirectives }),
  ] as Plugin[];
}
