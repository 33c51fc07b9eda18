import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { type Client, createClient as createWsClient } from 'graphql-ws';
import { onTestFinished } from 'vitest';
import WebSocket from 'ws';
import type { Logger } from '../../src/logger.js';
import { AgentPool } from '../../src/pool/agent-pool.js';
import { type RunningServer, startServer } from '../../src/server/agent-pool-server.js';
import type { DashboardFiles } from '../../src/server/dashboard-files.js';
import { Store } from '../../src/store/store.js';
import { type ConfigLines, writeFakeAgentConfig } from './fake-agent.js';
import { tempRepo } from './temp.js';

/** A logger that keeps what it was told, for assertions. */
export function memoryLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const keep =
    (level: string) =>
    (message: string, error?: unknown): void => {
      lines.push(`${level} ${message}${error instanceof Error ? ` ${error.stack}` : error === undefined ? '' : ` ${String(error)}`}`);
    };
  return { lines, debug: keep('debug'), info: keep('info'), warn: keep('warn'), error: keep('error') };
}

/** A real server on port 0 over a temp repo whose agent is the fake one. */
export interface TestServer {
  server: RunningServer;
  pool: AgentPool;
  root: string;
  token: string;
  /** `http://127.0.0.1:PORT/graphql` */
  url: string;
  logs: string[];
  /** Runs a query or mutation over HTTP with the token. */
  request<T = Record<string, unknown>>(
    query: string,
    variables?: Record<string, unknown>,
  ): Promise<{ data?: T; errors?: Array<{ message: string; extensions?: Record<string, unknown> }> }>;
  /** A graphql-ws client with the token, disposed when the test ends. */
  wsClient(): Client;
}

/**
 * Starts a server over a temp repo whose agent is the fake one, with extra config `lines`;
 * or with `toml` as the whole agent-pool.toml. `env` is the environment agents inherit;
 * `dashboard` the files served at `/` (by default the built dashboard of dist/web).
 */
export async function startTestServer(
  options: ConfigLines & { toml?: string; env?: NodeJS.ProcessEnv; dashboard?: DashboardFiles } = {},
): Promise<TestServer> {
  const { toml, env, dashboard, ...lines } = options;
  const root = tempRepo();
  if (toml === undefined) writeFakeAgentConfig(root, lines);
  else writeFileSync(path.join(root, 'agent-pool.toml'), toml);
  const logger = memoryLogger();
  // As `agent-pool serve` runs it: over the state database.
  const store = Store.open(path.join(root, '.agent-pool', 'state.db'));
  const pool = await AgentPool.open({ projectRoot: root, logger, store, env });
  const token = randomBytes(16).toString('hex');
  const server = await startServer({ pool, port: 0, token, logger, dashboard });
  onTestFinished(async () => {
    await pool.dispose();
    await server.close();
    store.close();
  });
  const url = `${server.origin}/graphql`;
  return {
    server,
    pool,
    root,
    token,
    url,
    logs: logger.lines,
    async request(query, variables) {
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ query, variables }),
      });
      return response.json() as never;
    },
    wsClient() {
      const client = createWsClient({
        url: url.replace('http:', 'ws:'),
        webSocketImpl: WebSocket,
        connectionParams: { authorization: `Bearer ${token}` },
        retryAttempts: 0,
      });
      onTestFinished(() => client.dispose());
      return client;
    },
  };
}

/** The fields every agentEvents test reads. */
export const EVENT_FIELDS = `
  __typename seq storyId run at
  ... on AgentStatusEvent { status }
  ... on AgentOutputEvent { text }
  ... on AgentJsonEvent { data }
  ... on AgentDoneEvent { sessionId exitCode }
  ... on AgentErrorEvent { message }
  ... on AgentApprovalRequestEvent { requestId tool input suggestions }
  ... on AgentApprovalResolvedEvent { requestId allowed reason }
`;

export const AGENT_EVENTS = `subscription ($storyId: ID!, $afterSeq: Int) {
  agentEvents(storyId: $storyId, afterSeq: $afterSeq) { ${EVENT_FIELDS} }
}`;

/** An event as a subscription delivers it. */
export interface EventResult {
  __typename: string;
  seq: number;
  storyId: string;
  run: number;
  at: string;
  status?: string;
  text?: string;
  data?: unknown;
  sessionId?: string | null;
  exitCode?: number | null;
  message?: string;
  requestId?: string;
  tool?: string;
  input?: unknown;
  suggestions?: unknown;
  allowed?: boolean;
  reason?: string | null;
}

/** Whether a delivered event ends a run. */
export function isTerminalResult(event: EventResult): boolean {
  return event.__typename === 'AgentDoneEvent' || event.__typename === 'AgentErrorEvent';
}

/** Reads a subscription's results until `until` matches an event (included). */
export async function readEvents(
  results: AsyncIterator<{ data?: unknown; errors?: unknown }>,
  until: (event: EventResult) => boolean,
): Promise<EventResult[]> {
  const events: EventResult[] = [];
  for (;;) {
    const next = await results.next();
    if (next.done) return events;
    if (next.value.errors) throw new Error(`subscription error: ${JSON.stringify(next.value.errors)}`);
    const event = (next.value.data as { agentEvents: EventResult }).agentEvents;
    events.push(event);
    if (until(event)) return events;
  }
}
