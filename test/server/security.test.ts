// Attacks on the real server, each beside the honest request that must still work.
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import path from 'node:path';
import { getIntrospectionQuery } from 'graphql';
import { describe, expect, it, onTestFinished } from 'vitest';
import WebSocket from 'ws';
import { AgentPool } from '../../src/pool/agent-pool.js';
import { startServer } from '../../src/server/agent-pool-server.js';
import { OPERATION_LIMITS } from '../../src/server/operation-limits.js';
import { runCli, serverUrl, wsClientOf } from '../support/cli.js';
import { writeFakeAgentConfig } from '../support/fake-agent.js';
import { memoryLogger, startTestServer } from '../support/server.js';
import { git, tempDir, tempRepo } from '../support/temp.js';

interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** An HTTP request with full control of Host, Origin and the body (fetch cannot set Host). */
function raw(
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: string | Buffer } = {},
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(url, { method: options.method ?? 'POST', headers: options.headers }, (response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => (body += chunk.toString()));
      response.on('end', () => resolve({ status: response.statusCode!, headers: response.headers, body }));
    });
    request.on('error', reject);
    request.end(options.body);
  });
}

function jsonPost(server: { url: string; token: string }, query: string, headers: Record<string, string> = {}) {
  return raw(server.url, {
    headers: { 'content-type': 'application/json', authorization: `Bearer ${server.token}`, ...headers },
    body: JSON.stringify({ query }),
  });
}

/**
 * Opens a WebSocket with the given Origin (none when undefined) or other `headers` (a
 * Host); resolves with the handshake's HTTP status or "open".
 */
function openSocket(url: string, origin: string | undefined, headers: Record<string, string> = {}): Promise<number | 'open'> {
  return new Promise((resolve) => {
    const socket = new WebSocket(url.replace('http:', 'ws:'), 'graphql-transport-ws', { ...(origin ? { origin } : {}), headers });
    socket.on('open', () => {
      resolve('open');
      socket.close();
    });
    socket.on('unexpected-response', (_request, response) => {
      resolve(response.statusCode!);
      socket.terminate();
    });
    socket.on('error', () => undefined);
  });
}

async function serverWith(options: { allowOrigins?: string[]; allowHosts?: string[]; token?: string | null } = {}) {
  const root = tempRepo();
  writeFakeAgentConfig(root);
  const pool = new AgentPool({ projectRoot: root });
  const token = options.token === undefined ? randomBytes(16).toString('hex') : options.token;
  const server = await startServer({
    pool,
    port: 0,
    token,
    allowOrigins: options.allowOrigins,
    allowHosts: options.allowHosts,
    logger: memoryLogger(),
  });
  onTestFinished(async () => {
    await pool.dispose();
    await server.close();
  });
  return { pool, root, token: token ?? '', url: `${server.origin}/graphql`, origin: server.origin, port: server.port };
}

const AGENTS = '{ agents { storyId } }';

describe('browsers', () => {
  it('refuses a WebSocket from another web origin, and accepts the server\'s own page and an allowed origin', async () => {
    const server = await serverWith({ allowOrigins: ['https://dash.example.com'] });
    expect(await openSocket(server.url, 'http://evil.example')).toBe(403);
    expect(await openSocket(server.url, 'null')).toBe(403);
    expect(await openSocket(server.url, `http://localhost:${server.port + 1}`)).toBe(403);
    expect(await openSocket(server.url, server.origin)).toBe('open');
    expect(await openSocket(server.url, 'https://dash.example.com')).toBe('open');
    expect(await openSocket(server.url, undefined)).toBe('open');
    expect(server.pool.eventLog.openReaders).toBe(0);
  });

  it('refuses HTTP from another web origin (even with the token), with CORS off unless origins are allowed', async () => {
    const server = await serverWith();
    const evil = await jsonPost(server, AGENTS, { origin: 'http://evil.example' });
    expect(evil.status).toBe(403);
    expect(JSON.parse(evil.body)).toEqual({
      errors: [{ message: expect.stringContaining('"http://evil.example" are refused'), extensions: { code: 'FORBIDDEN' } }],
    });
    const own = await jsonPost(server, AGENTS, { origin: server.origin });
    expect(own.status).toBe(200);
    expect(own.headers['access-control-allow-origin']).toBeUndefined();

    const allowing = await serverWith({ allowOrigins: ['https://dash.example.com'] });
    const preflight = await raw(allowing.url, {
      method: 'OPTIONS',
      headers: {
        origin: 'https://dash.example.com',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization, content-type',
      },
    });
    expect(preflight.status).toBeLessThan(300);
    expect(preflight.headers['access-control-allow-origin']).toBe('https://dash.example.com');
    const allowed = await jsonPost(allowing, AGENTS, { origin: 'https://dash.example.com' });
    expect(allowed.status).toBe(200);
    expect(allowed.headers['access-control-allow-origin']).toBe('https://dash.example.com');
    expect((await jsonPost(allowing, AGENTS, { origin: 'https://other.example.com' })).status).toBe(403);
  });

  it('refuses a Host that is not the server\'s (DNS rebinding), and accepts its own names and --allow-host', async () => {
    const server = await serverWith({ allowHosts: ['agents.internal'] });
    const rebound = await jsonPost(server, AGENTS, { host: `evil.example:${server.port}` });
    expect(rebound.status).toBe(403);
    expect(rebound.body).toContain('requests addressed to host');
    expect(await openSocket(server.url, undefined, { host: `evil.example:${server.port}` })).toBe(403);
    for (const host of [`localhost:${server.port}`, `127.0.0.1:${server.port}`, `agents.internal:${server.port}`]) {
      expect((await jsonPost(server, AGENTS, { host })).status).toBe(200);
    }
  });

  it('does not let a plain HTML form post a mutation, even to a server without auth', async () => {
    const server = await serverWith({ token: null });
    const form = await raw(server.url, {
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `query=${encodeURIComponent('mutation { startAgent(storyId: "S-1", prompt: "wait") { status } }')}`,
    });
    expect(form.status).toBeGreaterThanOrEqual(400);
    expect(server.pool.list()).toEqual([]);
    const simpleGet = await raw(`${server.url}?query=${encodeURIComponent(AGENTS)}`, { method: 'GET' });
    expect(simpleGet.status).toBeGreaterThanOrEqual(400);

    const honest = await raw(server.url, {
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: 'mutation { startAgent(storyId: "S-1", prompt: "say hi") { status } }' }),
    });
    expect(JSON.parse(honest.body)).toEqual({ data: { startAgent: { status: 'PENDING' } } });
  });
});

describe('operation limits', () => {
  const START = 'startAgent(storyId: "S-1", prompt: "say hi") { status }';

  it('refuses a depth-50 query and changes nothing', async () => {
    const server = await startTestServer();
    let selection = 'status';
    for (let depth = 0; depth < 50; depth++) selection = `... on Agent { ${selection} }`;
    const deep = await server.request(`mutation { startAgent(storyId: "S-1", prompt: "say hi") { ${selection} } }`);
    expect(deep.errors?.[0]?.message).toMatch(/depth limit of 24 exceeded/);
    expect(server.pool.list()).toEqual([]);

    let ofType = 'name';
    for (let depth = 0; depth < 50; depth++) ofType = `ofType { ${ofType} }`;
    const introspection = await server.request(`{ __schema { types { fields { type { ${ofType} } } } } }`);
    expect(introspection.errors?.[0]?.message).toMatch(/depth limit of 24 exceeded/);

    const honest = await server.request(`mutation { ${START} }`);
    expect(honest).toEqual({ data: { startAgent: { status: 'PENDING' } } });
  });

  it('refuses a query of 1,000 aliases', async () => {
    const server = await startTestServer();
    const aliases = Array.from({ length: 1000 }, (_, i) => `a${i}: agents { storyId }`).join(' ');
    const result = await server.request(`query { ${aliases} }`);
    expect(result.errors?.[0]?.message).toMatch(/Aliases limit of 30 exceeded|Token limit/);
    const honest = await server.request(`query { a: agents { storyId } b: agent(storyId: "x") { status } }`);
    expect(honest).toEqual({ data: { a: [], b: null } });
  });

  it('refuses a 10 MB body before reading it, and changes nothing', async () => {
    const server = await startTestServer();
    const prompt = 'x'.repeat(10 * 1024 * 1024);
    const response = await jsonPost(server, `mutation { startAgent(storyId: "S-1", prompt: "${prompt}") { status } }`);
    expect(response.status).toBe(413);
    expect(JSON.parse(response.body).errors[0].message).toContain('request bodies are limited to 1048576 bytes');
    expect(server.pool.list()).toEqual([]);
  });

  it('closes a WebSocket that sends a message over the cap', async () => {
    const server = await startTestServer();
    const code = await new Promise<number>((resolve) => {
      const socket = new WebSocket(server.url.replace('http:', 'ws:'), 'graphql-transport-ws');
      socket.on('open', () => socket.send('x'.repeat(2 * 1024 * 1024)));
      socket.on('close', (closeCode) => resolve(closeCode));
      socket.on('error', () => undefined);
    });
    expect(code).toBe(1009);
  });

  it('lets GraphiQL\'s full introspection through, over HTTP and WebSocket', async () => {
    const server = await startTestServer();
    const query = getIntrospectionQuery({
      descriptions: true,
      inputValueDeprecation: true,
      specifiedByUrl: true,
      directiveIsRepeatable: true,
      schemaDescription: true,
    });
    const overHttp = await server.request<{ __schema: { types: unknown[] } }>(query);
    expect(overHttp.errors).toBeUndefined();
    expect(overHttp.data!.__schema.types.length).toBeGreaterThan(10);
    const client = server.wsClient();
    const overWs = await new Promise<{ errors?: unknown }>((resolve, reject) => {
      client.subscribe({ query }, { next: resolve, error: reject, complete: () => undefined });
    });
    expect(overWs.errors).toBeUndefined();
    expect(OPERATION_LIMITS.maxDepth).toBeLessThan(50);
  });
});

describe('inputs', () => {
  it('refuses story ids that could escape or inject, touching nothing', async () => {
    const server = await startTestServer();
    for (const storyId of ['../../etc', '-rf', '$(touch pwned)', 'a;b', 'x.lock', 'a/b', '']) {
      const result = await server.request('mutation ($id: ID!) { startAgent(storyId: $id) { status } }', { id: storyId });
      expect(result.errors?.[0]?.extensions?.code).toBe('INVALID_STORY_ID');
    }
    expect(git(server.root, 'branch', '--list')).toBe('* main');
    expect(existsSync(path.join(server.root, '.agent-pool', 'worktrees'))).toBe(false);
    expect(existsSync(path.join(server.root, 'pwned'))).toBe(false);
  });

  it('passes a prompt as one argv element, whatever it holds', async () => {
    const server = await startTestServer();
    const record = path.join(tempDir(), 'argv.json');
    const marker = path.join(tempDir(), 'pwned');
    const prompt = `record ${record}; say "quoted" 'single' $(touch ${marker}) \`touch ${marker}\` --output-format text\nsecond line --permission-mode default`;
    const events = server.wsClient().iterate({
      query: 'subscription { agentEvents(storyId: "S-1") { __typename } }',
    });
    await server.request('mutation ($p: String) { startAgent(storyId: "S-1", prompt: $p) { status } }', { p: prompt });
    for await (const result of events) {
      const name = (result.data as { agentEvents: { __typename: string } }).agentEvents.__typename;
      if (name === 'AgentDoneEvent' || name === 'AgentErrorEvent') break;
    }
    const { argv } = JSON.parse(readFileSync(record, 'utf8'));
    expect(argv).toEqual([
      '-p',
      '--output-format',
      'stream-json',
      '--verbose',
      '--permission-mode',
      'bypassPermissions',
      '--',
      prompt,
    ]);
    expect(existsSync(marker)).toBe(false);
  });

  it('handles a negative afterSeq as 0 and refuses one beyond Int', async () => {
    const server = await startTestServer();
    await server.request('mutation { startAgent(storyId: "S-1", prompt: "say hi") { status } }');
    await expect.poll(() => server.pool.get('S-1')!.status, { timeout: 20_000 }).toBe('COMPLETED');
    const client = server.wsClient();
    const all = client.iterate({ query: 'subscription { agentEvents(storyId: "S-1", afterSeq: -5) { seq } }' });
    expect((await all.next()).value).toEqual({ data: { agentEvents: { seq: 1 } } });
    await all.return!();
    const huge = await server.request('subscription { agentEvents(storyId: "S-1", afterSeq: 99999999999) { seq } }');
    expect(huge.errors?.[0]?.message).toMatch(/Int cannot represent/);
  });
});

describe('the token', () => {
  it('appears in no log line and in no agent\'s environment', async () => {
    const root = tempRepo();
    writeFakeAgentConfig(root);
    const record = path.join(tempDir(), 'env.json');
    const token = `secret-${randomBytes(8).toString('hex')}`;
    const cli = runCli(['serve', '--port', '0', '--token', token], {
      cwd: root,
      env: { ...process.env, AGENT_POOL_TOKEN: `env-${token}` },
    });
    const url = await serverUrl(cli);
    const client = wsClientOf(url);
    const events = client.iterate({ query: 'subscription { agentEvents(storyId: "S-1") { __typename } }' });
    await fetch(`${url.origin}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ query: `mutation { startAgent(storyId: "S-1", prompt: "record ${record}") { status } }` }),
    });
    // A failing request is logged too.
    await fetch(`${url.origin}/graphql?token=${token}`, { method: 'POST', body: 'not json' });
    for await (const result of events) {
      const name = (result.data as { agentEvents: { __typename: string } }).agentEvents.__typename;
      if (name === 'AgentDoneEvent' || name === 'AgentErrorEvent') break;
    }
    cli.child.kill('SIGTERM');
    expect(await cli.exited).toBe(0);
    const environment = readFileSync(record, 'utf8');
    expect(environment).not.toContain(token);
    expect(JSON.parse(environment).env).not.toHaveProperty('AGENT_POOL_TOKEN');
    expect(cli.stderr()).not.toContain(token);
    expect(cli.stderr()).toContain('listening on');
  });
});

