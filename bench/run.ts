// `npm run bench`: agent-pool's speed and memory, each figure beside a baseline measured in
// the same run on the same machine. Prints one JSON document on stdout; progress on stderr.
// Sections: throughput, latency, start, memory (pass names to run only some).
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { useServer } from 'graphql-ws/use/ws';
import { createSchema, createYoga } from 'graphql-yoga';
import * as nodePty from 'node-pty';
import { WebSocketServer } from 'ws';
import { silentLogger } from '../src/logger.js';
import { AgentPool } from '../src/pool/agent-pool.js';
import { claudeAdapter } from '../src/pool/agents/claude.js';
import type { AgentEvent } from '../src/pool/events.js';
import { LineReader } from '../src/pool/line-reader.js';
import { startServer } from '../src/server/agent-pool-server.js';
import { envelopedOperations } from '../src/server/yoga-over-ws.js';
import { EVENT_TYPE_NAMES } from '../src/schema/agent-event.js';
import { printSdl } from '../src/schema/index.js';
import { Store } from '../src/store/store.js';
import type { Received } from './subscriber.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..', '..');
const FAKE_AGENT = path.join(ROOT, 'test', 'fixtures', 'fake-agent.mjs');
const SUBSCRIBER = path.join(HERE, 'subscriber.js');

const log = (message: string): void => {
  process.stderr.write(`[bench] ${message}\n`);
};
const round = (value: number, digits = 2): number => Number(value.toFixed(digits));
const temps: string[] = [];

function tempRepo(options: { maxEventsPerStory?: number } = {}): string {
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
    `[agent]\ncommand = ${JSON.stringify(FAKE_AGENT)}\n[pool]\nmax_concurrent = 16\nstop_grace_seconds = 1\n` +
      (options.maxEventsPerStory ? `[store]\nmax_events_per_story = ${options.maxEventsPerStory}\n` : ''),
  );
  return root;
}

/** A server as `agent-pool serve` runs it (over the state database), or with events in memory only. */
async function poolServer(options: { maxEventsPerStory?: number; inMemory?: boolean } = {}) {
  const root = tempRepo(options);
  const store = options.inMemory ? undefined : Store.open(path.join(root, '.agent-pool', 'state.db'));
  const pool = store
    ? await AgentPool.open({ projectRoot: root, logger: silentLogger, store })
    : new AgentPool({ projectRoot: root, logger: silentLogger });
  const token = randomBytes(16).toString('hex');
  const server = await startServer({ pool, port: 0, token, logger: silentLogger });
  return {
    root,
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

/** Runs the subscriber process; resolves with what each subscriber received. */
function subscribers(options: {
  url: string;
  token: string | null;
  storyId: string;
  subscribers: number;
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

const FLOOD_LINES = 200_000;

/** Baseline (a): node-pty alone reading the same flood, split into lines and JSON.parse'd. */
async function rawPtyRead(): Promise<{ linesPerSecond: number }> {
  const reader = new LineReader();
  let lines = 0;
  let first = 0n;
  const pty = nodePty.spawn(process.execPath, [FAKE_AGENT, '-p', `tools ${FLOOD_LINES}`], {
    cols: 200,
    rows: 50,
    cwd: tmpdir(),
    env: process.env as Record<string, string>,
    encoding: null,
  });
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
  const schema = createSchema({
    typeDefs: printSdl(),
    resolvers: {
      AgentEvent: { __resolveType: (event: AgentEvent) => EVENT_TYPE_NAMES[event.type] },
      Subscription: {
        agentEvents: {
          subscribe: async function* () {
            if (++subscribed === subscribers) go();
            await allSubscribed;
            for (const event of events) yield event;
          },
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
    const bareRates = rates(await subscribers({ url: bare.url, token: null, storyId: 'bench', subscribers: count }));
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
  const received = subscribers({ url: server.url, token: server.token, storyId, subscribers: count });
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

async function latency() {
  const ticks = 5000;
  log(`latency: ${ticks} lines at 1,000/s, agent's write to a graphql-ws subscriber's receipt`);
  const server = await poolServer();
  const received = subscribers({ url: server.url, token: server.token, storyId: 'ticks', subscribers: 1, ticks: true });
  await until(() => server.pool.eventLog.openReaders === 1);
  server.pool.start('ticks', `ticks ${ticks} 1000`);
  const [result] = await received;
  await server.close();
  const delays = result!.delaysMs.sort((a, b) => a - b);
  return {
    rate: 1000,
    samples: delays.length,
    p50Ms: round(percentile(delays, 50)),
    p99Ms: round(percentile(delays, 99)),
    maxMs: round(delays.at(-1)!),
    targetP99Ms: 10,
  };
}

// ---- start -----------------------------------------------------------------------------

async function start() {
  const runs = 15;
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
    const pty = nodePty.spawn(process.execPath, [FAKE_AGENT, '-p', 'wait'], {
      cols: 200,
      rows: 50,
      cwd: worktree,
      env: process.env as Record<string, string>,
    });
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

async function memory() {
  const lines = 180_000; // about 50 MB of stream-json
  log(`memory: a ${lines}-line flood (~50 MB) with one subscriber that reads nothing and one that reads all`);
  // The default retention (max_events_per_story), as users run it.
  const server = await poolServer();
  (globalThis as { gc?: () => void }).gc?.();
  const before = process.memoryUsage();
  let peak = before.rss;
  let heapPeak = before.heapUsed;
  const sampler = setInterval(() => {
    const usage = process.memoryUsage();
    peak = Math.max(peak, usage.rss);
    heapPeak = Math.max(heapPeak, usage.heapUsed);
  }, 50);
  const received = subscribers({ url: server.url, token: server.token, storyId: 'mem', subscribers: 1, stalled: 1 });
  await until(() => server.pool.eventLog.openReaders === 2);
  server.pool.start('mem', `tools ${lines}`);
  const [reader] = await received;
  clearInterval(sampler);
  const agent = server.pool.get('mem')!;
  await server.close();
  return {
    floodLines: lines,
    rssBeforeMb: round(before.rss / 2 ** 20, 1),
    rssPeakMb: round(peak / 2 ** 20, 1),
    rssGrowthMb: round((peak - before.rss) / 2 ** 20, 1),
    heapUsedGrowthMb: round((heapPeak - before.heapUsed) / 2 ** 20, 1),
    readingSubscriberGotEveryEvent: reader!.count === agent.lastSeq && reader!.lastSeq === agent.lastSeq,
    events: agent.lastSeq,
    targetGrowthMb: 100,
  };
}

const SECTIONS = { throughput, latency, start, memory } as const;

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
  const child = spawn(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url), '--section', name], {
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
  const wanted = args.filter((name): name is SectionName => name in SECTIONS);
  const names = wanted.length > 0 ? wanted : (Object.keys(SECTIONS) as SectionName[]);
  const report: Record<string, unknown> = {
    machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version },
  };
  for (const name of names) report[name] = await spawnSection(name);
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
}

await main();
