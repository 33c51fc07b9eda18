// Two `agent-pool serve` processes on separate clones of one bare origin, sharing a private
// Postgres (state) and a private Redis (bells): they behave as one towards every client. A
// start is queued for whichever runner claims it; where a test needs a story on alpha, beta
// is an api server (it runs no agents).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { describe, expect, it, onTestFinished } from 'vitest';
import { type CliProcess, runCli, serverUrl, userEnv, wsClientOf } from '../support/cli.js';
import { clusterServices, eventsUntilEnd, graphql, type StreamedEvent, sqlValue } from '../support/cluster.js';
import { writeFakeAgentConfig } from '../support/fake-agent.js';
import { tempDir, tempRepo } from '../support/temp.js';

const { unavailable, postgres, redis } = clusterServices('the cluster tests');

const TOKEN = 'cluster-test-token-0123456789abcdef';

const query = <T = Record<string, unknown>>(server: { url: URL }, body: string) => graphql<T>(server.url, TOKEN, body);

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
function clones(count: number, pool?: string): string[] {
  const seed = tempRepo();
  const origin = path.join(tempDir(), 'origin.git');
  execFileSync('git', ['clone', '--quiet', '--bare', seed, origin]);
  return Array.from({ length: count }, () => {
    const clone = path.join(tempDir(), 'clone');
    execFileSync('git', ['clone', '--quiet', origin, clone]);
    for (const [key, value] of [['user.name', 'Test Author'], ['user.email', 'test@example.com']]) execFileSync('git', ['-C', clone, 'config', key!, value!]);
    writeFakeAgentConfig(clone, {
      pool,
      store: 'url_env = "AGENT_POOL_TEST_DATABASE"',
      tables: ['[bus]', 'url_env = "AGENT_POOL_TEST_BUS"', ...acpProfile(tempDir())].join('\n'),
    });
    return clone;
  });
}

async function clusterEnv(): Promise<Record<string, string>> {
  return userEnv({ AGENT_POOL_TEST_DATABASE: await postgres().database(), AGENT_POOL_TEST_BUS: redis().url, AGENT_POOL_TOKEN: TOKEN });
}

/** Alpha (which runs agents) and beta (an api server, unless told), on two clones, in a cluster of a new database. */
async function twoServers(options: { betaRole?: string; pool?: string } = {}): Promise<{ env: Record<string, string>; clones: string[]; a: Server; b: Server }> {
  const env = await clusterEnv();
  const [cloneA, cloneB] = clones(2, options.pool);
  return { env, clones: [cloneA!, cloneB!], a: await serve(cloneA!, 'alpha', env), b: await serve(cloneB!, 'beta', env, options.betaRole ?? 'api') };
}

async function serve(clone: string, name: string, env: Record<string, string>, role = 'all'): Promise<Server> {
  const cli = runCli(['serve', '--port', '0', '--runner-name', name, '--role', role], { cwd: clone, env });
  return { cli, url: await serverUrl(cli), clone };
}

async function statusOn(server: Server, storyId: string): Promise<string | undefined> {
  const { data } = await query<{ agent: { status: string } | null }>(server, `{ agent(storyId: "${storyId}") { status } }`);
  return data?.agent?.status;
}

function expectWholeAndInOrder(events: StreamedEvent[], lastSeq: number): void {
  expect(events.map((event) => event.seq)).toEqual(Array.from({ length: lastSeq }, (_, i) => i + 1));
}

describe.skipIf(unavailable)('a cluster: two servers, one Postgres, one Redis', () => {
  it('streams a story started on one to a subscriber on the other, lists it on both, stops it through either, and names a server that is gone', async () => {
    const env = await clusterEnv();
    const [cloneA, cloneB, cloneC] = clones(3);
    const a = await serve(cloneA!, 'alpha', env);
    const b = await serve(cloneB!, 'beta', env, 'api');

    // Subscribed on beta before the story exists; started on alpha: queued, then claimed by alpha.
    const streamed = eventsUntilEnd(wsClientOf(b.url), 'C-1');
    const started = await query(a, 'mutation { startAgent(storyId: "C-1", prompt: "flood 300; result") { status runner } }');
    expect(started).toEqual({ data: { startAgent: { status: 'PENDING', runner: null } } });
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
    // With no runner left, a start waits in the queue; a stop takes it out, and it ends STOPPED.
    expect(await query(b, 'mutation { startAgent(storyId: "C-3", prompt: "say never; result") { status runner } }')).toEqual({
      data: { startAgent: { status: 'PENDING', runner: null } },
    });
    expect(await query(b, 'mutation { stopAgent(storyId: "C-3") { status runner } }')).toEqual({ data: { stopAgent: { status: 'STOPPED', runner: null } } });
    expect(await sqlValue(env.AGENT_POOL_TEST_DATABASE!, 'SELECT count(*)::int FROM run_queue')).toBe(0);
    b.cli.child.kill('SIGTERM');
    expect(await b.cli.exited).toBe(0);
  });

  it('loses no event when Redis is restarted in the middle of a run', async () => {
    const { a, b } = await twoServers();
    const seen: StreamedEvent[] = [];
    const streamed = eventsUntilEnd(wsClientOf(b.url), 'R-1', { seen });
    await query(a, 'mutation { startAgent(storyId: "R-1", prompt: "ticks 300 200; result") { status } }');
    await expect.poll(() => seen.length, { timeout: 10_000 }).toBeGreaterThan(30);
    // Redis goes, and the run ends while it is away: its last bells are lost or late.
    await redis().kill();
    const atKill = seen.length;
    await expect.poll(() => statusOn(a, 'R-1'), { timeout: 10_000 }).toBe('COMPLETED');
    await redis().start();
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
    const streamed = eventsUntilEnd(wsClientOf(b.url), 'D-1', { seen });
    await query(a, 'mutation { startAgent(storyId: "D-1", prompt: "ticks 100 50; result") { status } }');
    await expect.poll(() => seen.length, { timeout: 10_000 }).toBeGreaterThan(10);
    // Alpha's publisher is cut whenever it is back, until the run has ended: its last bells fail.
    const admin = new Redis(redis().url);
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
  it('a server killed and started again ends only its own runs, and the other hears of it; a message without the cluster\'s signature is dropped, and one replayed is not run again', async () => {
    // Both run agents, one at a time each: the two stories go one to each.
    const servers = await twoServers({ betaRole: 'all', pool: 'stop_grace_seconds = 0.5\nmax_concurrent = 1' });
    const { env } = servers;
    await query(servers.a, 'mutation { startAgent(storyId: "K-1", prompt: "wait") { status } }');
    await expect.poll(() => statusOn(servers.b, 'K-1')).toBe('RUNNING');
    await query(servers.b, 'mutation { startAgent(storyId: "K-2", prompt: "wait") { status } }');
    await expect.poll(() => statusOn(servers.a, 'K-2')).toBe('RUNNING');
    const runnerOf = async (storyId: string): Promise<string> =>
      (await query<{ agent: { runner: string } }>(servers.a, `{ agent(storyId: "${storyId}") { runner } }`)).data!.agent.runner;
    // X runs K-1, y runs K-2.
    const k1 = await runnerOf('K-1');
    expect(await runnerOf('K-2')).toBe(k1 === 'alpha' ? 'beta' : 'alpha');
    const [cloneA, cloneB] = servers.clones;
    let x = k1 === 'alpha' ? servers.a : servers.b;
    const y = k1 === 'alpha' ? servers.b : servers.a;
    const [xName, yName, xClone] = k1 === 'alpha' ? ['alpha', 'beta', cloneA!] : ['beta', 'alpha', cloneB!];

    // Someone who can reach Redis but has not the token asks x to stop K-1.
    const clusterId = await sqlValue(env.AGENT_POOL_TEST_DATABASE!, 'SELECT id FROM agent_pool_cluster');
    const forger = new Redis(redis().url);
    onTestFinished(() => void forger.quit());
    const request = JSON.stringify({ kind: 'request', id: 'x', from: yName, op: 'stop', args: ['K-1'] });
    expect(await forger.publish(`agent-pool:${clusterId}:server:${xName}`, `${request}\nnot-a-signature`)).toBe(1);
    await expect.poll(() => x.cli.stderr()).toMatch(/a message without this cluster's signature was dropped/);
    expect(await statusOn(x, 'K-1')).toBe('RUNNING');

    x.cli.child.kill('SIGKILL');
    await x.cli.exited;
    x = await serve(xClone, xName, env);
    // X's run was interrupted: FAILED, on both. Y's runs on.
    for (const server of [x, y]) await expect.poll(() => statusOn(server, 'K-1')).toBe('FAILED');
    expect(await statusOn(x, 'K-2')).toBe('RUNNING');

    // K-2 stopped through x, the request seen on the bus; sent again, to y or to x, it is not run again.
    const heard: Array<{ channel: string; message: string }> = [];
    const listener = new Redis(redis().url);
    onTestFinished(() => void listener.quit());
    await listener.subscribe(`agent-pool:${clusterId}:server:${yName}`, `agent-pool:${clusterId}:server:${xName}`);
    listener.on('message', (channel: string, message: string) => heard.push({ channel, message }));
    expect(await query(x, 'mutation { stopAgent(storyId: "K-2") { status } }')).toEqual({ data: { stopAgent: { status: 'STOPPED' } } });
    const captured = heard.find(({ message }) => message.includes('"op":"stop"'))!.message;
    const id = (JSON.parse(captured.slice(0, captured.lastIndexOf('\n'))) as { id: string }).id;
    const replies = (): number => heard.filter(({ message }) => message.includes('"kind":"reply"') && message.includes(`"id":"${id}"`)).length;
    expect(replies()).toBe(1);
    // Heard by y, and by the listener.
    expect(await forger.publish(`agent-pool:${clusterId}:server:${yName}`, captured)).toBe(2);
    expect(await forger.publish(`agent-pool:${clusterId}:server:${xName}`, captured)).toBe(2);
    await expect.poll(() => x.cli.stderr()).toMatch(/a message sent to another channel, or too long ago, was dropped/);
    // Y heard the replay before this request (Redis keeps one publisher's order, and this comes after it): it answered once only.
    await query(x, 'mutation { stopAgent(storyId: "K-2") { status } }');
    expect(replies()).toBe(1);
    for (const server of [x, y]) server.cli.child.kill('SIGTERM');
    expect(await Promise.all([x.cli.exited, y.cli.exited])).toEqual([0, 0]);
  });
});

describe.skipIf(unavailable)('joining a cluster', () => {
  it('exits 2 saying why for a bus without Postgres, a bus it cannot reach (its password never shown), a role without a cluster or that is none, and loss timings that cannot work; an honest twin joins', async () => {
    const [clone] = clones(1);
    writeFakeAgentConfig(clone!, { tables: '[bus]\nurl_env = "AGENT_POOL_TEST_BUS"' });
    const sqlite = runCli(['serve', '--port', '0'], { cwd: clone, env: userEnv({ AGENT_POOL_TEST_BUS: redis().url }) });
    expect(await sqlite.exited).toBe(2);
    expect(sqlite.stderr()).toMatch(/\[bus\] needs \[store\] url \(or url_env\): the servers of a cluster share their state in Postgres/);

    writeFakeAgentConfig(clone!, { store: 'url_env = "AGENT_POOL_TEST_DATABASE"', tables: '[bus]\nurl_env = "AGENT_POOL_TEST_BUS"' });
    const env = await clusterEnv();
    const nowhere = runCli(['serve', '--port', '0'], { cwd: clone, env: { ...env, AGENT_POOL_TEST_BUS: 'redis://:hunter2-secret@127.0.0.1:1' } });
    expect(await nowhere.exited).toBe(2);
    expect(nowhere.stderr()).toMatch(/the bus at redis:\/\/:\*\*\*@127\.0\.0\.1:1 cannot be used \(.*ECONNREFUSED.*\): check \[bus\] url/);
    expect(nowhere.stderr()).not.toContain('hunter2-secret');

    // A role without a cluster, a role that is none, loss timings that cannot work.
    const alone = tempRepo();
    writeFakeAgentConfig(alone);
    const apiAlone = runCli(['serve', '--port', '0', '--role', 'api'], { cwd: alone, env: userEnv() });
    expect(await apiAlone.exited).toBe(2);
    expect(apiAlone.stderr()).toMatch(/--role api is a server's part in a cluster: set \[store\] url and \[bus\] url in agent-pool.toml, or leave --role out/);
    const noRole = runCli(['serve', '--port', '0', '--role', 'boss'], { cwd: clone, env });
    expect(await noRole.exited).toBe(2);
    expect(noRole.stderr()).toMatch(/--role must be all, api or runner; got "boss"/);
    writeFakeAgentConfig(clone!, {
      store: 'url_env = "AGENT_POOL_TEST_DATABASE"',
      tables: '[bus]\nurl_env = "AGENT_POOL_TEST_BUS"\n[cluster]\nheartbeat_seconds = 10\nlost_after_seconds = 10',
    });
    const tooSoon = runCli(['serve', '--port', '0'], { cwd: clone, env });
    expect(await tooSoon.exited).toBe(2);
    expect(tooSoon.stderr()).toMatch(/\[cluster\] lost_after_seconds \(10\) must be longer than heartbeat_seconds \(10\)/);
    writeFakeAgentConfig(clone!, { store: 'url_env = "AGENT_POOL_TEST_DATABASE"', tables: '[bus]\nurl_env = "AGENT_POOL_TEST_BUS"' });

    const joined = await serve(clone!, 'gamma', env, 'runner');
    expect(joined.cli.stderr()).toMatch(/serving as gamma in a cluster \(role runner\)/);
    joined.cli.child.kill('SIGTERM');
    expect(await joined.cli.exited).toBe(0);
  });
});
