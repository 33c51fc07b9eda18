import SchemaBuilder from '@pothos/core';
import ComplexityPlugin from '@pothos/plugin-complexity';
import { DateTimeResolver, JSONResolver } from 'graphql-scalars';
import type { PoolApi } from '../pool/pool-api.js';
import { complexityError, DEFAULT_LIST_MULTIPLIER, MAX_COMPLEXITY } from './complexity.js';

/** What every resolver gets: the pool it asks. The schema knows nothing below it. */
export interface SchemaContext {
  pool: PoolApi;
  /** Aborted when the client that asked is gone: work done only for it (git reads) stops. */
  signal?: AbortSignal;
  /** How many reads of git work this operation has asked for so far (see countGitRead). */
  gitReads?: number;
}

/** The Pothos builder of agent-pool's schema: its context, scalars, defaults and the cost limit. */
export const builder = new SchemaBuilder<{
  Context: SchemaContext;
  Scalars: {
    DateTime: { Input: Date; Output: Date };
    JSON: { Input: unknown; Output: unknown };
  };
  // Fields are non-null unless they say `nullable: true`, as in the contract's SDL.
  DefaultFieldNullability: false;
}>({
  defaultFieldNullability: false,
  plugins: [ComplexityPlugin],
  complexity: {
    defaultComplexity: 1,
    defaultListMultiplier: DEFAULT_LIST_MULTIPLIER,
    limit: { complexity: MAX_COMPLEXITY },
    complexityError: (_kind, { complexity, maxComplexity }) => complexityError(complexity, maxComplexity),
  },
});

builder.addScalarType('DateTime', DateTimeResolver, {
  description: 'A date and time, as an ISO 8601 string in UTC (2026-01-31T12:00:00.000Z).',
});
builder.addScalarType('JSON', JSONResolver, {
  description: 'Any JSON value, as the agent printed it.',
});
