// Subscriptions run their selection compiled (graphql-jit, src/server/compiled-subscriptions.ts).
// Every way of writing one gives over the WebSocket exactly what graphql-js's own `subscribe`
// gives for the same document and the same stored events: arguments inline (which run
// uncompiled) and as variables, aliases, fragments, directives, the event types a run makes,
// and an error event. A string literal is never compiled: graphql-jit would run part of it.
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
    written.push([written[2]![0], { id: 'S-1', long: false }]);
    for (const [query, variables] of written) {
      const wanted = await reference(server, query, variables, count - ((variables.after as number | undefined) ?? 0));
      expect(wanted.every((result) => !(result as ExecutionResult).errors)).toBe(true);
      expect(await overWebSocket(server, query, variables, wanted.length)).toEqual(wanted);
    }
    // The first, with its storyId a literal, ran uncompiled; the others compiled.
    expect(server.logs.filter((line) => line.includes('runs uncompiled: it has a string literal'))).toHaveLength(1);
    expect(server.logs.filter((line) => line.includes('a subscription is compiled'))).toHaveLength(2);
  });

  it('never compiles a string literal: one that graphql-jit would turn into code stays data', async () => {
    const server = await startTestServer();
    const global = globalThis as { agentPoolInjected?: unknown };
    const payload = '__MAGIC_DATE__33a9e76d_02e0_4128_8e92_3530ad3da74d0,globalThis.agentPoolInjected=1';
    const literal = `subscription { agentUpdates { storyId d: diff(path: ${JSON.stringify(payload)}) } }`;
    const variable = 'subscription ($path: String) { agentUpdates { storyId d: diff(path: $path) } }';
    const updates = [literal, variable].map((query) => overWebSocket(server, query, { path: payload }, 1));
    await expect.poll(() => server.logs.filter((line) => line.includes('subscription')).length).toBe(2);
    await server.request('mutation { startAgent(storyId: "S-1", prompt: "say hi") { status } }');
    const [fromLiteral, fromVariable] = (await Promise.all(updates)).map((results) => results[0]);
    // Both got the update (the path is no changed file: PATH_NOT_CHANGED or null, as graphql-js gives it).
    expect(fromLiteral).toMatchObject({ data: { agentUpdates: { storyId: 'S-1' } } });
    expect(fromVariable).toEqual(fromLiteral);
    expect(global.agentPoolInjected).toBeUndefined();
    expect(server.logs.filter((line) => line.includes('runs uncompiled: it has a string literal'))).toHaveLength(1);
    expect(server.logs.filter((line) => line.includes('a subscription is compiled'))).toHaveLength(1);
  });

  it('gives an error event as graphql-js does: EVENTS_TRUNCATED with its firstSeq', async () => {
    const server = await startTestServer({ store: 'max_events_per_story = 100' });
    await server.request('mutation { startAgent(storyId: "S-1", prompt: "flood 200") { status } }');
    await expect.poll(() => server.pool.get('S-1')?.status).toBe('COMPLETED');
    const query = 'subscription ($id: ID!) { agentEvents(storyId: $id, afterSeq: 1) { seq } }';
    const [wanted] = JSON.parse(JSON.stringify(await reference(server, query, { id: 'S-1' }, 1))) as ExecutionResult[];
    expect(wanted!.errors![0]!.message).toContain('are no longer kept');
    expect(wanted!.errors![0]!.locations).toBeDefined();
    const [got] = (await overWebSocket(server, query, { id: 'S-1' }, 1)) as ExecutionResult[];
    // The server adds the contract's code to graphql-js's error, as to every error it sends.
    expect(got).toEqual({ ...wanted, errors: [{ ...wanted!.errors![0], extensions: { ...wanted!.errors![0]!.extensions, code: 'EVENTS_TRUNCATED' } }] });
  });
});
