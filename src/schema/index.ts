import { lexicographicSortSchema, printSchema } from 'graphql';
import { builder } from './builder.js';
import './agent-status.js';
import './agent-run.js';
import './change-kind.js';
import './file-change.js';
import './worktree-changes.js';
import './commit.js';
import './agent.js';
import './agent-profile.js';
import './agent-event.js';
import './agent-status-event.js';
import './agent-output-event.js';
import './agent-json-event.js';
import './agent-done-event.js';
import './agent-error-event.js';
import './tool-kind.js';
import './usage.js';
import './agent-tool-call-event.js';
import './agent-tool-result-event.js';
import './agent-usage-event.js';
import './agent-approval-events.js';
import './agent-plan-event.js';
import './approval.js';
import './webhook-delivery.js';
import './service.js';
import './query.js';
import './mutation.js';
import './subscription.js';

export type { SchemaContext } from './builder.js';

/** agent-pool's GraphQL schema. */
export const schema = builder.toSchema();

/** The schema in SDL, as `schema.graphql` holds it. */
export function printSdl(): string {
  return `${printSchema(lexicographicSortSchema(schema))}\n`;
}
