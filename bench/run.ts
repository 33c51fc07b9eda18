// `npm run bench`: agent-pool's speed and memory, each figure beside a baseline measured in
// the same run on the same machine. Prints one JSON document on stdout; progress on stderr.
// Sections: throughput, latency, start, memory, agents, history (pass names to run only some).
// `--quick` runs every section with small counts, two at a time, in well under a minute in
// all, as CI does (test/bench/bench.test.ts): the same JSON, figures that say the bench
// runs, not how fast.
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { useServer } from 'graphql-ws/use/ws';
import { createPubSub, createSchema, createYoga } from 'graphql-yoga';
import * as nodePty from 'node-pty';
import { chromium, type Page } from 'playwright-core';
import { WebSocketServer } from 'ws';
import { silentLogger } from '../src/logger.js';
import { AgentPool } from '../src/pool/agent-pool.js';
import { claudeAdapter } from '../src/pool/agents/claude.js';
import type { AgentEvent, AgentEventPayload } from '../src/pool/events.js';
import { LineReader } from '../src/pool/line-reader.js';
import { startServer } from '../src/server/agent-pool-server.js';
import { DashboardFiles } from '../src/server/dashboard-files.js';
import { envelopedOperations } from '../src/server/yoga-over-ws.js';
import { EVENT_TYPE_NAMES } from '../src/schema/agent-event.js';
import { printSdl } from '../src/schema/index.js';
import { Store } from '../src/store/store.js';
import type { Received } from './subscriber.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..', '..');
const FAKE_AGENT = path.join(ROOT, 'test', 'fixtures', 'fake-agent.mjs');
const SUBSCRIBER = path.join(HERE, 'subscriber.js');
/** The dashboard as `npm run build` (or `npm install`) builds it. */
const DASHBOARD = path.join(ROOT, 'dist', 'web');

const log = (message: string): void => {
  process.stderr.write(`[bench] ${message}\n`);
};
const round = (value: number, digits = 2): number => Number(value.toFixed(digits));
const temps: string[] = [];

const QUICK = process.argv.includes('--quick');
/** How much each section does, in a full run and in a quick one. */
const COUNTS = QUICK
  ? { floodLines: 2_000, latencyTicks: 500, startRuns: 3, memoryLines: 2_000, agents: 5, agentTicks: 60, historyEvents: 5_000 }
  : {
      floodLines: 200_000,
      latencyTicks: 5_000,
      startRuns: 15,
      memoryLines: 180_000, // about 50 MB of stream-json
      agents: 50,
      agentTicks: 400,
      historyEvents: 1_000_000,
    };

function tempRepo(options: { maxEventsPerStory?: number; maxConcurrent?: number } = {}): string {
  const root = mkdtempSync(path.join(tmpdir(), 'agent-pool-bench-'));
  temps.push(root);
  const git = (...args: string[]) => execFileSync('git', args, { cwd: root, stdio: 'ignore' });
  git('init', '--quiet', '--initial-branch=main');
  git('config', 'user.name', 'Bench');
  git('config', 'user.email', 'bench@example.com');
  writeFileSync(path.join(root, 'README.md'), '# bench\n');
  git('add', '.');
  git('commit', '--quiet', '-m', 'init');
  writeFileSync(
    path.join(root, 'agent-pool.toml'),
    `[agent]\ncommand = ${JSON.stringify(FAKE_AGENT)}\n[pool]\nmax_concurrent = ${options.maxConcurrent ?? 16}\nstop_grace_seconds = 1\n` +
      (options.maxEventsPerStory ? `[store]\nmax_events_per_story = ${options.maxEventsPerStory}\n` : ''),
  );
  return root;
}

/** A server as `agent-pool serve` runs it (over the state database), or with events in memory only. */
async function poolServer(options: { maxEventsPerStory?: number; maxConcurrent?: number; inMemory?: boolean } = {}) {
  const root = tempRepo(options);
  const store = options.inMemory ? undefined : Store.open(path.join(root, '.agent-pool', 'state.db'));
  const pool = store
    ? await AgentPool.open({ projectRoot: root, logger: silentLogger, store })
    : new AgentPool({ projectRoot: root, logger: silentLogger });
  const token = randomBytes(16).toString('hex');
  const server = await startServer({ pool, port: 0, token, logger: silentLogger, dashboard: new DashboardFiles(DASHBOARD) });
  return {
    root,
    origin: server.origin,
    pool,
    token,
    url: `${server.origin}/graphql`,
    async close() {
      await pool.dispose();
      await server.close();
      store?.close();
    },
  };
}

/** Runs the subscriber process (one subscriber per entry of `storyIds`); resolves with what each received. */
function subscribers(options: {
  url: string;
  token: string | null;
  storyIds: string[];
  stalled?: number;
  untilSeq?: number | null;
  ticks?: boolean;
}): Promise<Received[]> {
  const child = spawn(process.execPath, [SUBSCRIBER, JSON.stringify({ stalled: 0, untilSeq: null, ticks: false, ...options })], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  return new Promise((resolve, reject) => {
    child.on('close', (code) => (code === 0 ? resolve(JSON.parse(out) as Received[]) : reject(new Error(`subscriber exited ${code}`))));
  });
}

/** The fake agent running `script` on a pty of its own, as the bare baselines run it (its data as Buffers). */
function spawnFakeAgent(script: string, cwd = tmpdir()): nodePty.IPty {
  return nodePty.spawn(process.execPath, [FAKE_AGENT, '-p', script], {
    cols: 200,
    rows: 50,
    cwd,
    env: process.env as Record<string, string>,
    encoding: null,
  });
}

async function until(condition: () => boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Events per second over all subscribers: each one's count over its own first-to-last span. */
function rates(results: Received[]) {
  const perSubscriber = results.map((r) => (r.count - 1) / (Number(BigInt(r.lastNs) - BigInt(r.firstNs)) / 1e9));
  const first = results.reduce((min, r) => (BigInt(r.firstNs) < min ? BigInt(r.firstNs) : min), BigInt(results[0]!.firstNs));
  const last = results.reduce((max, r) => (BigInt(r.lastNs) > max ? BigInt(r.lastNs) : max), 0n);
  const total = results.reduce((sum, r) => sum + r.count, 0);
  return {
    eventsPerSubscriber: results[0]!.count,
    perSubscriberEventsPerSecond: Math.round(Math.min(...perSubscriber)),
    aggregateEventsPerSecond: Math.round(total / (Number(last - first) / 1e9)),
  };
}

// ---- throughput ------------------------------------------------------------------------

const FLOOD_LINES = COUNTS.floodLines;

/** Baseline (a): node-pty alone reading the same flood, split into lines and JSON.parse'd. */
async function rawPtyRead(): Promise<{ linesPerSecond: number }> {
  const reader = new LineReader();
  let lines = 0;
  let first = 0n;
  const pty = spawnFakeAgent(`tools ${FLOOD_LINES}`);
  pty.onData((data: string | Buffer) => {
    if (first === 0n) first = process.hrtime.bigint();
    for (const line of reader.push(data as unknown as Buffer)) {
      if (line.startsWith('{')) {
        JSON.parse(line);
        lines++;
      }
    }
  });
  await new Promise<void>((resolve) => pty.onExit(() => resolve()));
  const seconds = Number(process.hrtime.bigint() - first) / 1e9;
  return { linesPerSecond: Math.round(lines / seconds) };
}

/**
 * Baseline (b): bare yoga + graphql-ws (wired as the server wires them), same schema and
 * payloads, events from an array.
 * As with the pool, the events start once all `subscribers` have subscribed.
 */
async function bareServer(events: AgentEvent[], subscribers: number) {
  let subscribed = 0;
  let go!: () => void;
  const allSubscribed = new Promise<void>((resolve) => {
    go = resolve;
  });
  return bareYoga(async function* () {
    if (++subscribed === subscribers) go();
    await allSubscribed;
    for (const event of events) yield event;
  });
}

/**
 * A bare yoga + graphql-ws server (wired as the server wires them) with agent-pool's
 * schema, whose agentEvents subscription is `subscribe(storyId)`.
 */
async function bareYoga(subscribe: (storyId: string) => AsyncIterable<AgentEvent>) {
  const schema = createSchema({
    typeDefs: printSdl(),
    resolvers: {
      AgentEvent: { __resolveType: (event: AgentEvent) => EVENT_TYPE_NAMES[event.type] },
      Subscription: {
        agentEvents: {
          subscribe: (_root: unknown, args: { storyId: string }) => subscribe(args.storyId),
          resolve: (event: AgentEvent) => event,
        },
      },
    },
  });
  const yoga = createYoga({ schema, logging: false });
  const httpServer = createServer(yoga);
  const webSockets = new WebSocketServer({ server: httpServer, path: '/graphql' });
  const disposable = useServer(envelopedOperations(yoga), webSockets);
  await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
  const { port } = httpServer.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/graphql`,
    async close() {
      await disposable.dispose();
      webSockets.close();
      httpServer.closeAllConnections();
      await new Promise((resolve) => httpServer.close(resolve));
    },
  };
}

/** The events the pool makes of the flood, built once for the bare baseline. */
function floodEvents(): AgentEvent[] {
  const parser = claudeAdapter.createRunParser();
  const out = execFileSync(process.execPath, [FAKE_AGENT, '-p', `tools ${FLOOD_LINES}`], { maxBuffer: 1 << 30 }).toString();
  const at = new Date();
  let seq = 0;
  return out
    .split('\n')
    .flatMap((line) => parser.parseLine(line))
    .map((payload) => ({ ...payload, seq: ++seq, storyId: 'bench', run: 1, at }));
}

async function throughput() {
  log(`throughput: baseline (a), node-pty + JSON.parse of ${FLOOD_LINES} lines`);
  const raw = await rawPtyRead();
  const events = floodEvents();
  const result: Record<string, unknown> = { floodLines: FLOOD_LINES, rawPtyReadAndParse: raw };
  for (const count of [1, 10]) {
    log(`throughput: baseline (b), bare yoga + graphql-ws, ${count} subscriber(s)`);
    const bare = await bareServer(events, count);
    const bareRates = rates(await subscribers({ url: bare.url, token: null, storyIds: Array(count).fill('bench') }));
    await bare.close();

    log(`throughput: agent-pool (state database), ${count} subscriber(s)`);
    const poolRates = await poolThroughput(count, false);
    const figures: Record<string, unknown> = {
      agentPool: poolRates,
      bareYogaGraphqlWs: bareRates,
      ratioToBare: round(poolRates.perSubscriberEventsPerSecond / bareRates.perSubscriberEventsPerSecond),
    };
    if (count === 1) {
      log('throughput: agent-pool with events in memory only, 1 subscriber');
      const memoryRates = await poolThroughput(count, true);
      figures.agentPoolInMemory = memoryRates;
      figures.storedToInMemory = round(poolRates.perSubscriberEventsPerSecond / memoryRates.perSubscriberEventsPerSecond);
    }
    result[`subscribers${count}`] = figures;
  }
  return result;
}

async function poolThroughput(count: number, inMemory: boolean) {
  const server = await poolServer({ maxEventsPerStory: 1_000_000, inMemory });
  const storyId = `flood-${count}`;
  const received = subscribers({ url: server.url, token: server.token, storyIds: Array(count).fill(storyId) });
  await until(() => server.pool.eventLog.openReaders === count);
  server.pool.start(storyId, `tools ${FLOOD_LINES}`);
  const figures = rates(await received);
  await server.close();
  return figures;
}

// ---- latency ---------------------------------------------------------------------------

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** The number of delays (ms), their p50, p99 and max. */
function delaySummary(delaysMs: number[]) {
  const sorted = [...delaysMs].sort((a, b) => a - b);
  return {
    samples: sorted.length,
    p50Ms: round(percentile(sorted, 50)),
    p99Ms: round(percentile(sorted, 99)),
    maxMs: round(sorted.at(-1)!),
  };
}

async function latency() {
  const ticks = COUNTS.latencyTicks;
  const script = `ticks ${ticks} 1000`;
  log(`latency: ${ticks} lines at 1,000/s, agent's write to a graphql-ws subscriber's receipt`);
  const server = await poolServer();
  const received = subscribers({ url: server.url, token: server.token, storyIds: ['ticks'], ticks: true });
  await until(() => server.pool.eventLog.openReaders === 1);
  server.pool.start('ticks', script);
  const [result] = await received;
  await server.close();
  const pool = delaySummary(result!.delaysMs);
  log('latency: baseline, bare yoga + graphql-ws + node-pty running the same agent');
  const bare = await bareAgents(['ticks'], () => script, { go: false, ticks });
  return {
    rate: 1000,
    ...pool,
    bareYogaGraphqlWsNodePty: { p50Ms: bare.p50Ms, p99Ms: bare.p99Ms, maxMs: bare.maxMs },
    p99DifferenceMs: round(pool.p99Ms - bare.p99Ms),
    targetP99DifferenceMs: 5,
  };
}

// ---- start -----------------------------------------------------------------------------

async function start() {
  const runs = COUNTS.startRuns;
  log(`start: startAgent to RUNNING vs git worktree add + spawn, ${runs} stories each`);
  const server = await poolServer();
  // The git calls of one start are logged by a shim that runs the real git.
  const shimDir = mkdtempSync(path.join(tmpdir(), 'agent-pool-bench-git-'));
  temps.push(shimDir);
  const callLog = path.join(shimDir, 'calls.log');
  const realGit = execFileSync('sh', ['-c', 'command -v git']).toString().trim();
  writeFileSync(path.join(shimDir, 'git'), `#!/bin/sh\necho "git $*" >> "${callLog}"\nexec ${realGit} "$@"\n`, { mode: 0o755 });
  const originalPath = process.env.PATH;
  const poolMs: number[] = [];
  for (let i = 0; i < runs; i++) {
    const storyId = `start-${i}`;
    const traced = i === runs - 1;
    if (traced) {
      await server.pool.worktrees.settled();
      process.env.PATH = `${shimDir}:${originalPath}`;
    }
    const began = process.hrtime.bigint();
    const running = new Promise<void>((resolve) => {
      const off = server.pool.onAgentChange((agent) => {
        if (agent.storyId === storyId && agent.status === 'RUNNING') {
          off();
          resolve();
        }
      });
    });
    server.pool.start(storyId, 'wait');
    await running;
    poolMs.push(Number(process.hrtime.bigint() - began) / 1e6);
    // The base ref is written in the background while the agent starts: list it too.
    if (traced) await server.pool.worktrees.settled();
    process.env.PATH = originalPath;
    await server.pool.stop(storyId);
  }
  const gitCalls = readFileSync(callLog, 'utf8').trim().split('\n');
  await server.close();

  const root = tempRepo();
  const bareMs: number[] = [];
  for (let i = 0; i < runs; i++) {
    const worktree = path.join(root, '.trees', `bare-${i}`);
    const began = process.hrtime.bigint();
    execFileSync('git', ['worktree', 'add', '--quiet', '-b', `bare/${i}`, worktree, 'HEAD'], { cwd: root, stdio: 'ignore' });
    const pty = spawnFakeAgent('wait', worktree);
    bareMs.push(Number(process.hrtime.bigint() - began) / 1e6);
    const exited = new Promise((resolve) => pty.onExit(resolve));
    pty.kill('SIGKILL');
    await exited;
  }
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
  return {
    runs,
    agentPoolMedianMs: round(median(poolMs)),
    bareWorktreeAddAndSpawnMedianMs: round(median(bareMs)),
    ratio: round(median(poolMs) / median(bareMs)),
    target: 1.5,
    gitCallsOfOneStart: gitCalls,
  };
}

// ---- memory ----------------------------------------------------------------------------

const megabytes = (bytes: number): number => round(bytes / 2 ** 20, 1);

/** Samples this process's memory every 50 ms (after a GC) until `stop()`, which gives the peaks. */
function memorySampler() {
  (globalThis as { gc?: () => void }).gc?.();
  const before = process.memoryUsage();
  let rssPeak = before.rss;
  let heapPeak = before.heapUsed;
  const timer = setInterval(() => {
    const usage = process.memoryUsage();
    rssPeak = Math.max(rssPeak, usage.rss);
    heapPeak = Math.max(heapPeak, usage.heapUsed);
  }, 50);
  return {
    stop() {
      clearInterval(timer);
      return { rssBefore: before.rss, rssPeak, rssGrowth: rssPeak - before.rss, heapUsedGrowth: heapPeak - before.heapUsed };
    },
  };
}

async function memory() {
  const lines = COUNTS.memoryLines;
  log(`memory: a ${lines}-line flood with one subscriber that reads nothing and one that reads all`);
  // The default retention (max_events_per_story), as users run it.
  const server = await poolServer();
  const sampler = memorySampler();
  const received = subscribers({ url: server.url, token: server.token, storyIds: ['mem'], stalled: 1 });
  await until(() => server.pool.eventLog.openReaders === 2);
  server.pool.start('mem', `tools ${lines}`);
  const [reader] = await received;
  const used = sampler.stop();
  const agent = server.pool.get('mem')!;
  await server.close();
  return {
    floodLines: lines,
    rssBeforeMb: megabytes(used.rssBefore),
    rssPeakMb: megabytes(used.rssPeak),
    rssGrowthMb: megabytes(used.rssGrowth),
    heapUsedGrowthMb: megabytes(used.heapUsedGrowth),
    readingSubscriberGotEveryEvent: reader!.count === agent.lastSeq && reader!.lastSeq === agent.lastSeq,
    events: agent.lastSeq,
    targetGrowthMb: 100,
  };
}

// ---- agents ----------------------------------------------------------------------------

/** Lines per second of each agent: 1,000/s in all from 50 agents. */
const AGENT_RATE = 20;

/**
 * The script of the agent `index` of `count`: once started, it waits for a line on its
 * terminal, then ticks at a trickle. The bench types that line into every terminal when all
 * the agents have started (printed their first line), so that the ticks are of agents
 * running side by side, not of their start (agent-pool makes each story's worktree before
 * its agent starts, one at a time). Each agent starts ticking a little after the one before,
 * so that their ticks interleave rather than all come at the same instant.
 */
function agentScript(index: number, count: number): string {
  const offsetMs = Math.round((index * 1000) / AGENT_RATE / count);
  return `echo-stdin 1; sleep ${offsetMs}; ticks ${COUNTS.agentTicks} ${AGENT_RATE}`;
}
/** The line that sets the agents ticking. */
const GO = 'go\r';

/**
 * What the agents' subscribers received: nothing lost (every tick of every agent), and how
 * late, over all ticks and steady: without each agent's first and last second, when all
 * of them wake up or end at once.
 */
function agentFigures(results: Received[], ticksPerAgent: number) {
  return {
    events: results.reduce((sum, result) => sum + result.count, 0),
    everyTick: results.every((result) => result.delaysMs.length === ticksPerAgent),
    ...delaySummary(results.flatMap((result) => result.delaysMs)),
    steady: delaySummary(results.flatMap((result) => result.delaysMs.slice(AGENT_RATE, -AGENT_RATE))),
  };
}

async function agents() {
  const storyIds = Array.from({ length: COUNTS.agents }, (_, i) => `agent-${i + 1}`);
  log(`agents: ${storyIds.length} agents at once, ${COUNTS.agentTicks} lines each at ${AGENT_RATE}/s, a subscriber each`);
  // agent-pool first: its memory is measured in this process, before the baseline ran here.
  const pool = await poolAgents(storyIds);
  log('agents: baseline, bare yoga + graphql-ws + node-pty running the same agents');
  const bare = await bareAgents(storyIds, (index) => agentScript(index, storyIds.length), { go: true, ticks: COUNTS.agentTicks });
  return {
    agents: storyIds.length,
    ticksPerAgent: COUNTS.agentTicks,
    ratePerAgent: AGENT_RATE,
    agentPool: pool,
    bareYogaGraphqlWsNodePty: bare,
    steadyP50DifferenceMs: round(pool.steady.p50Ms - bare.steady.p50Ms),
    steadyP99DifferenceMs: round(pool.steady.p99Ms - bare.steady.p99Ms),
    p99DifferenceMs: round(pool.p99Ms - bare.p99Ms),
  };
}

/** The agents run by agent-pool, and the server's memory (this process's RSS) per running agent. */
async function poolAgents(storyIds: string[]) {
  const server = await poolServer({ maxConcurrent: storyIds.length });
  const sampler = memorySampler();
  const received = subscribers({ url: server.url, token: server.token, storyIds, ticks: true });
  await until(() => server.pool.eventLog.openReaders === storyIds.length);
  const began = performance.now();
  for (const [index, storyId] of storyIds.entries()) server.pool.start(storyId, agentScript(index, storyIds.length));
  // An agent's first line carries its session id.
  await until(() => storyIds.every((storyId) => server.pool.get(storyId)?.sessionId !== undefined), 180_000);
  const allStartedMs = round(performance.now() - began, 0);
  // The base refs, written in the background while the agents start, are written too.
  await server.pool.worktrees.settled();
  for (const storyId of storyIds) server.pool.sendInput(storyId, GO);
  const results = await received;
  const used = sampler.stop();
  await server.close();
  return {
    allStartedMs,
    ...agentFigures(results, COUNTS.agentTicks),
    rssGrowthMb: megabytes(used.rssGrowth),
    rssPerRunningAgentMb: round(used.rssGrowth / 2 ** 20 / storyIds.length),
  };
}

/**
 * Baseline: a bare yoga + graphql-ws + node-pty server running the same agents, as one would
 * write it: each agent on a pty, its lines JSON.parse'd and published with yoga's pub/sub to
 * its story's subscribers, over the same schema; a done event when the agent exits.
 * `scriptOf(index)` is each agent's script, of `ticks` ticks; with `go`, the agents wait for {@link GO}, typed
 * once all of them have started, as in {@link poolAgents}.
 */
async function bareAgents(storyIds: string[], scriptOf: (index: number) => string, options: { go: boolean; ticks: number }) {
  const pubSub = createPubSub<{ agentEvents: [storyId: string, event: AgentEvent] }>();
  let subscribed = 0;
  const server = await bareYoga((storyId) => {
    subscribed++;
    return pubSub.subscribe('agentEvents', storyId);
  });
  const received = subscribers({ url: server.url, token: null, storyIds, ticks: true });
  await until(() => subscribed === storyIds.length);
  const began = performance.now();
  let started = 0;
  const spawned = storyIds.map((storyId, index) => {
    let seq = 0;
    const publish = (payload: AgentEventPayload) =>
      pubSub.publish('agentEvents', storyId, { ...payload, seq: ++seq, storyId, run: 1, at: new Date() });
    const reader = new LineReader();
    const pty = spawnFakeAgent(scriptOf(index));
    pty.onData((data: string | Buffer) => {
      for (const line of reader.push(data as unknown as Buffer)) {
        if (!line.startsWith('{')) continue;
        if (seq === 0) started++;
        publish({ type: 'json', data: JSON.parse(line) });
      }
    });
    const exited = new Promise<void>((resolve) =>
      pty.onExit(({ exitCode }) => {
        publish({ type: 'done', sessionId: null, exitCode });
        resolve();
      }),
    );
    return { pty, exited };
  });
  await until(() => started === storyIds.length, 180_000);
  const allStartedMs = round(performance.now() - began, 0);
  if (options.go) for (const { pty } of spawned) pty.write(GO);
  const results = await received;
  await Promise.all(spawned.map(({ exited }) => exited));
  await server.close();
  return { allStartedMs, ...agentFigures(results, options.ticks) };
}

// ---- history ---------------------------------------------------------------------------

/** Debian's Chromium, as the browser tests use it. */
const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((file) => existsSync(file));

/** A completed story, then `count` more stored events: lines of output, as an agent's long history. */
async function storyWithHistory(server: Awaited<ReturnType<typeof poolServer>>, storyId: string, count: number): Promise<number> {
  server.pool.start(storyId, 'say ready');
  await until(() => server.pool.get(storyId)?.status === 'COMPLETED');
  const batch = 10_000;
  for (let done = 0; done < count; done += batch) {
    const size = Math.min(batch, count - done);
    const lines = Array.from({ length: size }, (_, i) => ({ type: 'output' as const, text: `line ${done + i + 1} of the history, as an agent prints it` }));
    server.pool.eventLog.append(storyId, 1, lines);
    await server.pool.eventLog.settled(storyId);
  }
  return server.pool.get(storyId)!.lastSeq;
}

/** The list's events in memory (its window, from data-held) as a count. */
async function held(page: Page): Promise<number> {
  const range = await page.getByRole('list', { name: /^Events of / }).getAttribute('data-held');
  const [first, last] = (range ?? '0-0').split('-').map(Number);
  return last! - first! + 1;
}

/** The page's JavaScript heap after a full garbage collection, in MB. */
async function heapMb(page: Page): Promise<number> {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('HeapProfiler.collectGarbage');
  const { usedSize } = await cdp.send('Runtime.getHeapUsage');
  await cdp.detach();
  return megabytes(usedSize);
}

/**
 * A story with a long history on the dashboard, in Chromium: the time from opening its
 * address until its newest event is shown, beside the same for a story of a thousand
 * events, and from loading the page at its address; then the page's heap at the end, after scrolling up page by page, at the start
 * (#1, by "Oldest events") and back at the end.
 */
async function history() {
  const count = COUNTS.historyEvents;
  if (!existsSync(path.join(DASHBOARD, 'index.html'))) throw new Error(`the dashboard is not built (${DASHBOARD}): run "npm run build" first`);
  if (!CHROMIUM) {
    const reason = 'Chromium is not installed (apt-get install chromium)';
    if (process.env.CI) throw new Error(reason);
    return { skipped: reason };
  }
  const server = await poolServer({ maxEventsPerStory: count + 1_000 });
  log(`history: storing ${count} events`);
  const storing = performance.now();
  const lastSeq = await storyWithHistory(server, 'long', count);
  const storeMs = performance.now() - storing;
  const shortSeq = await storyWithHistory(server, 'short', 1_000);

  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--no-first-run'] });
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    const events = page.getByRole('list', { name: /^Events of / });
    const shown = (seq: number) => events.getByRole('listitem').filter({ has: page.getByText(`#${seq}`, { exact: true }) });
    /** Opens a story's address (the page loaded and connected before), until its newest event is shown. */
    const open = async (storyId: string, seq: number): Promise<number> => {
      await page.goto(`${server.origin}/?token=${server.token}`);
      await page.getByRole('status', { name: 'Connection' }).getByText('Live').waitFor();
      const began = performance.now();
      await page.evaluate((address) => {
        window.history.pushState(null, '', address);
        dispatchEvent(new PopStateEvent('popstate'));
      }, `/stories/${storyId}`);
      await shown(seq).waitFor({ timeout: 60_000 });
      return performance.now() - began;
    };
    log('history: opening the short story (once to warm the page up), the long one, the short one');
    await open('short', shortSeq);
    const openMs = await open('long', lastSeq);
    const shortOpenMs = await open('short', shortSeq);
    // As a link opens it: the page loaded from its address, connected, the story shown.
    const loaded = performance.now();
    await page.goto(`${server.origin}/stories/long?token=${server.token}`);
    await shown(lastSeq).waitFor({ timeout: 60_000 });
    const loadOpenMs = performance.now() - loaded;
    const atEnd = { heapMb: await heapMb(page), held: await held(page) };

    log('history: scrolling up 20 pages');
    const scrolled = performance.now();
    const target = lastSeq - 20 * 200;
    // To the top of what it holds, then until it holds an older page (read before the wait
    // began, or during it), then again.
    for (let range = await events.getAttribute('data-held'); Number(range!.split('-')[0]) > target; ) {
      await events.evaluate((element) => (element.scrollTop = 0));
      await page.waitForFunction(
        (before) => document.querySelector('[role=list][aria-label^="Events of"]')?.getAttribute('data-held') !== before,
        range,
        { polling: 'raf' },
      );
      range = await events.getAttribute('data-held');
    }
    const scrollUpMs = performance.now() - scrolled;
    const afterScrollingUp = { heapMb: await heapMb(page), held: await held(page) };

    log('history: to the start and back');
    const jumped = performance.now();
    await page.getByRole('button', { name: 'Oldest events' }).click();
    await shown(1).waitFor();
    const toStartMs = performance.now() - jumped;
    const atStart = { heapMb: await heapMb(page), held: await held(page) };
    const back = performance.now();
    await page.getByRole('button', { name: 'Follow new events' }).click();
    await shown(lastSeq).waitFor();
    const backToEndMs = performance.now() - back;
    const backAtEnd = { heapMb: await heapMb(page), held: await held(page), domNodes: await page.evaluate(() => document.querySelectorAll('*').length) };
    return {
      events: lastSeq,
      storeMs: round(storeMs, 0),
      openMs: round(openMs, 0),
      loadOpenMs: round(loadOpenMs, 0),
      shortStoryEvents: shortSeq,
      shortStoryOpenMs: round(shortOpenMs, 0),
      targetOpenMs: 1000,
      scrollUp20PagesMs: round(scrollUpMs, 0),
      toStartMs: round(toStartMs, 0),
      backToEndMs: round(backToEndMs, 0),
      atEnd,
      afterScrollingUp,
      atStart,
      backAtEnd,
    };
  } finally {
    await browser.close();
    await server.close();
  }
}

const SECTIONS = { throughput, latency, start, memory, agents, history } as const;

type SectionName = keyof typeof SECTIONS;

/** Runs one section in this process and prints its figures as JSON. */
async function runSection(name: SectionName): Promise<void> {
  try {
    process.stdout.write(`${JSON.stringify(await SECTIONS[name]())}\n`);
  } finally {
    for (const dir of temps) rmSync(dir, { recursive: true, force: true });
  }
}

/** Each section runs in a fresh process, so that none inherits another's heap. */
function spawnSection(name: SectionName): Promise<unknown> {
  const args = ['--expose-gc', fileURLToPath(import.meta.url), '--section', name, ...(QUICK ? ['--quick'] : [])];
  const child = spawn(process.execPath, args, {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  return new Promise((resolve, reject) => {
    child.on('close', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`section ${name} failed (${code})`))));
  });
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args[0] === '--section') return runSection(args[1] as SectionName);
  const unknown = args.filter((arg) => arg !== '--quick' && !(arg in SECTIONS));
  if (unknown.length > 0) throw new Error(`unknown argument ${unknown.join(', ')} (sections: ${Object.keys(SECTIONS).join(', ')}; --quick)`);
  const wanted = args.filter((name): name is SectionName => name in SECTIONS);
  const names = wanted.length > 0 ? wanted : (Object.keys(SECTIONS) as SectionName[]);
  const report: Record<string, unknown> = {
    quick: QUICK,
    machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version },
  };
  // A quick run's figures say that the bench runs, not how fast (docs/benchmarks.md): its
  // sections run two at a time, as many as this machine has cores for. A full run's one
  // after the other, each alone on the machine.
  const results = new Map<SectionName, unknown>();
  const queue = [...names];
  const worker = async (): Promise<void> => {
    for (let name = queue.shift(); name; name = queue.shift()) results.set(name, await spawnSection(name));
  };
  await Promise.all(Array.from({ length: QUICK ? 2 : 1 }, worker));
  for (const name of names) report[name] = results.get(name);
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
}

await main();
