// Two `agent-pool serve` processes on separate clones of one bare origin, sharing a private
// Postgres (state) and a private Redis (bells): they behave as one towards every client.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Client } from 'graphql-ws';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { type CliProcess, runCli, serverUrl, userEnv, wsClientOf } from '../support/cli.js';
import { writeFakeAgentConfig } from '../support/fake-agent.js';
import { type PrivatePostgres, postgresUnavailable, startPostgres } from '../support/postgres.js';
import { type PrivateRedis, redisUnavailable, startRedis } from '../support/redis.js';
import { tempDir, tempRepo } from '../support/temp.js';

const unavailable = postgresUnavailable() ?? redisUnavailable();
if (unavailable && process.env.CI === 'true') throw new Error(`CI runs the cluster tests: ${unavailable}`);

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

const TOKEN = 'cluster-test-token-0123456789abcdef';

const FAKE_ACP_AGENT = fileURLToPath(new URL('../fixtures/fake-acp-agent.mjs', import.meta.url));

/** A profile that asks a person before each write (the fake ACP agent, its sessions in `state`). */
const acpProfile = (state: string): string[] => [
  '[agents.acp]',
  'kind = "acp"',
  'command = "node"',
  `args = [${JSON.stringify(FAKE_ACP_AGENT)}]`,
  `env = { FAKE_ACP_STATE = ${JSON.stringify(state)} }`,
  'permission_mode = "default"',
];

interface Server {
  cli: CliProcess;
  url: URL;
  clone: string;
}

/** Clones of one bare origin, each with the cluster's configuration: [store] and [bus] from the environment. */
function clones(count: number): string[] {
  const seed = tempRepo();
  const origin = path.join(tempDir(), 'origin.git');
  execFileSync('git', ['clone', '--quiet', '--bare', seed, origin]);
  return Array.from({ length: count }, () => {
    const clone = path.join(tempDir(), 'clone');
    execFileSync('git', ['clone', '--quiet', origin, clone]);
    for (const [key, value] of [['user.name', 'Test Author'], ['user.email', 'test@example.com']]) execFileSync('git', ['-C', clone, 'config', key!, value!]);
    writeFakeAgentConfig(clone, {
      store: 'url_env = "AGENT_POOL_TEST_DATABASE"',
      tables: ['[bus]', 'url_env = "AGENT_POOL_TEST_BUS"', ...acpProfile(tempDir())].join('\n'),
    });
    return clone;
  });
}

async function clusterEnv(): Promise<Record<string, string>> {
  return userEnv({ AGENT_POOL_TEST_DATABASE: await postgres!.database(), AGENT_POOL_TEST_BUS: redis!.url, AGENT_POOL_TOKEN: TOKEN });
}

/** Alpha and beta, on two clones, in a cluster of a new database. */
async function twoServers(): Promise<{ env: Record<string, string>; clones: string[]; a: Server; b: Server }> {
  const env = await clusterEnv();
  const [cloneA, cloneB] = clones(2);
  return { env, clones: [cloneA!, cloneB!], a: await serve(cloneA!, 'alpha', env), b: await serve(cloneB!, 'beta', env) };
}

async function postgresValue(url: string, sql: string): Promise<unknown> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return Object.values((await client.query(sql)).rows[0] as object)[0];
  } finally {
    await client.end();
  }
}

async function serve(clone: string, name: string, env: Record<string, string>): Promise<Server> {
  const cli = runCli(['serve', '--port', '0', '--runner-name', name], { cwd: clone, env });
  return { cli, url: await serverUrl(cli), clone };
}

async function query<T = Record<string, unknown>>(server: Server, body: string): Promise<{ data?: T; errors?: Array<{ message: string; extensions?: { code?: string } }> }> {
  const response = await fetch(`${server.url.origin}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
    body: JSON.stringify({ query: body }),
  });
  return (await response.json()) as never;
}

async function statusOn(server: Server, storyId: string): Promise<string | undefined> {
  const { data } = await query<{ agent: { status: string } | null }>(server, `{ agent(storyId: "${storyId}") { status } }`);
  return data?.agent?.status;
}

interface StreamedEvent {
  __typename: string;
  seq: number;
  status?: string;
}

/** Every event of a story from the start, until its run ends (a COMPLETED, FAILED or STOPPED status event). */
function eventsUntilEnd(client: Client, storyId: string, seen: StreamedEvent[] = []): Promise<StreamedEvent[]> {
  return new Promise((resolve, reject) => {
    const stop = client.subscribe<{ agentEvents: StreamedEvent }>(
      { query: `subscription { agentEvents(storyId: "${storyId}") { __typename seq ... on AgentStatusEvent { status } } }` },
      {
        next: ({ data, errors }) => {
          if (errors) reject(new Error(JSON.stringify(errors)));
          const event = data!.agentEvents;
          seen.push(event);
          if (event.__typename === 'AgentStatusEvent' && ['COMPLETED', 'FAILED', 'STOPPED'].includes(event.status!)) {
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

function expectWholeAndInOrder(events: StreamedEvent[], lastSeq: number): void {
  expect(events.map((event) => event.seq)).toEqual(Array.from({ length: lastSeq }, (_, i) => i + 1));
}

describe.skipIf(unavailable)('a cluster: two servers, one Postgres, one Redis', () => {
  it('streams a story started on one to a subscriber on the other, lists it on both, stops it through either, and names a server that is gone', async () => {
    const env = await clusterEnv();
    const [cloneA, cloneB, cloneC] = clones(3);
    const a = await serve(cloneA!, 'alpha', env);
    const b = await serve(cloneB!, 'beta', env);

    // Subscribed on beta before the story exists; started on alpha.
    const streamed = eventsUntilEnd(wsClientOf(b.url), 'C-1');
    const started = await query(a, 'mutation { startAgent(storyId: "C-1", prompt: "flood 300; result") { status runner } }');
    expect(started).toEqual({ data: { startAgent: { status: 'PENDING', runner: 'alpha' } } });
    const events = await streamed;
    await expect.poll(() => statusOn(a, 'C-1')).toBe('COMPLETED');
    const onA = await query<{ agent: { lastSeq: number } }>(a, '{ agent(storyId: "C-1") { lastSeq } }');
    expectWholeAndInOrder(events, onA.data!.agent.lastSeq);
    expect(events.filter((event) => event.__typename === 'AgentOutputEvent')).toHaveLength(300);

    // Both list it, with where it ran.
    for (const server of [a, b]) {
      await expect.poll(async () => (await query(server, '{ agents { storyId status runner runs { runner } } }')).data).toEqual({
        agents: [{ storyId: 'C-1', status: 'COMPLETED', runner: 'alpha', runs: [{ runner: 'alpha' }] }],
      });
    }

    // A run that waits, started on alpha, stopped through beta: stopped on alpha, its process gone.
    await query(a, 'mutation { startAgent(storyId: "C-2", prompt: "wait") { status } }');
    await expect.poll(() => statusOn(b, 'C-2')).toBe('RUNNING');
    const { data: running } = await query<{ agent: { pid: number } }>(a, '{ agent(storyId: "C-2") { pid } }');
    const stopped = await query(b, 'mutation { stopAgent(storyId: "C-2") { status runner } }');
    expect(stopped).toEqual({ data: { stopAgent: { status: 'STOPPED', runner: 'alpha' } } });
    expect(await statusOn(a, 'C-2')).toBe('STOPPED');
    expect(() => process.kill(running!.agent.pid, 0)).toThrow(/ESRCH/);
    // An error on alpha reaches beta's client with its code.
    const refused = await query(b, 'mutation { sendMessage(storyId: "C-2", text: "more") { status } }');
    expect(refused.errors?.[0]?.extensions?.code).toBe('AGENT_NOT_RUNNING');

    // A second server by the name of one that runs is refused.
    const twin = runCli(['serve', '--port', '0', '--runner-name', 'alpha'], { cwd: cloneC!, env });
    expect(await twin.exited).toBe(2);
    expect(twin.stderr()).toMatch(/a server named alpha already serves the database/);

    // Alpha goes: beta still answers about its stories, and says who holds what it cannot do.
    a.cli.child.kill('SIGTERM');
    expect(await a.cli.exited).toBe(0);
    expect(await statusOn(b, 'C-1')).toBe('COMPLETED');
    // The dashboard's list (services included) is still answered, from Postgres.
    const listed = await query<{ agents: Array<{ storyId: string; services: unknown[] }> }>(b, '{ agents { storyId services { name } } }');
    expect(listed.errors).toBeUndefined();
    expect(listed.data!.agents.map((agent) => agent.storyId)).toEqual(['C-1', 'C-2']);
    const orphaned = await query(b, 'mutation { stopAgent(storyId: "C-1") { status } }');
    expect(orphaned.errors?.[0]?.extensions?.code).toBe('SERVER_UNAVAILABLE');
    expect(orphaned.errors?.[0]?.message).toMatch(/story C-1 is held by server alpha .* which is not running/);
    // Beta's own stories are its own to run.
    await query(b, 'mutation { startAgent(storyId: "C-3", prompt: "say on beta; result") { status } }');
    await expect.poll(() => statusOn(b, 'C-3')).toBe('COMPLETED');
    b.cli.child.kill('SIGTERM');
    expect(await b.cli.exited).toBe(0);
  });

  it('loses no event when Redis is restarted in the middle of a run', async () => {
    const { a, b } = await twoServers();
    const seen: StreamedEvent[] = [];
    const streamed = eventsUntilEnd(wsClientOf(b.url), 'R-1', seen);
    await query(a, 'mutation { startAgent(storyId: "R-1", prompt: "ticks 300 200; result") { status } }');
    await expect.poll(() => seen.length, { timeout: 10_000 }).toBeGreaterThan(30);
    // Redis goes, and the run ends while it is away: its last bells are lost or late.
    await redis!.kill();
    const atKill = seen.length;
    await expect.poll(() => statusOn(a, 'R-1'), { timeout: 10_000 }).toBe('COMPLETED');
    await redis!.start();
    const events = await streamed;
    expect(atKill).toBeLessThan(events.length);
    // The story's record follows its events by a moment (its own bell).
    await expect.poll(() => statusOn(b, 'R-1')).toBe('COMPLETED');
    const { data } = await query<{ agent: { lastSeq: number } }>(b, '{ agent(storyId: "R-1") { lastSeq } }');
    expectWholeAndInOrder(events, data!.agent.lastSeq);
    for (const server of [a, b]) server.cli.child.kill('SIGTERM');
    expect(await Promise.all([a.cli.exited, b.cli.exited])).toEqual([0, 0]);
  });
});

describe.skipIf(unavailable)('a cluster, when one server cannot publish', () => {
  it('loses no event when the running server\'s publishing connection drops again and again until its run ends', async () => {
    const { a, b } = await twoServers();
    const seen: StreamedEvent[] = [];
    const streamed = eventsUntilEnd(wsClientOf(b.url), 'D-1', seen);
    await query(a, 'mutation { startAgent(storyId: "D-1", prompt: "ticks 100 50; result") { status } }');
    await expect.poll(() => seen.length, { timeout: 10_000 }).toBeGreaterThan(10);
    // Alpha's publisher is cut whenever it is back, until the run has ended: its last bells fail.
    const admin = new Redis(redis!.url);
    onTestFinished(() => void admin.quit());
    while ((await statusOn(a, 'D-1')) !== 'COMPLETED') {
      const clients = String(await admin.client('LIST'));
      for (const line of clients.split('\n')) {
        if (line.includes('name=agent-pool:alpha ')) await admin.client('KILL', 'ID', /\bid=(\d+)/.exec(line)![1]!);
      }
    }
    // Should it hang, what the servers said is the clue.
    const events = await Promise.race([
      streamed,
      new Promise<never>((_, reject) => {
        const timer = setTimeout(() => reject(new Error(`${seen.length} events in 20 s; alpha: ${a.cli.stderr()}\nbeta: ${b.cli.stderr()}`)), 20_000);
        onTestFinished(() => clearTimeout(timer));
      }),
    ]);
    const { data } = await query<{ agent: { lastSeq: number } }>(a, '{ agent(storyId: "D-1") { lastSeq } }');
    expectWholeAndInOrder(events, data!.agent.lastSeq);
    await expect.poll(() => statusOn(b, 'D-1')).toBe('COMPLETED');
    for (const server of [a, b]) server.cli.child.kill('SIGTERM');
    expect(await Promise.all([a.cli.exited, b.cli.exited])).toEqual([0, 0]);
  });
});

describe.skipIf(unavailable)('a cluster, with a person in the loop', () => {
  it('shows on one server what an agent on the other waits for, takes the answer there, and reads its worktree from there', async () => {
    const { a, b } = await twoServers();
    const updates: Array<{ storyId: string; status: string; waitingFor: string | null }> = [];
    const stopUpdates = wsClientOf(b.url).subscribe<{ agentUpdates: (typeof updates)[number] }>(
      { query: 'subscription { agentUpdates { storyId status waitingFor } }' },
      { next: ({ data }) => void updates.push(data!.agentUpdates), error: () => {}, complete: () => {} },
    );
    onTestFinished(stopUpdates);

    await query(a, 'mutation { startAgent(storyId: "P-1", agent: "acp", prompt: "write a.txt one\\nsay done") { status } }');
    const waiting = '{ agent(storyId: "P-1") { waitingFor pendingApprovals { requestId } } }';
    await expect.poll(async () => (await query<{ agent: { waitingFor: string } }>(b, waiting)).data?.agent.waitingFor).toBe('APPROVAL');
    const { data } = await query<{ agent: { pendingApprovals: Array<{ requestId: string }> } }>(b, waiting);
    const requestId = data!.agent.pendingApprovals[0]!.requestId;
    const answered = await query(b, `mutation { respondToApproval(storyId: "P-1", requestId: "${requestId}", allow: true) { storyId } }`);
    expect(answered).toEqual({ data: { respondToApproval: { storyId: 'P-1' } } });
    const again = await query(b, `mutation { respondToApproval(storyId: "P-1", requestId: "${requestId}", allow: true) { storyId } }`);
    expect(again.errors?.[0]?.extensions?.code).toBe('APPROVAL_ALREADY_ANSWERED');
    await expect.poll(() => statusOn(b, 'P-1')).toBe('COMPLETED');
    // Beta's live list went through it all: waiting for a person, then done.
    await expect.poll(() => updates.filter((update) => update.storyId === 'P-1').map((update) => update.waitingFor ?? update.status)).toEqual(
      expect.arrayContaining(['APPROVAL', 'COMPLETED']),
    );
    // The file is in alpha's worktree; beta reads the story's changes from alpha.
    const { data: where } = await query<{ agent: { worktreePath: string; changes: { files: Array<{ path: string }> } } }>(
      b,
      '{ agent(storyId: "P-1") { worktreePath changes { files { path } } } }',
    );
    expect(where!.agent.worktreePath.startsWith(a.clone)).toBe(true);
    expect(readFileSync(path.join(where!.agent.worktreePath, 'a.txt'), 'utf8')).toBe('one');
    expect(where!.agent.changes.files.map((file) => file.path)).toEqual(['a.txt']);
    for (const server of [a, b]) server.cli.child.kill('SIGTERM');
    expect(await Promise.all([a.cli.exited, b.cli.exited])).toEqual([0, 0]);
  });
});

describe.skipIf(unavailable)('a cluster, when a server dies or someone else publishes', () => {
  it('a server killed and started again ends only its own runs, and the other hears of it; a message without the cluster\'s signature is dropped', async () => {
    const servers = await twoServers();
    const { env, b } = servers;
    let { a } = servers;
    const [cloneA] = servers.clones;
    await query(a, 'mutation { startAgent(storyId: "K-1", prompt: "wait") { status } }');
    await query(b, 'mutation { startAgent(storyId: "K-2", prompt: "wait") { status } }');
    await expect.poll(() => statusOn(b, 'K-1')).toBe('RUNNING');
    await expect.poll(() => statusOn(a, 'K-2')).toBe('RUNNING');

    // Someone who can reach Redis but has not the token asks alpha to start a story.
    const clusterId = await postgresValue(env.AGENT_POOL_TEST_DATABASE!, 'SELECT id FROM agent_pool_cluster');
    const forger = new Redis(redis!.url);
    onTestFinished(() => void forger.quit());
    const request = JSON.stringify({ kind: 'request', id: 'x', from: 'beta', op: 'start', args: ['FORGED', 'wait'] });
    expect(await forger.publish(`agent-pool:${clusterId}:server:alpha`, `${request}\nnot-a-signature`)).toBe(1);
    await expect.poll(() => a.cli.stderr()).toMatch(/a message without this cluster's signature was dropped/);
    expect((await query(a, '{ agent(storyId: "FORGED") { status } }')).data).toEqual({ agent: null });

    a.cli.child.kill('SIGKILL');
    await a.cli.exited;
    a = await serve(cloneA!, 'alpha', env);
    // Alpha's run was interrupted: FAILED, on both. Beta's runs on.
    for (const server of [a, b]) await expect.poll(() => statusOn(server, 'K-1')).toBe('FAILED');
    expect(await statusOn(a, 'K-2')).toBe('RUNNING');
    // And is stopped through alpha.
    expect(await query(a, 'mutation { stopAgent(storyId: "K-2") { status } }')).toEqual({ data: { stopAgent: { status: 'STOPPED' } } });

    // Alpha's story started again through beta (no title given: left out, not null), the
    // request seen on the bus; sent again, to alpha or to beta, it is not run again.
    const heard: string[] = [];
    const listener = new Redis(redis!.url);
    onTestFinished(() => void listener.quit());
    await listener.subscribe(`agent-pool:${clusterId}:server:alpha`);
    listener.on('message', (_channel: string, message: string) => heard.push(message));
    const again = await query(b, 'mutation { startAgent(storyId: "K-1", prompt: "say again; result") { status runner } }');
    expect(again).toEqual({ data: { startAgent: { status: 'PENDING', runner: 'alpha' } } });
    await expect.poll(() => statusOn(b, 'K-1')).toBe('COMPLETED');
    const captured = heard.find((message) => message.includes('"op":"start"'))!;
    // Heard by alpha, and by the listener.
    expect(await forger.publish(`agent-pool:${clusterId}:server:alpha`, captured)).toBe(2);
    expect(await forger.publish(`agent-pool:${clusterId}:server:beta`, captured)).toBe(1);
    await expect.poll(() => b.cli.stderr()).toMatch(/a message sent to another channel, or too long ago, was dropped/);
    // Alpha heard the replay before this (Redis keeps one publisher's order, and this comes after it).
    await query(b, 'mutation { stopAgent(storyId: "K-1") { status } }');
    const { data: runs } = await query<{ agent: { runs: Array<{ number: number }> } }>(a, '{ agent(storyId: "K-1") { runs { number } } }');
    expect(runs!.agent.runs).toHaveLength(2);
    for (const server of [a, b]) server.cli.child.kill('SIGTERM');
    expect(await Promise.all([a.cli.exited, b.cli.exited])).toEqual([0, 0]);
  });
});

describe.skipIf(unavailable)('joining a cluster', () => {
  it('exits 2 saying why for a bus without Postgres, and a bus it cannot reach (its password never shown); an honest twin joins', async () => {
    const [clone] = clones(1);
    writeFakeAgentConfig(clone!, { tables: '[bus]\nurl_env = "AGENT_POOL_TEST_BUS"' });
    const sqlite = runCli(['serve', '--port', '0'], { cwd: clone, env: userEnv({ AGENT_POOL_TEST_BUS: redis!.url }) });
    expect(await sqlite.exited).toBe(2);
    expect(sqlite.stderr()).toMatch(/\[bus\] needs \[store\] url \(or url_env\): the servers of a cluster share their state in Postgres/);

    writeFakeAgentConfig(clone!, { store: 'url_env = "AGENT_POOL_TEST_DATABASE"', tables: '[bus]\nurl_env = "AGENT_POOL_TEST_BUS"' });
    const env = await clusterEnv();
    const nowhere = runCli(['serve', '--port', '0'], { cwd: clone, env: { ...env, AGENT_POOL_TEST_BUS: 'redis://:hunter2-secret@127.0.0.1:1' } });
    expect(await nowhere.exited).toBe(2);
    expect(nowhere.stderr()).toMatch(/the bus at redis:\/\/:\*\*\*@127\.0\.0\.1:1 cannot be used \(.*ECONNREFUSED.*\): check \[bus\] url/);
    expect(nowhere.stderr()).not.toContain('hunter2-secret');

    const joined = await serve(clone!, 'gamma', env);
    expect(joined.cli.stderr()).toMatch(/serving as gamma in a cluster/);
    joined.cli.child.kill('SIGTERM');
    expect(await joined.cli.exited).toBe(0);
  });
});
