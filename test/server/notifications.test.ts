// Webhooks ([[notify.webhook]]) against a real HTTP receiver on loopback: what each event
// sends (body, headers, signature), the `on` filter and Slack's format, retries and their
// limits, a receiver that is down across a restart, and receivers that are slow or hostile.
// The agents are the fake ACP agent (it asks for approvals and waits for messages) and the
// fake Claude Code (it completes, fails or waits on cue).
import { createHmac, randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it, onTestFinished, vi } from 'vitest';
import { AgentPool } from '../../src/pool/agent-pool.js';
import { MAX_IN_FLIGHT_PER_WEBHOOK } from '../../src/notify/webhook-sender.js';
import { INTERRUPTED_RUN_ERROR } from '../../src/pool/recovery.js';
import { Store } from '../../src/store/store.js';
import { FAKE_AGENT } from '../support/fake-agent.js';
import { memoryLogger, readEvents, startTestServer, type TestServer } from '../support/server.js';
import { tempDir, tempRepo } from '../support/temp.js';
import { type ReceivedRequest, startReceiver } from '../support/webhook-receiver.js';

const FAKE_ACP_AGENT = fileURLToPath(new URL('../fixtures/fake-acp-agent.mjs', import.meta.url));
const SECRET = 'whsec-0123456789abcdef';

const START = 'mutation ($storyId: ID!, $prompt: String, $agent: String, $title: String) { startAgent(storyId: $storyId, prompt: $prompt, agent: $agent, title: $title) { status } }';
const DELIVERIES = `query ($status: DeliveryStatus, $first: Int) { webhookDeliveries(status: $status, first: $first) {
  id url event storyId attempts status lastStatus lastError createdAt deliveredAt
} }`;

interface Delivery {
  id: string;
  url: string;
  event: string;
  storyId: string;
  attempts: number;
  status: string;
  lastStatus: number | null;
  lastError: string | null;
  createdAt: string;
  deliveredAt: string | null;
}

/** Retries `check` until it passes: what the sender does is seen in the database, shortly after the request it sent. */
function eventually(check: () => unknown): Promise<unknown> {
  // Generous: under a full suite, a run or an attempt can take seconds.
  return vi.waitFor(check as () => Promise<unknown>, { timeout: 30_000, interval: 50 });
}

/** The `[notify]` lines and `[[notify.webhook]]` tables of a test's agent-pool.toml. */
function notifyToml(options: { notify?: string[]; hooks: string[][] }): string[] {
  const given = (options.notify ?? []).map((line) => line.split('=')[0]!.trim());
  // Seconds, not the contract's minutes: the schedule is configurable for this.
  const schedule = ['retry_seconds = [0.05, 0.05, 0.05]', 'retry_every_seconds = 0.05'].filter((line) => !given.includes(line.split('=')[0]!.trim()));
  return [
    '[notify]',
    ...schedule,
    ...(options.notify ?? []),
    ...options.hooks.flatMap((hook) => ['[[notify.webhook]]', ...hook]),
  ];
}

/**
 * A server whose default agent is the fake ACP agent asking for approvals (and waiting 30 s
 * for messages after a turn), with a `claude` profile that is the fake Claude Code.
 */
async function notifyServer(options: { notify?: string[]; hooks: string[][]; env?: NodeJS.ProcessEnv }): Promise<TestServer> {
  return startTestServer({
    env: { ...process.env, ...options.env },
    toml: [
      '[agent]',
      'kind = "acp"',
      `command = "node"`,
      `args = [${JSON.stringify(FAKE_ACP_AGENT)}]`,
      `env = { FAKE_ACP_STATE = ${JSON.stringify(tempDir())} }`,
      'permission_mode = "default"',
      'keep_open_seconds = 30',
      '[agents.claude]',
      `command = ${JSON.stringify(FAKE_AGENT)}`,
      '[pool]',
      'stop_grace_seconds = 1',
      ...notifyToml(options),
    ].join('\n'),
  });
}

async function deliveries(server: TestServer, variables: Record<string, unknown> = {}): Promise<Delivery[]> {
  const result = await server.request<{ webhookDeliveries: Delivery[] }>(DELIVERIES, variables);
  expect(result.errors).toBeUndefined();
  return result.data!.webhookDeliveries;
}

/** Starts a story and waits for its run to end, reading its events. */
async function runToEnd(server: TestServer, storyId: string, prompt: string, extra: Record<string, unknown> = {}): Promise<void> {
  const events = server.wsClient().iterate({
    query: 'subscription ($s: ID!) { agentEvents(storyId: $s) { __typename seq ... on AgentStatusEvent { status } } }',
    variables: { s: storyId },
  });
  expect((await server.request(START, { storyId, prompt, ...extra })).errors).toBeUndefined();
  await readEvents(events as never, (event) => event.__typename === 'AgentStatusEvent' && ['COMPLETED', 'FAILED', 'STOPPED'].includes(event.status!));
}

function signatureOf(request: ReceivedRequest, secret = SECRET): string {
  return `sha256=${createHmac('sha256', secret).update(request.body).digest('hex')}`;
}

describe('webhooks', () => {
  it('sends each event once, with the story, a link, a delivery id and a signature the secret checks', async () => {
    const receiver = await startReceiver();
    const server = await notifyServer({
      notify: ['public_url = "https://pool.example.com/team/"'],
      hooks: [[`url = ${JSON.stringify(receiver.url)}`, 'secret_env = "HOOK_SECRET"']],
      env: { HOOK_SECRET: SECRET },
    });

    // waiting (APPROVAL), then waiting (INPUT) after the turn, then stopped.
    await server.request(START, { storyId: 'S-1', prompt: 'write a.txt one\nwrite b.txt two\nsay done', title: 'Fix <the> login & more' });
    const [approvalRequest] = await receiver.received(1);
    const pending = server.pool.get('S-1')!.pendingApprovals;
    expect(approvalRequest!.json).toEqual({
      id: approvalRequest!.headers['x-agent-pool-delivery'],
      event: 'waiting',
      storyId: 'S-1',
      title: 'Fix <the> login & more',
      status: 'RUNNING',
      waitingFor: 'APPROVAL',
      run: 1,
      agent: 'default',
      costUsd: null,
      error: null,
      at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      link: 'https://pool.example.com/team/stories/S-1',
      approval: { requestId: pending[0]!.requestId, tool: 'write a.txt' },
    });
    expect(approvalRequest).toMatchObject({ method: 'POST', path: '/hook?key=secret-part' });
    expect(approvalRequest!.headers).toMatchObject({
      'content-type': 'application/json',
      'x-agent-pool-event': 'waiting',
      'x-agent-pool-signature': signatureOf(approvalRequest!),
      'user-agent': expect.stringMatching(/^agent-pool\//),
    });
    expect(approvalRequest!.json.id).toMatch(/^[0-9a-f-]{36}$/);
    // A signature made with another secret does not match.
    expect(approvalRequest!.headers['x-agent-pool-signature']).not.toBe(signatureOf(approvalRequest!, 'another secret'));

    // The second request comes while the wait goes on: the same wait, not another notification.
    await server.request('mutation ($r: ID!) { respondToApproval(storyId: "S-1", requestId: $r, allow: true) { status } }', { r: pending[0]!.requestId });
    await expect
      .poll(() => {
        const next = server.pool.get('S-1')!.pendingApprovals[0]?.requestId;
        return next !== undefined && next !== pending[0]!.requestId;
      })
      .toBe(true);
    const second = server.pool.get('S-1')!.pendingApprovals[0]!;
    expect(second).toBeDefined();
    await server.request('mutation ($r: ID!) { respondToApproval(storyId: "S-1", requestId: $r, allow: false) { status } }', { r: second.requestId });
    const [, , inputRequest] = await receiver.received(3);
    // Between the two approvals the agent did not wait: each is a wait of its own.
    expect(receiver.requests[1]!.json).toMatchObject({ event: 'waiting', waitingFor: 'APPROVAL', approval: { requestId: second.requestId } });
    expect(inputRequest!.json).toMatchObject({ event: 'waiting', waitingFor: 'INPUT', status: 'RUNNING' });
    expect(inputRequest!.json).not.toHaveProperty('approval');

    await server.request('mutation { stopAgent(storyId: "S-1") { status } }');
    const [, , , stopped] = await receiver.received(4);
    expect(stopped!.json).toMatchObject({ event: 'stopped', status: 'STOPPED', waitingFor: null, run: 1 });
    expect(stopped!.headers['x-agent-pool-signature']).toBe(signatureOf(stopped!));

    // completed and failed, from the fake Claude Code; its cost is the story's so far.
    await runToEnd(server, 'S-2', 'say hi; result', { agent: 'claude' });
    await runToEnd(server, 'S-3', 'say oops; result-error it broke', { agent: 'claude' });
    const all = await receiver.received(6);
    expect(all[4]!.json).toMatchObject({ event: 'completed', storyId: 'S-2', status: 'COMPLETED', title: null, agent: 'claude', costUsd: 0.0123 });
    expect(all[5]!.json).toMatchObject({ event: 'failed', storyId: 'S-3', status: 'FAILED', error: expect.stringContaining('it broke') });
    expect(new Set(all.map((request) => request.json.id)).size).toBe(6);
    for (const request of all) expect(request.headers['x-agent-pool-delivery']).toBe(request.json.id);

    // Listed, newest first, with the URL's path and query redacted; the secret nowhere.
    await eventually(async () => expect((await deliveries(server)).every((delivery) => delivery.status === 'DELIVERED')).toBe(true));
    const listed = await deliveries(server);
    expect(listed.map((delivery) => [delivery.storyId, delivery.event])).toEqual([
      ['S-3', 'failed'],
      ['S-2', 'completed'],
      ['S-1', 'stopped'],
      ['S-1', 'waiting'],
      ['S-1', 'waiting'],
      ['S-1', 'waiting'],
    ]);
    expect(listed[0]).toMatchObject({ url: `http://127.0.0.1:${receiver.port}/…`, attempts: 1, lastStatus: 200, lastError: null, deliveredAt: expect.any(String) });
    expect(JSON.stringify(listed)).not.toContain('secret-part');
    expect(JSON.stringify(listed)).not.toContain(SECRET);
    expect(server.logs.join('\n')).not.toContain(SECRET);
    expect(await deliveries(server, { status: 'PENDING' })).toEqual([]);
    expect(await deliveries(server, { first: 2 })).toHaveLength(2);
    // Behind the token, as every operation: without it, nothing is listed.
    const anonymous = await fetch(server.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: DELIVERIES }) });
    expect(anonymous.status).toBe(401);
    expect(await anonymous.text()).not.toContain('S-1');
  });

  it('sends the user and password of url_env\'s URL as Basic authentication, and lists neither', async () => {
    const receiver = await startReceiver();
    const server = await notifyServer({
      hooks: [['url_env = "HOOK_URL"', 'on = ["completed"]']],
      env: { HOOK_URL: receiver.url.replace('http://', 'http://hook-user:p%40ss-word@') },
    });
    await runToEnd(server, 'S-1', 'result', { agent: 'claude' });
    const [request] = await receiver.received(1);
    expect(request!.headers.authorization).toBe(`Basic ${Buffer.from('hook-user:p@ss-word').toString('base64')}`);
    await eventually(async () => expect((await deliveries(server))[0]!.status).toBe('DELIVERED'));
    expect(JSON.stringify(await deliveries(server))).not.toMatch(/hook-user|ss-word/);
  });

  it('keeps a delivery whose webhook left agent-pool.toml PENDING, and sends it once the webhook is back', async () => {
    const receiver = await startReceiver((_request, index) => (index === 0 ? 503 : 200));
    const hooks = [[`url = ${JSON.stringify(receiver.url)}`, 'on = ["completed"]']];
    const server = await notifyServer({ notify: ['retry_seconds = [0.5]', 'retry_every_seconds = 0.2'], hooks });
    const config = readFileSync(path.join(server.root, 'agent-pool.toml'), 'utf8');
    await runToEnd(server, 'S-1', 'result', { agent: 'claude' });
    await receiver.received(1);
    // The file is being edited: the webhook is gone from it for a while.
    writeFileSync(path.join(server.root, 'agent-pool.toml'), config.slice(0, config.indexOf('[[notify.webhook]]')));
    await eventually(async () => expect((await deliveries(server))[0]).toMatchObject({ status: 'PENDING', lastError: expect.stringContaining('is not in agent-pool.toml') }));
    writeFileSync(path.join(server.root, 'agent-pool.toml'), config);
    await receiver.received(2);
    await eventually(async () => expect((await deliveries(server))[0]).toMatchObject({ status: 'DELIVERED', lastStatus: 200 }));
    expect(new Set(receiver.requests.map((request) => request.json.id)).size).toBe(1);
  });

  it('keeps the secret and a URL variable from agents', async () => {
    const receiver = await startReceiver();
    const server = await notifyServer({
      hooks: [['url_env = "HOOK_URL"', 'secret_env = "HOOK_SECRET"', 'on = ["completed"]']],
      env: { HOOK_SECRET: SECRET, HOOK_URL: receiver.url },
    });
    const record = path.join(tempDir(), 'env.json');
    await runToEnd(server, 'S-1', `record ${record}; result`, { agent: 'claude' });
    const [request] = await receiver.received(1);
    expect(request!.json).toMatchObject({ event: 'completed', storyId: 'S-1' });
    expect(request!.headers['x-agent-pool-signature']).toBe(signatureOf(request!));
    const { env } = JSON.parse(readFileSync(record, 'utf8')) as { env: Record<string, string> };
    expect(env).not.toHaveProperty('HOOK_SECRET');
    expect(env).not.toHaveProperty('HOOK_URL');
    expect(JSON.stringify(env)).not.toContain(SECRET);
    // The honest twin: a variable no key names still reaches the agent.
    expect(env.PATH).toBeDefined();
    expect((await deliveries(server))[0]!.url).toBe(`http://127.0.0.1:${receiver.port}/…`);
  });

  it('sends a webhook only the events its on names, and Slack a { text } it shows as written', async () => {
    const all = await startReceiver();
    const slack = await startReceiver();
    const server = await notifyServer({
      notify: ['public_url = "http://localhost:4747"'],
      hooks: [[`url = ${JSON.stringify(all.url)}`], [`url = ${JSON.stringify(slack.url)}`, 'on = ["failed"]', 'format = "slack"']],
    });
    await runToEnd(server, 'S-1', 'say hi; result', { agent: 'claude' });
    await runToEnd(server, 'S-2', 'say no; result-error <@here> & <!channel>', { agent: 'claude', title: 'Login <b>' });
    await all.received(2);
    const [failed] = await slack.received(1);
    expect(all.requests.map((request) => request.json.event)).toEqual(['completed', 'failed']);
    expect(slack.requests).toHaveLength(1);
    expect(Object.keys(failed!.json)).toEqual(['text']);
    const text = failed!.json.text as string;
    expect(text).toContain('story `S-2` (Login &lt;b&gt;) failed in run 1');
    // No mention or link comes from what an agent printed.
    expect(text).toContain('&lt;@\u200bhere&gt; &amp; &lt;!channel&gt;');
    expect(text).not.toMatch(/<[@!]/);
    expect(text).toMatch(/<http:\/\/localhost:4747\/stories\/S-2\|Open the story>\.?$/);
    expect(failed!.headers['x-agent-pool-event']).toBe('failed');
  });

  it('retries 503 and 429 with the same id until a 2xx, and gives a 4xx up at once without holding up the next', async () => {
    const flaky = await startReceiver((_request, index) => (index === 0 ? 503 : index === 1 ? { status: 429, body: 'slow down' } : 200));
    // It quotes the path it was sent to, as some frameworks do: the URL's secret parts are cut out.
    const refusing = await startReceiver((request) => (request.json.storyId === 'S-1' ? { status: 400, body: `invalid_payload at ${request.path}` } : 204));
    const server = await notifyServer({
      hooks: [[`url = ${JSON.stringify(flaky.url)}`, 'on = ["completed"]'], [`url = ${JSON.stringify(refusing.url)}`, 'on = ["completed"]']],
    });
    await runToEnd(server, 'S-1', 'result', { agent: 'claude' });
    const attempts = await flaky.received(3);
    expect(new Set(attempts.map((request) => request.json.id)).size).toBe(1);
    expect(new Set(attempts.map((request) => request.body)).size).toBe(1);
    await eventually(async () => expect((await deliveries(server)).map((delivery) => delivery.status).sort()).toEqual(['DELIVERED', 'FAILED']));
    const [first, second] = (await deliveries(server)).sort((a, b) => a.attempts - b.attempts);
    expect(first).toMatchObject({ status: 'FAILED', attempts: 1, lastStatus: 400, lastError: 'answered 400: invalid_payload at /hook?key=… (not retried: fix the webhook or the receiver)' });
    expect(second).toMatchObject({ status: 'DELIVERED', attempts: 3, lastStatus: 200, lastError: null });
    expect(refusing.requests).toHaveLength(1);
    expect(server.logs.filter((line) => line.includes('answered 400'))).toHaveLength(1);

    // The same receiver, the next story's completion: delivered, the refusal held nothing up.
    await runToEnd(server, 'S-2', 'result', { agent: 'claude' });
    await refusing.received(2);
    expect(refusing.requests[1]!.json).toMatchObject({ storyId: 'S-2', event: 'completed' });
  });

  it('gives up after give_up_after_seconds, FAILED with the last error', async () => {
    const down = await startReceiver(() => 503);
    const server = await notifyServer({ notify: ['give_up_after_seconds = 0.3'], hooks: [[`url = ${JSON.stringify(down.url)}`, 'on = ["completed"]']] });
    await runToEnd(server, 'S-1', 'result', { agent: 'claude' });
    await eventually(async () => expect((await deliveries(server))[0]!.status).toBe('FAILED'));
    const [given] = await deliveries(server);
    expect(given!.lastError).toMatch(/^answered 503 \(given up after \d+ attempts\)$/);
    expect(given!.attempts).toBeGreaterThan(1);
    expect(down.requests).toHaveLength(given!.attempts);
  });

  it('follows no redirect to another origin; a redirect on its own origin keeps the POST', async () => {
    const elsewhere = await startReceiver();
    const redirecting = await startReceiver((request) =>
      request.path.startsWith('/moved')
        ? 200
        : request.json.storyId === 'S-1'
          ? { status: 307, headers: { location: `${elsewhere.url}` } }
          : { status: 308, headers: { location: '/moved/here' } },
    );
    const server = await notifyServer({ hooks: [[`url = ${JSON.stringify(redirecting.url)}`, 'on = ["completed"]']] });
    await runToEnd(server, 'S-1', 'result', { agent: 'claude' });
    await eventually(async () => expect((await deliveries(server))[0]!.status).toBe('FAILED'));
    expect((await deliveries(server))[0]).toMatchObject({ lastStatus: 307, lastError: expect.stringContaining(`to http://127.0.0.1:${elsewhere.port}/…`) });
    expect(elsewhere.requests).toEqual([]);

    await runToEnd(server, 'S-2', 'result', { agent: 'claude' });
    const [, , moved] = await redirecting.received(3);
    expect(moved).toMatchObject({ method: 'POST', path: '/moved/here', json: { storyId: 'S-2', event: 'completed' } });
    await eventually(async () => expect((await deliveries(server))[0]).toMatchObject({ storyId: 'S-2', status: 'DELIVERED' }));
  });

  it('a slow receiver holds a few requests at most, and delays no run, no subscription, no other receiver and no stop', async () => {
    const slow = await startReceiver(() => 'hang');
    const healthy = await startReceiver();
    const server = await notifyServer({
      notify: ['timeout_seconds = 60'],
      hooks: [[`url = ${JSON.stringify(slow.url)}`, 'on = ["completed"]'], [`url = ${JSON.stringify(healthy.url)}`, 'on = ["completed"]']],
    });
    const stories = Array.from({ length: 10 }, (_, index) => `S-${index + 1}`);
    // Every run ends and every subscription reads its end while the slow receiver answers nothing.
    await Promise.all(stories.map((storyId) => runToEnd(server, storyId, 'say hi; result', { agent: 'claude' })));
    expect(server.pool.list().map((agent) => agent.status)).toEqual(stories.map(() => 'COMPLETED'));
    // The other receiver gets all of its deliveries meanwhile.
    await healthy.received(stories.length);
    expect(new Set(healthy.requests.map((request) => request.json.storyId))).toEqual(new Set(stories));
    await slow.received(MAX_IN_FLIGHT_PER_WEBHOOK);
    expect(slow.open).toBe(MAX_IN_FLIGHT_PER_WEBHOOK);
    await eventually(() => expect(server.pool.pendingDeliveries).toBe(stories.length));
    // The server's stop abandons the attempts on their way: each stays PENDING for the next start.
    await server.pool.dispose();
    const left = await server.pool.webhookDeliveries(100, 'PENDING');
    expect(left.map((delivery) => [delivery.url, delivery.attempts])).toEqual(stories.map(() => [`http://127.0.0.1:${slow.port}/…`, 0]));
    expect(slow.requests).toHaveLength(MAX_IN_FLIGHT_PER_WEBHOOK);
  });

  it('an attempt that gets no answer in timeout_seconds is retried', async () => {
    const slow = await startReceiver((_request, index) => (index === 0 ? 'hang' : 200));
    const server = await notifyServer({ notify: ['timeout_seconds = 0.2'], hooks: [[`url = ${JSON.stringify(slow.url)}`, 'on = ["completed"]']] });
    await runToEnd(server, 'S-1', 'result', { agent: 'claude' });
    const [first, second] = await slow.received(2);
    expect(second!.json.id).toBe(first!.json.id);
    await eventually(async () => expect((await deliveries(server))[0]).toMatchObject({ status: 'DELIVERED', attempts: 2 }));
  });
});

describe('webhook deliveries across a restart', () => {
  /** A pool as `agent-pool serve` runs it, over the project's database; disposed (and the database closed) at the test's end. */
  async function openPool(root: string): Promise<{ pool: AgentPool; close: () => Promise<void> }> {
    const store = Store.open(path.join(root, '.agent-pool', 'state.db'));
    const pool = await AgentPool.open({ projectRoot: root, logger: memoryLogger(), store });
    let closed = false;
    const close = async (): Promise<void> => {
      if (closed) return;
      closed = true;
      await pool.dispose();
      await store.close();
    };
    onTestFinished(close);
    return { pool, close };
  }

  function writeConfig(root: string, port: number, notify: string[]): void {
    writeFileSync(
      path.join(root, 'agent-pool.toml'),
      ['[agent]', `command = ${JSON.stringify(FAKE_AGENT)}`, '[notify]', ...notify, '[[notify.webhook]]', `url = "http://127.0.0.1:${port}/hook"`].join('\n'),
    );
  }

  it('a receiver that is down is retried, and the delivery goes after a restart, once it is up', async () => {
    const reserved = await startReceiver();
    const port = reserved.port;
    await reserved.close();
    const root = tempRepo();
    writeConfig(root, port, ['retry_seconds = [0.5]']);

    const first = await openPool(root);
    first.pool.start('S-1', 'result');
    await eventually(async () => expect((await first.pool.webhookDeliveries(10))[0]).toMatchObject({ attempts: 1, status: 'PENDING' }));
    await first.close();
    const [pending] = await first.pool.webhookDeliveries(10).catch(() => [undefined]);
    expect(pending).toBeUndefined(); // its database is closed

    const store = Store.open(path.join(root, '.agent-pool', 'state.db'));
    const [stored] = await store.pendingDeliveries();
    await store.close();
    expect(stored).toMatchObject({ event: 'completed', storyId: 'S-1', lastError: 'could not be reached (ECONNREFUSED)', lastStatus: undefined });
    // Due by the time the next server starts: a clock's deadline, not an event, so it is waited for.
    await sleep(Math.max(stored!.nextAttemptAt.getTime() - Date.now(), 0));

    const receiver = await startReceiver(() => 200, port);
    const second = await openPool(root);
    const [request] = await receiver.received(1);
    expect(request!.json).toMatchObject({ id: stored!.id, event: 'completed', storyId: 'S-1' });
    expect(request!.body).toBe(stored!.body);
    await eventually(async () => expect((await second.pool.webhookDeliveries(10))[0]).toMatchObject({ status: 'DELIVERED', attempts: stored!.attempts + 1 }));
  });

  it('a run the previous server left running is reported failed when the next one starts', async () => {
    const receiver = await startReceiver();
    const root = tempRepo();
    writeConfig(root, receiver.port, []);
    const store = Store.open(path.join(root, '.agent-pool', 'state.db'));
    await store.addStory('S-1', new Date(), 'default', 'Crashed story');
    await store.saveRun({
      storyId: 'S-1',
      number: 1,
      agent: 'default',
      prompt: 'wait',
      renderedPrompt: 'wait',
      status: 'RUNNING',
      sessionId: undefined,
      pid: undefined,
      exitCode: undefined,
      error: undefined,
      usage: undefined,
      startedAt: new Date(),
      finishedAt: undefined,
      firstSeq: undefined,
      lastSeq: undefined,
      worktreePath: undefined,
      branch: undefined,
      marker: randomUUID(),
    });
    await store.close();

    const { pool } = await openPool(root);
    const [request] = await receiver.received(1);
    expect(request!.json).toMatchObject({ event: 'failed', storyId: 'S-1', title: 'Crashed story', status: 'FAILED', error: INTERRUPTED_RUN_ERROR });
    expect(pool.get('S-1')!.status).toBe('FAILED');
  });
});
