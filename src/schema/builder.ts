import SchemaBuilder from '@pothos/core';
import { DateTimeResolver, JSONResolver } from 'graphql-scalars';
import type { AgentPool } from '../pool/agent-pool.js';

/** What every resolver gets: the pool it asks. The schema knows nothing below it. */
export interface SchemaContext {
  pool: AgentPool;
}

/** The Pothos builder of agent-pool's schema: its context, scalars and defaults. */
export const builder = new SchemaBuilder<{
  Context: SchemaContext;
  Scalars: {
    DateTime: { Input: Date; Output: Date };
    JSON: { Input: unknown; Output: unknown };
  };
  // Fields are non-null unless they say `nullable: true`, as in the contract's SDL.
  DefaultFieldNullability: false;
}>({ defaultFieldNullability: false });

builder.addScalarType('DateTime', DateTimeResolver, {
  description: 'A date and time, as an ISO 8601 string in UTC (2026-01-31T12:00:00.000Z).',
});
builder.addScalarType('JSON', JSONResolver, {
  description: 'Any JSON value, as the agent printed it.',
});
