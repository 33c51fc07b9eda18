// agent-pool as users install it: `npm pack` the working tree, `npm install -g` the tarball
// into a temporary prefix (compiling node-pty and better-sqlite3, without devDependencies),
// then run the installed `agent-pool` command in a new git repository.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, onTestFinished } from 'vitest';
import { serverUrl, startProcess, wsClientOf } from '../support/cli.js';
import { tempRepo } from '../support/temp.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MANIFEST = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
const IN_CI = Boolean(process.env.CI) && process.env.CI !== 'false' && process.env.CI !== '0';

/** Packages that only building and testing agent-pool need: none may be installed with it. */
const DEV_ONLY = [
  'vite',
  'vitest',
  'typescript',
  'react',
  'react-dom',
  '@vitejs/plugin-react',
  'playwright-core',
  '@anthropic-ai/claude-code',
];

/** npm errors that mean the registry could not be reached for something not in the npm cache. */
const NETWORK_ERROR =
  /npm error code (ENOTCACHED|ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|EHOSTUNREACH)\b/;

interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
  seconds: number;
}

/** Runs a command to its end (in a process group of its own, killed if the test finishes first). */
async function run(command: string, args: string[], options: { cwd: string; env?: NodeJS.ProcessEnv }): Promise<Finished> {
  const started = performance.now();
  const running = startProcess(command, args, options);
  const code = await running.exited;
  return { code, stdout: running.stdout(), stderr: running.stderr(), seconds: (performance.now() - started) / 1000 };
}

/** The environment without what `npm test` adds for its own project (its prefix, package, lifecycle). */
function userEnvironment(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  const projectOnly = /^npm_config_(prefix|global_prefix|local_prefix|allow_scripts|call|global)$/i;
  for (const [key, value] of Object.entries(process.env)) {
    if (/^npm_(?!config_)/i.test(key) || projectOnly.test(key) || key === 'INIT_CWD' || key === 'AGENT_POOL_TOKEN') continue;
    env[key] = value;
  }
  return env;
}

/** What npm printed, for a failure message. */
function npmOutput(result: Finished): string {
  return `exit ${result.code}\n--- stdout\n${result.stdout}\n--- stderr\n${result.stderr.slice(-20_000)}`;
}

async function graphql(origin: string, token: string, query: string): Promise<Record<string, unknown>> {
  const response = await fetch(`${origin}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query }),
  });
  const body = (await response.json()) as { data?: Record<string, unknown>; errors?: unknown };
  expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
  expect(response.status).toBe(200);
  return body.data!;
}

interface AgentState {
  status: string;
  exitCode: number | null;
  error: string | null;
  events: { __typename: string; text?: string }[];
}

describe('the packed package', () => {
  it(
    'installs globally from its tarball without devDependencies, and its agent-pool command serves a repository',
    { timeout: 600_000 },
    async (context) => {
      const startedAt = performance.now();
      for (const built of ['dist/cli/main.js', 'dist/web/index.html']) {
        expect(existsSync(path.join(ROOT, built)), `${built} is missing: run \`npm run build\` first`).toBe(true);
      }

      // Its own temp dir rather than tempDir(): a dynamic skip does not run onTestFinished.
      const work = mkdtempSync(path.join(tmpdir(), 'agent-pool-install-'));
      const removeWork = () => rmSync(work, { recursive: true, force: true });
      onTestFinished(removeWork);
      const env = userEnvironment();

      // --ignore-scripts: `prepare` would rebuild dist/ under the other test files running now.
      const pack = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], { cwd: ROOT, env });
      expect(pack.code, npmOutput(pack)).toBe(0);
      const [packed] = JSON.parse(pack.stdout) as { filename: string }[];
      const tarball = path.join(work, packed!.filename);
      expect(packed!.filename).toBe(`agent-pool-${MANIFEST.version}.tgz`);

      const listing = await run('tar', ['-tzf', tarball], { cwd: work });
      expect(listing.code, listing.stderr).toBe(0);
      const files = listing.stdout.split('\n').filter(Boolean).map((line) => line.replace(/^package\//, ''));
      expect(files).toEqual(
        expect.arrayContaining([
          'dist/cli/main.js',
          'dist/web/index.html',
          'bin/agent-pool.js',
          'package.json',
          'README.md',
          'LICENSE',
          'CHANGELOG.md',
          'docs/api.md',
        ]),
      );
      // Source maps would point at sources the package does not ship.
      expect(files.filter((file) => file.endsWith('.map'))).toEqual([]);
      expect(files.some((file) => /^dist\/web\/assets\/.+\.js$/.test(file))).toBe(true);
      const unwanted = /^(src|test|web\/src|node_modules|\.agent-pool|dist-bench)(\/|$)|(^|\/)node_modules\//;
      expect(files.filter((file) => unwanted.test(file))).toEqual([]);

      // As a user installs it (README): the tarball's own `prepare` is listed too, since npm
      // counts it for a non-registry package; naming it by its full path is the only form npm
      // matches. --strict-allow-scripts makes a script these names do not cover an error.
      // --offline: from the npm cache only, which test/install/fill-npm-cache.sh filled (.ci/run
      // runs it), so that the test's traffic stays on this machine. npm_config_build_from_source: better-sqlite3's
      // prebuild-install compiles rather than download a binary from GitHub. --loglevel info
      // lists each script npm runs.
      const prefix = path.join(work, 'prefix');
      // npm 11.19 --strict-allow-scripts stats <prefix>/lib before creating it.
      mkdirSync(path.join(prefix, 'lib'), { recursive: true });
      // CFLAGS/CXXFLAGS=-O0 (the compiler takes the last -O it is given): this checks that the
      // package installs and runs, not how fast its compiled parts are, and unoptimised they
      // compile in a fraction of the time (better-sqlite3 builds all of SQLite).
      const installEnv: NodeJS.ProcessEnv = { ...env, npm_config_build_from_source: 'true', CFLAGS: '-O0', CXXFLAGS: '-O0' };
      // node-gyp would download Node's headers from nodejs.org; use the running Node's own.
      const nodeHome = path.dirname(path.dirname(process.execPath));
      if (!installEnv.npm_config_nodedir && existsSync(path.join(nodeHome, 'include', 'node', 'common.gypi'))) {
        installEnv.npm_config_nodedir = nodeHome;
      }
      const install = await run(
        'npm',
        [
          'install',
          '--global',
          '--prefix',
          prefix,
          `--allow-scripts=${tarball},better-sqlite3,node-pty`,
          '--strict-allow-scripts',
          '--offline',
          '--no-audit',
          '--no-fund',
          '--loglevel',
          'info',
          tarball,
        ],
        { cwd: work, env: installEnv },
      );
      if (install.code !== 0 && !IN_CI && NETWORK_ERROR.test(install.stderr)) {
        removeWork();
        const code = NETWORK_ERROR.exec(install.stderr)![1];
        context.skip(
          `npm's cache lacks what installing agent-pool needs (${code}): run test/install/fill-npm-cache.sh first (CI does; it never skips)`,
        );
      }
      expect(install.code, npmOutput(install)).toBe(0);
      expect(install.stderr, 'npm warned about install scripts').not.toMatch(/install-scripts/);
      // The graphql-tools versions agent-pool pins (its dependencies, not only its overrides,
      // which a global install ignores) keep every package installed fit for Node 20.
      expect(install.stderr, 'a package installed does not support this Node').not.toMatch(/EBADENGINE/);
      // The dependencies' install scripts ran (node-pty and better-sqlite3 compiled), and the
      // package's own `prepare` (a build that needs the devDependencies) did not.
      expect(install.stderr).toMatch(/npm info run better-sqlite3@\S+ install /);
      expect(install.stderr).toMatch(/npm info run node-pty@\S+ install /);
      expect(install.stderr).not.toMatch(/npm info run agent-pool@/);

      const installed = path.join(prefix, 'lib', 'node_modules', 'agent-pool');
      expect(DEV_ONLY.filter((name) => existsSync(path.join(installed, 'node_modules', name)))).toEqual([]);
      for (const addon of ['better-sqlite3/build/Release/better_sqlite3.node', 'node-pty/build/Release/pty.node']) {
        expect(existsSync(path.join(installed, 'node_modules', addon)), `${addon} was not built`).toBe(true);
      }

      const command = path.join(prefix, 'bin', 'agent-pool');
      const runEnv: NodeJS.ProcessEnv = { ...env, PATH: `${path.dirname(command)}${path.delimiter}${env.PATH ?? ''}` };
      const version = await run('agent-pool', ['--version'], { cwd: work, env: runEnv });
      expect(version, 'agent-pool --version').toMatchObject({ code: 0, stdout: `${MANIFEST.version}\n` });

      // A text agent: `sh -c SCRIPT NAME PROMPT`, the prompt is $1.
      const repo = tempRepo({
        files: {
          'README.md': '# a project\n',
          'agent-pool.toml': [
            '[agent]',
            'kind = "text"',
            'command = "sh"',
            `args = ["-c", 'echo "hello from the agent: $1"', "agent"]`,
            '',
          ].join('\n'),
        },
      });
      const server = startProcess('agent-pool', ['serve', '--port', '0'], { cwd: repo, env: runEnv });
      const url = await serverUrl(server);
      const token = url.searchParams.get('token')!;

      const page = await fetch(`${url.origin}/`);
      expect(page.status).toBe(200);
      expect(page.headers.get('content-type')).toMatch(/^text\/html/);
      const html = await page.text();
      const script = /<script[^>]+src="([^"]+\.js)"/.exec(html)?.[1];
      expect(script, html).toBeDefined();
      const asset = await fetch(new URL(script!, url.origin));
      expect(asset.status).toBe(200);
      expect(asset.headers.get('content-type')).toMatch(/javascript/);
      expect((await asset.text()).length).toBeGreaterThan(1000);

      const started = await graphql(
        url.origin,
        token,
        'mutation { startAgent(storyId: "S-1", prompt: "say hello") { storyId } }',
      );
      expect(started).toEqual({ startAgent: { storyId: 'S-1' } });
      // The run's end, heard over graphql-ws.
      const events = wsClientOf(url).iterate<{ agentEvents: { __typename: string } }>({
        query: 'subscription { agentEvents(storyId: "S-1") { __typename } }',
      });
      for await (const event of events) {
        if (['AgentDoneEvent', 'AgentErrorEvent'].includes(event.data?.agentEvents.__typename ?? '')) break;
      }
      const data = await graphql(
        url.origin,
        token,
        '{ agent(storyId: "S-1") { status exitCode error events { __typename ... on AgentOutputEvent { text } } } }',
      );
      const agent = data.agent as AgentState;
      expect(agent).toMatchObject({ status: 'COMPLETED', exitCode: 0, error: null });
      expect(agent.events.filter((event) => event.__typename === 'AgentOutputEvent').map((event) => event.text)).toContain(
        'hello from the agent: say hello',
      );

      server.child.kill('SIGTERM');
      expect(await server.exited, server.stderr()).toBe(0);

      const whole = (performance.now() - startedAt) / 1000;
      console.log(
        `packed install: pack ${pack.seconds.toFixed(1)} s, install ${install.seconds.toFixed(1)} s, whole test ${whole.toFixed(1)} s`,
      );
    },
  );
});
