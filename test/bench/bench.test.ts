// The benchmark in CI: `npm run bench -- --quick` (compiled and run as that script does,
// every section with small counts), so that the bench cannot break unseen. It checks that
// the bench ran: every section is in its JSON with its figures, numbers all of them. Not
// how fast: the figures of a quick run beside the other tests on a busy machine say
// nothing. Only that nothing was lost, which is no figure: every event of the memory
// section's flood, every tick of every agent, on agent-pool and on the bare baseline; and
// that the dashboard held no more of a long history than its window.
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const TSC = createRequire(import.meta.url).resolve('typescript/bin/tsc');

/** Each section of the bench, and figures of it that must be numbers. */
const FIGURES: Record<string, string[]> = {
  throughput: [
    'floodLines',
    'rawPtyReadAndParse.linesPerSecond',
    'subscribers1.agentPool.perSubscriberEventsPerSecond',
    'subscribers1.bareYogaGraphqlWs.perSubscriberEventsPerSecond',
    'subscribers1.ratioToBare',
    'subscribers1.agentPoolInMemory.perSubscriberEventsPerSecond',
    'subscribers1.storedToInMemory',
    'subscribers10.agentPool.aggregateEventsPerSecond',
    'subscribers10.bareYogaGraphqlWs.aggregateEventsPerSecond',
    'subscribers10.ratioToBare',
  ],
  latency: ['samples', 'p50Ms', 'p99Ms', 'maxMs', 'bareYogaGraphqlWsNodePty.p99Ms', 'p99DifferenceMs'],
  start: ['runs', 'agentPoolMedianMs', 'bareWorktreeAddAndSpawnMedianMs', 'ratio'],
  memory: ['floodLines', 'rssGrowthMb', 'heapUsedGrowthMb', 'events'],
  agents: [
    'agents',
    'agentPool.events',
    'agentPool.p50Ms',
    'agentPool.p99Ms',
    'agentPool.steady.p99Ms',
    'agentPool.rssPerRunningAgentMb',
    'bareYogaGraphqlWsNodePty.events',
    'bareYogaGraphqlWsNodePty.p99Ms',
    'bareYogaGraphqlWsNodePty.steady.p99Ms',
    'steadyP99DifferenceMs',
    'p99DifferenceMs',
  ],
  history: [
    'events',
    'openMs',
    'shortStoryOpenMs',
    'toStartMs',
    'backToEndMs',
    'atEnd.heapMb',
    'afterScrollingUp.heapMb',
    'afterScrollingUp.held',
    'atStart.heapMb',
    'backAtEnd.heapMb',
  ],
};

/** The value at a dotted path of `report`. */
function at(report: unknown, dotted: string): unknown {
  return dotted.split('.').reduce<unknown>((value, key) => (value as Record<string, unknown> | undefined)?.[key], report);
}

/** The dotted paths of the nulls in `value` (JSON prints NaN and Infinity as null). */
function nulls(value: unknown, prefix = ''): string[] {
  if (value === null) return [prefix];
  if (typeof value !== 'object') return [];
  return Object.entries(value).flatMap(([key, inner]) => nulls(inner, prefix ? `${prefix}.${key}` : key));
}

it('runs the quick bench: every section, with its figures', async () => {
  await run(process.execPath, [TSC, '-p', 'tsconfig.bench.json'], { cwd: ROOT });
  const { stdout } = await run(process.execPath, ['--expose-gc', 'dist-bench/bench/run.js', '--quick'], {
    cwd: ROOT,
    maxBuffer: 16 * 1024 * 1024,
  });
  const report = JSON.parse(stdout) as Record<string, unknown>;

  expect(report.quick).toBe(true);
  expect(Object.keys(report)).toEqual(['quick', 'machine', ...Object.keys(FIGURES)]);
  for (const [section, figures] of Object.entries(FIGURES)) {
    // The history section needs Chromium: without it, run by hand, it says so instead (under
    // CI the bench fails without it).
    const skipped = at(report[section], 'skipped');
    if (typeof skipped === 'string' && !process.env.CI) {
      console.warn(`bench section ${section} skipped: ${skipped}`);
      continue;
    }
    for (const figure of figures) {
      const value = at(report[section], figure);
      expect(Number.isFinite(value), `${section}.${figure} is a number, not ${JSON.stringify(value)}`).toBe(true);
    }
  }
  expect(nulls(report), 'figures that are not numbers (NaN, Infinity)').toEqual([]);

  expect(at(report, 'memory.readingSubscriberGotEveryEvent')).toBe(true);
  expect(at(report, 'agents.agentPool.everyTick')).toBe(true);
  expect(at(report, 'agents.bareYogaGraphqlWsNodePty.everyTick')).toBe(true);
  if (at(report, 'history.skipped') === undefined) expect(at(report, 'history.afterScrollingUp.held')).toBeLessThanOrEqual(1000);
}, 300_000);
