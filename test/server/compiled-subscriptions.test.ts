// Subscriptions run their selection compiled (graphql-jit, src/server/compiled-subscriptions.ts).
// Every way of writing one gives over the WebSocket exactly what graphql-js's own `subscribe`
// gives for the same document and the same stored events: arguments inline and as
// variables, aliases, fragments, directives, every event type, and an error event.
import { type ExecutionResult, parse, subscribe } from 'graphql';
import { describe, expect, it } from 'vitest';
import { schema } from '../../src/schema/index.js';
import { startTestServer, type TestServer } from '../support/server.js';

const EVERY_TYPE = `__typename seq storyId run at
  ... on AgentStatusEvent { status }
  ... on AgentOutputEvent { text }
  ... on AgentJsonEvent { data }
  ... on AgentToolCallEvent { callId tool kind input lineSeq }
  ... on AgentToolResultEvent { callId isError output }
  ... on AgentUsageEvent { costUsd inputTokens outputTokens }
  ... on AgentDoneEvent { sessionId exitCode }
  ... on AgentErrorEvent { message }`;

/** What graphql-js's own subscribe gives: the reference. */
async function reference(server: TestServer, query: string, variables: Record<string, unknown>, count: number) {
  const events = (await subscribe({ schema, document: parse(query), contextValue: { pool: server.pool }, variableValues: variables })) as
    AsyncGenerator<ExecutionResult>;
  const results: unknown[] = [];
  for await (const result of events) {
    results.push(JSON.parse(JSON.stringify(result)));
    if (results.length === count) break;
  }
  return results;
}

/** What a graphql-ws client of the server gets. */
async function overWebSocket(server: TestServer, query: string, variables: Record<string, unknown>, count: number) {
  const results: unknown[] = [];
  for await (const result of server.wsClient().iterate({ query, variables })) {
    results.push(result);
    if (results.length === count) break;
  }
  return results;
}

describe('a compiled subscription', () => {
  it('gives what graphql-js gives, however it is written', async () => {
    const server = await startTestServer();
    await server.request('mutation { startAgent(storyId: "S-1", prompt: "say hello; tool; tool-result; plain not json; result") { status } }');
    await expect.poll(() => server.pool.get('S-1')?.status).toBe('COMPLETED');
    const count = server.pool.get('S-1')!.lastSeq;
    expect(count).toBeGreaterThan(6);

    const written: Array<[string, Record<string, unknown>]> = [
      [`subscription { agentEvents(storyId: "S-1") { ${EVERY_TYPE} } }`, {}],
      [`subscription ($id: ID!, $after: Int) { agentEvents(storyId: $id, afterSeq: $after) { ${EVERY_TYPE} } }`, { id: 'S-1', after: 2 }],
      [
        `subscription Named($id: ID!, $long: Boolean!) { e: agentEvents(storyId: $id) { ...Fields n: seq type: __typename
           ... on AgentJsonEvent @include(if: $long) { data } ... on AgentOutputEvent @skip(if: $long) { text } } }
         fragment Fields on AgentEvent { seq at }`,
        { id: 'S-1', long: true },
      ],
    ];
    for (const [query, variables] of written) {
      const wanted = await reference(server, query, variables, count - ((variables.after as number | undefined) ?? 0));
      expect(wanted.every((result) => !(result as ExecutionResult).errors)).toBe(true);
      expect(await overWebSocket(server, query, variables, wanted.length)).toEqual(wanted);
    }
  });

  it('gives an error event as graphql-js does: EVENTS_TRUNCATED with its firstSeq', async () => {
    const server = await startTestServer({ store: 'max_events_per_story = 100' });
    await server.request('mutation { startAgent(storyId: "S-1", prompt: "flood 200") { status } }');
    await expect.poll(() => server.pool.get('S-1')?.status).toBe('COMPLETED');
    const query = 'subscription { agentEvents(storyId: "S-1", afterSeq: 1) { seq } }';
    const [wanted] = (await reference(server, query, {}, 1)) as ExecutionResult[];
    expect(wanted!.errors![0]!.message).toContain('are no longer kept');
    const [got] = (await overWebSocket(server, query, {}, 1)) as ExecutionResult[];
    // The server adds the contract's code to graphql-js's error, as to every error it sends;
    // graphql-jit leaves out the error's locations (which the spec makes optional).
    const { locations, ...error } = wanted!.errors![0]!.toJSON?.() ?? (wanted!.errors![0] as unknown as Record<string, unknown>);
    expect(locations).toBeDefined();
    expect(got).toEqual({ data: null, errors: [{ ...error, extensions: { ...wanted!.errors![0]!.extensions, code: 'EVENTS_TRUNCATED' } }] });
  });
});
