// Runners on several hosts: one api server and two runner servers, each on its own clone of
// one remote served over HTTP (as a forge serves it), sharing a private Postgres and a
// private Redis. Runs are queued by the api server and claimed by the runners; each run's
// work goes to the remote; a runner killed mid-run is declared lost within the configured
// time, and its story goes on on the other runner with its earlier work.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { type CliProcess, runCli, serverUrl, userEnv, wsClientOf } from '../support/cli.js';
import { clusterServices, eventsUntilEnd, graphql, sqlValue } from '../support/cluster.js';
import { writeFakeAgentConfig } from '../support/fake-agent.js';
import { type GitHttpRemote, startGitHttpRemote } from '../support/git-http-server.js';
import { tempDir, tempRepo } from '../support/temp.js';
import { findRunProcesses } from '../../src/pool/run-processes.js';
import { startReceiver } from '../support/webhook-receiver.js';

const { unavailable, postgres, redis } = clusterServices("the runners' tests");

const TOKEN = 'runners-test-token-0123456789abcdef';

const query = <T = Record<string, unknown>>(server: { url: URL }, body: string) => graphql<T>(server.url, TOKEN, body);

/** The loss timings, in seconds, as a test sets them. */
const HEARTBEAT_SECONDS = 0.5;
const LOST_AFTER_SECONDS = 3;

interface Server {
  cli: CliProcess;
  url: URL;
  clone: string;
  name: string;
}

interface Agent {
  status: string;
  runner: string | null;
  error: string | null;
  pid: number | null;
  worktreePath: string | null;
  lastSeq: number;
  runs: Array<{ number: number; status: string; runner: string | null }>;
}

async function agent(server: Server, storyId: string): Promise<Agent | undefined> {
  const { data } = await query<{ agent: Agent | null }>(server, `{ agent(storyId: "${storyId}") { status runner error pid worktreePath lastSeq runs { number status runner } } }`);
  return data?.agent ?? undefined;
}

/** A cluster's remote (served over HTTP, with a first commit on main) and its servers' environment. */
async function newCluster(): Promise<{ remote: GitHttpRemote; env: Record<string, string> }> {
  const remote = await startGitHttpRemote();
  await remote.git(tempRepo(), 'push', '--quiet', remote.url, 'HEAD:refs/heads/main');
  await remote.git(remote.dir, 'symbolic-ref', 'HEAD', 'refs/heads/main');
  const env = userEnv({ AGENT_POOL_TEST_DATABASE: await postgres().database(), AGENT_POOL_TEST_BUS: redis().url, AGENT_POOL_TOKEN: TOKEN });
  return { remote, env };
}

/** A server of the cluster on a clone of its own, running one agent at a time (`extra`: more of agent-pool.toml). */
async function serve(cluster: { remote: GitHttpRemote; env: Record<string, string> }, name: string, role: string, extra: string[] = [], flags: string[] = []): Promise<Server> {
  const { remote, env } = cluster;
  const clone = path.join(tempDir(), 'clone');
  await remote.git(tempDir(), 'clone', '--quiet', remote.url, clone);
  for (const [key, value] of [['user.name', 'Test Author'], ['user.email', 'test@example.com']]) await remote.git(clone, 'config', key!, value!);
  writeFakeAgentConfig(clone, {
    pool: 'stop_grace_seconds = 0.5\nmax_concurrent = 1',
    store: 'url_env = "AGENT_POOL_TEST_DATABASE"',
    tables: ['[bus]', 'url_env = "AGENT_POOL_TEST_BUS"', '[cluster]', `heartbeat_seconds = ${HEARTBEAT_SECONDS}`, `lost_after_seconds = ${LOST_AFTER_SECONDS}`, ...extra].join('\n'),
  });
  const cli = runCli(['serve', '--port', '0', '--runner-name', name, '--role', role, ...flags], { cwd: clone, env });
  return { cli, url: await serverUrl(cli), clone, name };
}

describe.skipIf(unavailable)('runners on several hosts', () => {
  it('spread runs over two runners, stream them to the api server and to a runner, push each run\'s work, stop through the api, take up a lost runner\'s story with its work, and leave queued runs queued when a runner stops', async () => {
    const cluster = await newCluster();
    const { remote } = cluster;
    const api = await serve(cluster, 'api-1', 'api');
    const runners = [await serve(cluster, 'run-1', 'runner'), await serve(cluster, 'run-2', 'runner')];
    const byName = (name: string | null): Server => runners.find((runner) => runner.name === name)!;

    // W-1 holds a slot (each runner runs one at a time); W-2 goes to the other runner.
    // Subscribed before the start on the api server and on both runners: one of them is the runner that does not run it.
    const onApi = eventsUntilEnd(wsClientOf(api.url), 'W-2');
    const onRunners = runners.map((runner) => eventsUntilEnd(wsClientOf(runner.url), 'W-2'));
    expect(await query(api, 'mutation { startAgent(storyId: "W-1", prompt: "run echo one > one.txt; wait") { status runner } }')).toEqual({
      data: { startAgent: { status: 'PENDING', runner: null } },
    });
    await expect.poll(async () => (await agent(api, 'W-1'))?.status).toBe('RUNNING');
    const first = byName((await agent(api, 'W-1'))!.runner);
    const other = runners.find((runner) => runner !== first)!;
    await query(api, 'mutation { startAgent(storyId: "W-2", prompt: "run echo two > two.txt; say done; result") { status } }');
    await expect.poll(async () => (await agent(api, 'W-2'))?.status).toBe('COMPLETED');
    const w2 = (await agent(api, 'W-2'))!;
    expect(w2.runner).toBe(other.name);
    expect(w2.runs).toEqual([{ number: 1, status: 'COMPLETED', runner: other.name }]);
    // The api server runs no agent: no worktree of it in its clone.
    expect(w2.worktreePath!.startsWith(other.clone)).toBe(true);
    // Every subscriber saw every event, in order.
    for (const events of await Promise.all([onApi, ...onRunners])) {
      expect(events.map((event) => event.seq)).toEqual(Array.from({ length: w2.lastSeq }, (_, i) => i + 1));
    }
    // Its work is on the remote, committed by agent-pool after the run.
    expect(await remote.git(remote.dir, 'show', 'story/W-2:two.txt')).toBe('two');
    // Landed through the api: there is no user's checkout in a cluster, the remote's main moves (with a lease).
    // Not by a rebase, which would rewrite the branch the runners share.
    const rebased = await query(api, 'mutation { mergeStory(storyId: "W-2", strategy: REBASE) { mergedAt } }');
    expect(rebased.errors?.[0]?.extensions?.code).toBe('INVALID_ARGUMENT');
    expect((await query(api, 'mutation { rebaseStory(storyId: "W-2") { storyId } }')).errors?.[0]?.message).toMatch(/a rebase rewrites the story's branch/);
    const mainBefore = await remote.git(remote.dir, 'rev-parse', 'main');
    const merged = await query<{ mergeStory: { mergedAt: string | null } }>(api, 'mutation { mergeStory(storyId: "W-2", strategy: SQUASH) { mergedAt } }');
    expect(merged.errors).toBeUndefined();
    expect(merged.data!.mergeStory.mergedAt).not.toBeNull();
    expect(await remote.git(remote.dir, 'show', 'main:two.txt')).toBe('two');
    expect(await remote.git(remote.dir, 'rev-parse', 'main^')).toBe(mainBefore);

    // W-3 takes the other runner's slot.
    await query(api, 'mutation { startAgent(storyId: "W-3", prompt: "wait") { status } }');
    await expect.poll(async () => (await agent(api, 'W-3'))?.status).toBe('RUNNING');
    expect((await agent(api, 'W-3'))!.runner).toBe(other.name);

    // W-1, stopped through the api: stopped where it runs, every process gone, its work pushed too.
    const { pid } = (await agent(api, 'W-1'))!;
    expect(await query(api, 'mutation { stopAgent(storyId: "W-1") { status runner } }')).toEqual({ data: { stopAgent: { status: 'STOPPED', runner: first.name } } });
    expect(() => process.kill(pid!, 0)).toThrow(/ESRCH/);
    expect(await remote.git(remote.dir, 'show', 'story/W-1:one.txt')).toBe('one');

    // W-1 again, on the same runner (the other is full); that runner is killed in the middle of the run.
    const streamed = eventsUntilEnd(wsClientOf(api.url), 'W-1', { ends: 3 });
    await query(api, 'mutation { startAgent(storyId: "W-1", prompt: "run echo lost >> one.txt; wait") { status } }');
    await expect.poll(async () => (await agent(api, 'W-1'))?.status).toBe('RUNNING');
    const doomed = byName((await agent(api, 'W-1'))!.runner);
    expect(doomed).toBe(first);
    const survivor = other;
    const marker = String(await sqlValue(cluster.env.AGENT_POOL_TEST_DATABASE!, "SELECT marker FROM runs WHERE story_id = 'W-1' AND number = 2"));
    const killedAt = Date.now();
    doomed.cli.child.kill('SIGKILL');
    await doomed.cli.exited;
    // Say a process of the run outlived its server (a tool's daemon, with the run's marker), and one of no run beside it.
    const outlived = spawn('sleep', ['1000'], { env: { ...process.env, AGENT_POOL_RUN: marker }, detached: true, stdio: 'ignore' });
    const bystander = spawn('sleep', ['1000'], { env: { ...process.env, AGENT_POOL_RUN: 'another-run' }, detached: true, stdio: 'ignore' });
    onTestFinished(() => {
      for (const child of [outlived, bystander]) child.kill('SIGKILL');
    });
    await expect.poll(() => findRunProcesses(marker)).toEqual([outlived.pid]);
    // FAILED, saying why, within the loss time (and a heartbeat or two).
    await expect.poll(async () => (await agent(api, 'W-1'))?.status, { timeout: (LOST_AFTER_SECONDS + 10) * 1000, interval: 100 }).toBe('FAILED');
    const lostIn = (Date.now() - killedAt) / 1000;
    console.log(`runner declared lost ${lostIn.toFixed(1)} s after kill -9 (lost_after_seconds = ${LOST_AFTER_SECONDS})`);
    expect(lostIn).toBeLessThan(LOST_AFTER_SECONDS + 4 * HEARTBEAT_SECONDS + 2);
    expect((await agent(api, 'W-1'))!.error).toBe(`runner ${doomed.name} lost`);
    expect((await agent(survivor, 'W-1'))!.status).toBe('FAILED');
    // While its runner is lost, another runner answers for its work, from the branch its runs pushed.
    const read = await query<{ agent: { changes: { files: Array<{ path: string }> }; commits: Array<{ subject: string }> } }>(
      api,
      '{ agent(storyId: "W-1") { changes { files { path } } commits { subject } } }',
    );
    expect(read.errors).toBeUndefined();
    expect(read.data!.agent.changes.files.map((file) => file.path)).toEqual(['one.txt']);
    expect(read.data!.agent.commits).toHaveLength(1);
    // And lands it, on the remote; every server hears it landed.
    const standIn = await query<{ mergeStory: { mergedAt: string | null } }>(api, 'mutation { mergeStory(storyId: "W-1", strategy: SQUASH) { mergedAt } }');
    expect(standIn.errors).toBeUndefined();
    expect(await remote.git(remote.dir, 'show', 'main:one.txt')).toBe('one');
    for (const server of [api, survivor]) {
      await expect.poll(async () => (await query<{ agent: { mergedAt: string | null } }>(server, '{ agent(storyId: "W-1") { mergedAt } }')).data!.agent.mergedAt).not.toBeNull();
    }

    // Started again, it runs on the other runner (once W-3 leaves it room), which never had
    // the story's branch: fetched from the remote, with the work the first run pushed (not the lost one's).
    await query(api, 'mutation { stopAgent(storyId: "W-3") { status } }');
    await query(api, 'mutation { startAgent(storyId: "W-1", prompt: "run cat one.txt > seen.txt; say seen; result") { status } }');
    await expect.poll(async () => (await agent(api, 'W-1'))?.status).toBe('COMPLETED');
    const w1 = (await agent(api, 'W-1'))!;
    expect(w1.runs.map((run) => [run.status, run.runner])).toEqual([
      ['STOPPED', first.name],
      ['FAILED', doomed.name],
      ['COMPLETED', survivor.name],
    ]);
    expect(w1.worktreePath!.startsWith(survivor.clone)).toBe(true);
    expect(readFileSync(path.join(w1.worktreePath!, 'seen.txt'), 'utf8')).toBe('one\n');
    // The api server's subscriber saw the three runs whole, the lost one's end among them.
    const events = await streamed;
    expect(events.map((event) => event.seq)).toEqual(Array.from({ length: events.length }, (_, i) => events[0]!.seq + i));
    expect(existsSync(path.join(api.clone, '.agent-pool', 'worktrees'))).toBe(false);

    expect(await remote.git(remote.dir, 'show', 'story/W-1:seen.txt')).toBe('one');

    // A landing whose push the remote refuses changes nothing, there or in the runner's clone; then it goes.
    const hook = path.join(remote.dir, 'hooks', 'pre-receive');
    writeFileSync(hook, '#!/bin/sh\necho "main is frozen" >&2\nexit 1\n', { mode: 0o755 });
    const mainBefore2 = await remote.git(remote.dir, 'rev-parse', 'main');
    const refused = await query(api, 'mutation { mergeStory(storyId: "W-1", strategy: SQUASH) { mergedAt } }');
    expect(refused.errors?.[0]?.extensions?.code).toBe('PUSH_FAILED');
    expect(refused.errors?.[0]?.message).toMatch(/main is frozen/);
    expect(await remote.git(remote.dir, 'rev-parse', 'main')).toBe(mainBefore2);
    expect(await remote.git(survivor.clone, 'rev-parse', 'main')).toBe(mainBefore2);
    rmSync(hook);
    const landed = await query<{ mergeStory: { mergedAt: string | null } }>(api, 'mutation { mergeStory(storyId: "W-1", strategy: SQUASH) { mergedAt } }');
    expect(landed.errors).toBeUndefined();
    expect(await remote.git(remote.dir, 'show', 'main:seen.txt')).toBe('one');

    // The last runner stops while a run waits for its slot: that run stays in the queue, for the next runner.
    await query(api, 'mutation { startAgent(storyId: "W-5", prompt: "wait") { status } }');
    await expect.poll(async () => (await agent(api, 'W-5'))?.status).toBe('RUNNING');
    await query(api, 'mutation { startAgent(storyId: "W-6", prompt: "say later; result") { status } }');
    survivor.cli.child.kill('SIGTERM');
    expect(await survivor.cli.exited).toBe(0);
    await expect.poll(async () => (await agent(api, 'W-5'))?.status).toBe('STOPPED');
    expect(await agent(api, 'W-6')).toMatchObject({ status: 'PENDING', runner: null });
    // The lost runner comes back (under its name, in a clone of its own): what survived of its lost run ends, and it takes the queued run.
    const next = await serve(cluster, doomed.name, 'runner');
    expect(await findRunProcesses(marker)).toEqual([]);
    expect(await findRunProcesses('another-run')).toEqual([bystander.pid]);
    expect(next.cli.stderr()).toMatch(/the others had declared run-\d lost while it was away/);
    await expect.poll(async () => (await agent(api, 'W-6'))?.status).toBe('COMPLETED');
    expect((await agent(api, 'W-6'))!.runner).toBe(doomed.name);
    for (const server of [api, next]) server.cli.child.kill('SIGTERM');
    expect(await Promise.all([api.cli.exited, next.cli.exited])).toEqual([0, 0]);
  });

  it('sends a webhook delivery once with two runners up: the one that holds it sends it, the other, which took the outbox up at its start, leaves it; a run its runner cannot start ends FAILED, saying why', async () => {
    const cluster = await newCluster();
    // The receiver fails the first attempt: the delivery waits, PENDING, for its next one.
    const receiver = await startReceiver((_request, index) => (index === 0 ? 503 : 200));
    onTestFinished(() => receiver.close());
    const hook = ['[notify]', 'retry_seconds = [3]', '[[notify.webhook]]', `url = "${receiver.url}"`, 'on = ["completed"]'];
    const runner = await serve(cluster, 'run-1', 'runner', hook);
    await query(runner, 'mutation { startAgent(storyId: "H-1", prompt: "say done; result") { status } }');
    await receiver.received(1);
    // A second server starts meanwhile, and takes the outbox up: the delivery is among it, due when the runner's is.
    const second = await serve(cluster, 'run-2', 'runner', hook, ['--log-level', 'debug']);
    await expect.poll(() => second.cli.stderr(), { timeout: 15_000 }).toMatch(/webhook delivery \S+ is sent by another server of the cluster/);
    await receiver.received(2);
    const deliveries = async () =>
      (await query<{ webhookDeliveries: Array<{ id: string; status: string; attempts: number }> }>(second, '{ webhookDeliveries(first: 10) { id status attempts } }')).data!;
    await expect.poll(async () => (await deliveries()).webhookDeliveries).toEqual([{ id: expect.any(String), status: 'DELIVERED', attempts: 2 }]);
    const data = await deliveries();
    // Two requests in all, one of them answered 200, both for that one delivery.
    expect(receiver.requests.map((request) => request.headers['x-agent-pool-delivery'])).toEqual([data.webhookDeliveries[0]!.id, data.webhookDeliveries[0]!.id]);

    // A run the runner cannot start (a profile only the api server's file has) ends FAILED, saying why.
    second.cli.child.kill('SIGTERM');
    expect(await second.cli.exited).toBe(0);
    const api = await serve(cluster, 'api-1', 'api');
    writeFileSync(path.join(api.clone, 'agent-pool.toml'), `${readFileSync(path.join(api.clone, 'agent-pool.toml'), 'utf8')}\n[agents.special]\ncommand = "node"\n`);
    await query(api, 'mutation { startAgent(storyId: "H-2", agent: "special", prompt: "x") { status } }');
    await expect.poll(async () => (await agent(api, 'H-2'))?.status).toBe('FAILED');
    expect((await agent(api, 'H-2'))!.error).toMatch(/^it could not start on runner run-1: .*special/);

    for (const server of [api, runner]) server.cli.child.kill('SIGTERM');
    expect(await Promise.all([api.cli.exited, runner.cli.exited])).toEqual([0, 0]);
    expect(receiver.requests).toHaveLength(2);
  });
});
