// What the cluster's tests share: a private Postgres and Redis for a test file, GraphQL over
// HTTP to a server of the cluster, a story's events streamed until its runs end, and one
// value read straight from the database.
import type { Client } from 'graphql-ws';
import pg from 'pg';
import { afterAll, beforeAll } from 'vitest';
import { type PrivatePostgres, postgresUnavailable, startPostgres } from './postgres.js';
import { type PrivateRedis, redisUnavailable, startRedis } from './redis.js';

/**
 * A private Postgres and Redis for the calling test file, started before its tests and
 * stopped after them. `unavailable` says why they cannot run here (then the file's tests
 * skip; under CI=true the file fails, naming `what`).
 */
export function clusterServices(what: string): { unavailable: string | undefined; postgres: () => PrivatePostgres; redis: () => PrivateRedis } {
  const unavailable = postgresUnavailable() ?? redisUnavailable();
  if (unavailable && process.env.CI === 'true') throw new Error(`CI runs ${what}: ${unavailable}`);
  let postgres: PrivatePostgres | undefined;
  let redis: PrivateRedis | undefined;
  beforeAll(async () => {
    if (unavailable) return;
    postgres = startPostgres();
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis?.stop();
    postgres?.stop();
  });
  return { unavailable, postgres: () => postgres!, redis: () => redis! };
}

export interface GraphqlAnswer<T> {
  data?: T;
  errors?: Array<{ message: string; extensions?: { code?: string } }>;
}

/** Posts one GraphQL operation to a server at `url` with `token`. */
export async function graphql<T = Record<string, unknown>>(url: URL, token: string, body: string): Promise<GraphqlAnswer<T>> {
  const response = await fetch(`${url.origin}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query: body }),
  });
  return (await response.json()) as never;
}

export interface StreamedEvent {
  __typename: string;
  seq: number;
  status?: string;
}

/**
 * Every event of a story from the start (pushed on `seen` as it comes), until `ends` of its
 * runs have ended (a COMPLETED, FAILED or STOPPED status event each).
 */
export function eventsUntilEnd(client: Client, storyId: string, options: { ends?: number; seen?: StreamedEvent[] } = {}): Promise<StreamedEvent[]> {
  const { ends = 1, seen = [] } = options;
  let ended = 0;
  return new Promise((resolve, reject) => {
    const stop = client.subscribe<{ agentEvents: StreamedEvent }>(
      { query: `subscription { agentEvents(storyId: "${storyId}") { __typename seq ... on AgentStatusEvent { status } } }` },
      {
        next: ({ data, errors }) => {
          if (errors) reject(new Error(JSON.stringify(errors)));
          const event = data!.agentEvents;
          seen.push(event);
          if (event.__typename === 'AgentStatusEvent' && ['COMPLETED', 'FAILED', 'STOPPED'].includes(event.status!) && ++ended === ends) {
            stop();
            resolve(seen);
          }
        },
        error: reject,
        complete: () => resolve(seen),
      },
    );
  });
}

/** The first column of the first row `sql` reads from the database at `url`. */
export async function sqlValue(url: string, sql: string): Promise<unknown> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return Object.values((await client.query(sql)).rows[0] as object)[0];
  } finally {
    await client.end();
  }
}
