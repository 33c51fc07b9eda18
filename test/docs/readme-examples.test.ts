// The README's examples run as printed: its quick-start agent-pool.toml in a new repository,
// `agent-pool serve` started there through the CLI, then each curl command and the
// WebSocket script, in a shell, after the README's own line that sets $AGENT_POOL_URL and
// $TOKEN. The one change a reader makes too: the port, since the test serves on port 0.
import { readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { type CliProcess, runCli, serverUrl, startProcess } from '../support/cli.js';
import { tempDir, tempRepo } from '../support/temp.js';
import { examplesOf } from './markdown.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const README = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
/** The address the README's examples use; the test's server has another port. */
const PRINTED_ORIGIN = 'http://127.0.0.1:4747';

/** The environment a reader's shell has: nothing of agent-pool's own beforehand. */
function readerEnvironment(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const name of ['AGENT_POOL_TOKEN', 'AGENT_POOL_URL', 'TOKEN']) delete env[name];
  return env;
}

/** Runs `script` with `sh -c` in `cwd`, as a reader's shell would, in a process group of its own. */
function shell(script: string, cwd: string): CliProcess {
  return startProcess('sh', ['-c', script], { cwd, env: readerEnvironment() });
}

/** Runs `script` to its end and returns its stdout; a non-zero exit fails with its stderr. */
async function run(script: string, cwd: string): Promise<string> {
  const sh = shell(script, cwd);
  const code = await sh.exited;
  expect(code, `${script}\nstderr: ${sh.stderr()}`).toBe(0);
  return sh.stdout();
}

/** Resolves once `sh`'s stdout contains `text`; fails if it exits first. */
async function untilPrinted(sh: CliProcess, text: string): Promise<void> {
  while (!sh.stdout().includes(text)) {
    const ended = await Promise.race([
      new Promise<false>((resolve) => sh.child.stdout!.once('data', () => resolve(false))),
      sh.exited.then(() => true),
    ]);
    if (ended && !sh.stdout().includes(text)) {
      throw new Error(`ended before it printed ${text}: stdout ${sh.stdout()}\nstderr ${sh.stderr()}`);
    }
  }
}

/** The indented lines the README prints right after the example block `name` (its output). */
function printedOutputAfter(name: string): string[] {
  const after = README.slice(README.indexOf(`<!-- example: ${name} -->`));
  const block = /\n```\n\n((?: {4}.*\n)+)/.exec(after);
  if (!block) throw new Error(`the README prints no output after the example ${name}`);
  return block[1]!.split('\n').filter((line) => line !== '').map((line) => line.slice(4));
}

it('runs the quick start and the API examples of the README as printed', async () => {
  const examples = examplesOf(README);
  expect([...examples.keys()].sort()).toEqual(['agent-pool.toml', 'agents', 'env', 'events', 'start', 'watch', 'watch.mjs']);
  const toml = examples.get('agent-pool.toml')!;
  expect(toml).toContain('kind = "text"');

  // The quick start: agent-pool.toml at the root of a repository, `agent-pool serve` there.
  const repo = tempRepo();
  writeFileSync(path.join(repo, 'agent-pool.toml'), toml);
  const server = runCli(['serve', '--port', '0'], { cwd: repo, env: readerEnvironment() });
  const origin = (await serverUrl(server)).origin;

  const printedEnv = examples.get('env')!;
  expect(printedEnv).toContain(PRINTED_ORIGIN);
  const env = printedEnv.replaceAll(PRINTED_ORIGIN, origin);
  const withEnv = (name: string): string => `${env}${examples.get(name)!}`;

  // startAgent with a title: the story, PENDING, exactly as the README prints it.
  const started = await run(withEnv('start'), repo);
  expect(JSON.parse(started)).toEqual({ data: { startAgent: { storyId: 'hello-2', title: 'Say hello', status: 'PENDING' } } });
  expect(started.trim()).toBe(printedOutputAfter('start')[0]);

  // The SSE subscription: every event of the run, in order, up to its AgentDoneEvent. It stays
  // open for the story's next runs, so it is ended here as a reader ends it, once done.
  const events = shell(withEnv('events'), repo);
  await untilPrinted(events, '"AgentDoneEvent"');
  process.kill(-events.child.pid!, 'SIGINT');
  await events.exited;
  const lines = events.stdout().split('\n');
  const received = lines
    .filter((line) => line.startsWith('data: '))
    .map((line) => (JSON.parse(line.slice('data: '.length)) as { data: { agentEvents: Record<string, unknown> } }).data.agentEvents);
  expect(received).toEqual([
    { seq: 1, __typename: 'AgentStatusEvent', status: 'PENDING' },
    { seq: 2, __typename: 'AgentStatusEvent', status: 'RUNNING' },
    { seq: 3, __typename: 'AgentOutputEvent', text: 'Working on: Say hello' },
    { seq: 4, __typename: 'AgentOutputEvent', text: 'Wrote hello.txt' },
    { seq: 5, __typename: 'AgentStatusEvent', status: 'COMPLETED' },
    { seq: 6, __typename: 'AgentDoneEvent', exitCode: 0 },
  ]);
  // What the README shows of the stream (with "…" for lines left out) is what came.
  for (const line of printedOutputAfter('events').filter((printed) => printed !== '…')) expect(lines).toContain(line);

  // The query of every story: the run's title, prompt, end and work.
  const agents = JSON.parse(await run(withEnv('agents'), repo)) as { data: { agents: unknown[] } };
  expect(agents).toEqual({
    data: {
      agents: [
        { storyId: 'hello-2', title: 'Say hello', prompt: 'Say hello', status: 'COMPLETED', branch: 'story/hello-2', changes: { filesChanged: 1 } },
      ],
    },
  });

  // The WebSocket script, in a directory of its own whose node_modules has graphql-ws and ws
  // (this repository's, where `npm install graphql graphql-ws ws` would put its own).
  const scriptDir = tempDir('agent-pool-readme-ws-');
  symlinkSync(path.join(ROOT, 'node_modules'), path.join(scriptDir, 'node_modules'), 'dir');
  writeFileSync(path.join(scriptDir, 'watch.mjs'), examples.get('watch.mjs')!);
  const watch = `${env}cd '${scriptDir}'\n${examples.get('watch')!}`;
  expect(examples.get('watch')).toContain('node watch.mjs hello-3');
  const firstRun = [
    '1 AgentStatusEvent PENDING',
    '2 AgentStatusEvent RUNNING',
    '3 AgentOutputEvent Working on: Say hello',
    '4 AgentOutputEvent Wrote hello.txt',
    '5 AgentStatusEvent COMPLETED',
    '6 AgentDoneEvent',
  ];
  expect(printedOutputAfter('watch')).toEqual(firstRun);
  const outputOf = (stdout: string): string[] => stdout.trim().split('\n').map((line) => line.trim());
  expect(outputOf(await run(watch, repo))).toEqual(firstRun);
  // Run again, it starts a second run and prints only that run's events.
  expect(outputOf(await run(watch, repo))).toEqual(
    firstRun.map((line) => line.replace(/^\d+/, (seq) => String(Number(seq) + 6))),
  );

  // Ctrl-C on the server: it stops and exits 0.
  server.child.kill('SIGINT');
  expect(await server.exited).toBe(0);
});
