// Per-story services ([services.NAME]): a small dev server (test/fixtures/dev-server.mjs)
// run from each story's worktree on a port of its own, through the API: READY on its line or
// at its port's first connection, stop and start on the same port, failures, and nothing of
// a service left after a stop, an archive, the server's stop, or a crash and restart.
import { readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, onTestFinished } from 'vitest';
import { portInUse } from '../../src/pool/story-services.js';
import { runCli, serverUrl } from '../support/cli.js';
import { isAlive } from '../support/events.js';
import { FAKE_AGENT } from '../support/fake-agent.js';
import { leftovers } from '../support/no-leftover-processes.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { tempDir, tempRepo } from '../support/temp.js';

const DEV_SERVER = fileURLToPath(new URL('../fixtures/dev-server.mjs', import.meta.url));

interface Service {
  name: string;
  status: string;
  port: number;
  pid: number | null;
  output: string[];
}

const SERVICES = '{ name status port pid output(last: 20) }';
const START_SERVICE = `mutation ($s: ID!, $n: String!) { startService(storyId: $s, name: $n) { services ${SERVICES} } }`;
const STOP_SERVICE = `mutation ($s: ID!, $n: String!) { stopService(storyId: $s, name: $n) { services ${SERVICES} } }`;

const code = (result: { errors?: Array<{ extensions?: Record<string, unknown> }> }) => result.errors?.[0]?.extensions?.code;

/** A range of `count` ports on which nothing listens now, away from the ones tests and the system pick. */
async function freeRange(count: number): Promise<string> {
  for (;;) {
    const first = 20_000 + Math.floor(Math.random() * 30_000);
    const ports = Array.from({ length: count }, (_, index) => first + index);
    if (!(await Promise.all(ports.map(portInUse))).some(Boolean)) return `${first}-${first + count - 1}`;
  }
}

/** agent-pool.toml with the fake agent and these services. */
async function servicesToml(services: Record<string, string[]>, agent: string[] = [], portCount = 8): Promise<string> {
  return [
    '[agent]',
    `command = ${JSON.stringify(FAKE_AGENT)}`,
    ...agent,
    '[pool]',
    'stop_grace_seconds = 1',
    '[services]',
    `ports = "${await freeRange(portCount)}"`,
    ...Object.entries(services).flatMap(([name, lines]) => [`[services.${name}]`, ...lines]),
  ].join('\n');
}

const web = (extra = '', ready = true): string[] => [`command = "node ${DEV_SERVER} ${extra}"`, ...(ready ? ['ready = "ready on"'] : [])];

async function services(server: TestServer, storyId: string): Promise<Service[]> {
  const result = await server.request<{ agent: { services: Service[] } }>(`query ($s: ID!) { agent(storyId: $s) { services ${SERVICES} } }`, { s: storyId });
  expect(result.errors).toBeUndefined();
  return result.data!.agent.services;
}

async function serviceOf(server: TestServer, storyId: string, name: string): Promise<Service> {
  return (await services(server, storyId)).find((service) => service.name === name)!;
}

/** Waits for a service to reach `status` (its changes are pushed as agent updates). */
async function until(server: TestServer, storyId: string, name: string, status: string): Promise<Service> {
  await expect.poll(async () => (await serviceOf(server, storyId, name)).status, { timeout: 20_000, interval: 50 }).toBe(status);
  return serviceOf(server, storyId, name);
}

/** Starts a story whose agent records its argv and environment in `record`, and waits for it to complete. */
async function finishedStory(server: TestServer, storyId: string, record = path.join(tempDir(), 'agent.json')): Promise<string> {
  const result = await server.request('mutation ($s: ID!, $p: String) { startAgent(storyId: $s, prompt: $p) { status } }', { s: storyId, p: `record ${record}; result` });
  expect(result.errors).toBeUndefined();
  await expect.poll(() => server.pool.get(storyId)?.status, { timeout: 20_000 }).toBe('COMPLETED');
  return server.pool.get(storyId)!.worktreePath!;
}

describe('per-story services', () => {
  it('runs each story\'s service from its worktree on a port of its own, READY on its line; setup and the agent know the port', async () => {
    const server = await startTestServer({
      toml: await servicesToml({ web: web('--colour'), api: web('--quiet', false) }, [
        'args = ["--web={{port:web}}"]',
        '[worktree]',
        'setup = ["echo {{port:web}} > setup-port.txt"]',
      ]),
    });
    const record = path.join(tempDir(), 'agent.json');
    const first = await finishedStory(server, 'S-1', record);
    const second = await finishedStory(server, 'S-2');
    const [web1, api1] = await services(server, 'S-1');
    const [web2, api2] = await services(server, 'S-2');
    expect(web1).toMatchObject({ name: 'web', status: 'STOPPED', pid: null, output: [] });
    expect(api1!.name).toBe('api');
    expect(new Set([web1!.port, api1!.port, web2!.port, api2!.port]).size).toBe(4);

    // Setup and the agent got the story's port: in {{port:web}} and AGENT_POOL_PORT_WEB.
    expect(readFileSync(path.join(first, 'setup-port.txt'), 'utf8').trim()).toBe(String(web1!.port));
    const agent = JSON.parse(readFileSync(record, 'utf8')) as { argv: string[]; env: Record<string, string> };
    expect(agent.argv).toContain(`--web=${web1!.port}`);
    expect(agent.env).toMatchObject({ AGENT_POOL_PORT_WEB: String(web1!.port), AGENT_POOL_PORT_API: String(api1!.port) });

    writeFileSync(path.join(first, 'index.html'), 'the page of S-1\n');
    writeFileSync(path.join(second, 'index.html'), 'the page of S-2\n');
    const started = await server.request<{ startService: { services: Service[] } }>(START_SERVICE, { s: 'S-1', n: 'web' });
    expect(started.errors).toBeUndefined();
    expect(['STARTING', 'READY']).toContain(started.data!.startService.services[0]!.status);
    expect((await server.request(START_SERVICE, { s: 'S-2', n: 'web' })).errors).toBeUndefined();
    const ready1 = await until(server, 'S-1', 'web', 'READY');
    const ready2 = await until(server, 'S-2', 'web', 'READY');

    // Side by side: each answers from its own story's worktree.
    const page1 = await fetch(`http://127.0.0.1:${ready1.port}/`);
    expect(await page1.text()).toBe('the page of S-1\n');
    expect(page1.headers.get('x-cwd')).toBe(first);
    expect(await (await fetch(`http://127.0.0.1:${ready2.port}/`)).text()).toBe('the page of S-2\n');
    expect(ready1.pid).toEqual(expect.any(Number));
    // Its output is its own, colour codes removed; the story's events hold none of it.
    const output = (await serviceOf(server, 'S-1', 'web')).output;
    expect(output).toContain(`  ➜ ready on http://127.0.0.1:${ready1.port}/`);
    expect(output).toContain('GET /');
    expect(output[0]).toMatch(/^\[agent-pool\] started on port \d+: node /);
    const events = await server.pool.eventPage('S-1', 0, 1000);
    expect(JSON.stringify(events)).not.toContain('GET /');
  });

  it('stops a service with every process of it, starts it again on the same port; one without ready is READY at its first connection', async () => {
    const server = await startTestServer({ toml: await servicesToml({ web: web('--grandchild'), api: web('--quiet --ready-after 300', false) }) });
    await finishedStory(server, 'S-1');
    await server.request(START_SERVICE, { s: 'S-1', n: 'web' });
    const running = await until(server, 'S-1', 'web', 'READY');
    const grandchild = Number(/^grandchild (\d+)$/m.exec(running.output.join('\n'))![1]);
    expect(isAlive(grandchild)).toBe(true);

    const stopped = await server.request<{ stopService: { services: Service[] } }>(STOP_SERVICE, { s: 'S-1', n: 'web' });
    expect(stopped.data!.stopService.services[0]).toMatchObject({ status: 'STOPPED', pid: null, port: running.port });
    expect(isAlive(running.pid!)).toBe(false);
    expect(isAlive(grandchild)).toBe(false);
    expect(await portInUse(running.port)).toBe(false);
    // A second stop changes nothing.
    expect((await server.request(STOP_SERVICE, { s: 'S-1', n: 'web' })).errors).toBeUndefined();

    await server.request(START_SERVICE, { s: 'S-1', n: 'web' });
    const again = await until(server, 'S-1', 'web', 'READY');
    expect(again.port).toBe(running.port);
    expect(again.pid).not.toBe(running.pid);
    // A second start of a running service leaves it as it is.
    await server.request(START_SERVICE, { s: 'S-1', n: 'web' });
    expect((await serviceOf(server, 'S-1', 'web')).pid).toBe(again.pid);

    await server.request(START_SERVICE, { s: 'S-1', n: 'api' });
    const api = await until(server, 'S-1', 'api', 'READY');
    expect((await fetch(`http://127.0.0.1:${api.port}/nothing`)).status).toBe(404);
    await server.request(STOP_SERVICE, { s: 'S-1', n: 'api' });
    await server.request(STOP_SERVICE, { s: 'S-1', n: 'web' });
    expect(leftovers().filter((line) => line.includes('dev-server') || line.includes('sleep 600'))).toEqual([]);
  });

  it('a service that exits on its own is FAILED with its exit code; a port in use is FAILED, and free again it starts', async () => {
    const server = await startTestServer({ toml: await servicesToml({ web: web(), crashing: web('--exit-after 100', false) }) });
    await finishedStory(server, 'S-1');
    await server.request(START_SERVICE, { s: 'S-1', n: 'crashing' });
    const crashed = await until(server, 'S-1', 'crashing', 'FAILED');
    expect(crashed.output.slice(-2)).toEqual(['fatal: the dev server gave up', '[agent-pool] exited with code 3']);
    expect(crashed.pid).toBeNull();

    // Something else has the story's port: FAILED, saying so; the service never ran.
    const port = (await serviceOf(server, 'S-1', 'web')).port;
    const squatter = createServer();
    await new Promise<void>((resolve) => squatter.listen(port, '127.0.0.1', resolve));
    const refused = await server.request<{ startService: { services: Service[] } }>(START_SERVICE, { s: 'S-1', n: 'web' });
    expect(refused.data!.startService.services[0]).toMatchObject({ status: 'FAILED', pid: null });
    expect((await serviceOf(server, 'S-1', 'web')).output.at(-1)).toBe(`[agent-pool] port ${port} in use`);
    await new Promise<void>((resolve) => squatter.close(() => resolve()));
    // The honest twin: the port free, the same start works.
    await server.request(START_SERVICE, { s: 'S-1', n: 'web' });
    expect((await until(server, 'S-1', 'web', 'READY')).port).toBe(port);
  });

  it('refuses an unknown service, listing the configured ones, and a story without a worktree', async () => {
    const server = await startTestServer({ toml: await servicesToml({ web: web(), api: web() }) });
    const unknown = await server.request(START_SERVICE, { s: 'S-1', n: 'web' });
    expect(code(unknown)).toBe('AGENT_NOT_FOUND');
    await finishedStory(server, 'S-1');
    for (const mutation of [START_SERVICE, STOP_SERVICE]) {
      const refused = await server.request(mutation, { s: 'S-1', n: 'db' });
      expect(code(refused)).toBe('UNKNOWN_SERVICE');
      expect(refused.errors![0]!.message).toBe('no service is named "db"; the services are web, api');
      expect(refused.errors![0]!.extensions).toMatchObject({ services: ['web', 'api'] });
    }
    expect(code(await server.request(START_SERVICE, { s: 'S-1/../x', n: 'web' }))).toBe('INVALID_STORY_ID');
    expect((await server.request('mutation { archiveStory(storyId: "S-1") { archived } }')).errors).toBeUndefined();
    const archived = await server.request(START_SERVICE, { s: 'S-1', n: 'web' });
    expect(code(archived)).toBe('INVALID_ARGUMENT');
    expect(archived.errors![0]!.message).toContain('has no worktree to run a service in');
  });

  it('a used-up range of ports: the story is listed without one, startService is NO_FREE_PORT, and only a start that names the port is refused', async () => {
    const server = await startTestServer({ toml: await servicesToml({ web: web() }, [], 2) });
    await finishedStory(server, 'S-1');
    await finishedStory(server, 'S-2');
    await finishedStory(server, 'S-3');
    // The list of every story still answers: S-3's service has no port, and says why.
    const listed = await server.request<{ agents: Array<{ storyId: string; services: Service[] }> }>(`{ agents { storyId services ${SERVICES} } }`);
    expect(listed.errors).toBeUndefined();
    const [first, second, third] = listed.data!.agents.map((agent) => agent.services[0]!);
    expect(first!.port).not.toBe(second!.port);
    expect(third).toMatchObject({ status: 'FAILED', port: 0, pid: null });
    expect(third!.output[0]).toMatch(/^\[agent-pool\] no port is left in \[services\] ports \(\d+-\d+\) for it: widen the range/);
    const refused = await server.request(START_SERVICE, { s: 'S-3', n: 'web' });
    expect(code(refused)).toBe('NO_FREE_PORT');
    // A start of the story that does not name the port goes on; one that does is refused, and changes nothing.
    await finishedStory(server, 'S-3');
    writeFileSync(path.join(server.root, 'agent-pool.toml'), (await servicesToml({ web: web() }, ['args = ["--web={{port:web}}"]'], 2)).replace(/ports = "[^"]*"/, `ports = "${Math.min(first!.port, second!.port)}-${Math.max(first!.port, second!.port)}"`));
    const named = await server.request('mutation { startAgent(storyId: "S-3", prompt: "result") { status } }');
    expect(code(named)).toBe('NO_FREE_PORT');
    expect(server.pool.get('S-3')!.runs).toHaveLength(2);

    // An archived story gives its ports back: S-3 gets S-1's, and S-1 lists its service on none.
    expect((await server.request('mutation { archiveStory(storyId: "S-1") { archived } }')).errors).toBeUndefined();
    expect((await server.request('mutation { startAgent(storyId: "S-3", prompt: "result") { status } }')).errors).toBeUndefined();
    await expect.poll(() => server.pool.get('S-3')?.status).toBe('COMPLETED');
    expect((await serviceOf(server, 'S-3', 'web')).port).toBe(first!.port);
    expect(await serviceOf(server, 'S-1', 'web')).toMatchObject({ status: 'STOPPED', port: 0 });
  });

  it('archiving a story and the server\'s stop end every process of its services', async () => {
    const server = await startTestServer({ toml: await servicesToml({ web: web('--grandchild') }) });
    const worktree1 = await finishedStory(server, 'S-1');
    await finishedStory(server, 'S-2');
    await server.request(START_SERVICE, { s: 'S-1', n: 'web' });
    await server.request(START_SERVICE, { s: 'S-2', n: 'web' });
    const first = await until(server, 'S-1', 'web', 'READY');
    const second = await until(server, 'S-2', 'web', 'READY');
    const grandchildOf = (service: Service) => Number(/^grandchild (\d+)$/m.exec(service.output.join('\n'))![1]);

    // A start that races the archive either is refused or is ended by it: nothing runs in the worktree that went.
    const [archived, racing] = await Promise.all([
      server.request('mutation { archiveStory(storyId: "S-1") { archived } }'),
      (async () => {
        await server.request(STOP_SERVICE, { s: 'S-1', n: 'web' });
        return server.request(START_SERVICE, { s: 'S-1', n: 'web' });
      })(),
    ]);
    expect(archived.errors).toBeUndefined();
    expect([undefined, 'INVALID_ARGUMENT']).toContain(code(racing));
    expect([first.pid!, grandchildOf(first)].filter(isAlive)).toEqual([]);
    expect((await serviceOf(server, 'S-1', 'web')).status).toBe('STOPPED');
    // No process of ours is left in S-1's worktree (gone: its path reads "… (deleted)").
    const inWorktree = leftovers().filter((line) => {
      try {
        return readlinkSync(`/proc/${line.split(' ')[0]}/cwd`).startsWith(worktree1);
      } catch {
        return false;
      }
    });
    expect(inWorktree).toEqual([]);
    expect(isAlive(second.pid!)).toBe(true);

    await server.pool.dispose();
    expect([second.pid!, grandchildOf(second)].filter(isAlive)).toEqual([]);
    expect(leftovers().filter((line) => line.includes('dev-server') || line.includes('sleep 600'))).toEqual([]);
  });

  it('streams a service\'s output live, its newest lines first', async () => {
    const server = await startTestServer({ toml: await servicesToml({ web: web() }) });
    await finishedStory(server, 'S-1');
    await server.request(START_SERVICE, { s: 'S-1', n: 'web' });
    const { port } = await until(server, 'S-1', 'web', 'READY');
    const lines = server.wsClient().iterate({ query: 'subscription { serviceOutput(storyId: "S-1", name: "web", last: 1) }' });
    const first = await lines.next();
    expect((first.value as { data: { serviceOutput: string } }).data.serviceOutput).toBe(`ready on http://127.0.0.1:${port}/`);
    await fetch(`http://127.0.0.1:${port}/live`);
    const next = await lines.next();
    expect((next.value as { data: { serviceOutput: string } }).data.serviceOutput).toBe('GET /live');
    await lines.return?.();
    const unknown = server.wsClient().iterate({ query: 'subscription { serviceOutput(storyId: "S-1", name: "db") }' });
    const refused = await unknown.next();
    expect(refused.value).toMatchObject({ errors: [{ extensions: { code: 'UNKNOWN_SERVICE' } }] });
  });
});

describe('services across a crash', () => {
  it('a restart after kill -9 ends the service the crash left running, and it starts again on its port', async () => {
    const root = tempRepo();
    writeFileSync(path.join(root, 'agent-pool.toml'), await servicesToml({ web: web('--grandchild') }));
    const first = runCli(['serve', '--port', '0'], { cwd: root });
    onTestFinished(() => {
      first.child.kill('SIGKILL');
    });
    const url = await serverUrl(first);
    const request = async (query: string, variables: Record<string, unknown> = {}) => {
      const response = await fetch(`${url.origin}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${url.searchParams.get('token')}` },
        body: JSON.stringify({ query, variables }),
      });
      return (await response.json()) as { data?: { agent?: { status: string; services: Service[] } }; errors?: unknown[] };
    };
    await request('mutation { startAgent(storyId: "S-1", prompt: "result") { status } }');
    await expect.poll(async () => (await request(`{ agent(storyId: "S-1") { status services ${SERVICES} } }`)).data?.agent?.status, { timeout: 20_000 }).toBe('COMPLETED');
    await request(START_SERVICE, { s: 'S-1', n: 'web' });
    let running: Service | undefined;
    await expect
      .poll(async () => {
        running = (await request(`{ agent(storyId: "S-1") { status services ${SERVICES} } }`)).data!.agent!.services[0];
        return running?.status;
      }, { timeout: 20_000 })
      .toBe('READY');
    const grandchild = Number(/^grandchild (\d+)$/m.exec(running!.output.join('\n'))![1]);

    first.child.kill('SIGKILL');
    await first.exited;
    // The crash left the service and its grandchild running.
    expect([running!.pid!, grandchild].filter(isAlive)).toHaveLength(2);

    const second = runCli(['serve', '--port', '0'], { cwd: root });
    onTestFinished(() => {
      second.child.kill('SIGKILL');
    });
    const again = await serverUrl(second);
    expect([running!.pid!, grandchild].filter(isAlive)).toEqual([]);
    const after = await fetch(`${again.origin}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${again.searchParams.get('token')}` },
      body: JSON.stringify({ query: `{ agent(storyId: "S-1") { services ${SERVICES} } }` }),
    });
    const [service] = ((await after.json()) as { data: { agent: { services: Service[] } } }).data.agent.services;
    expect(service).toMatchObject({ status: 'FAILED', pid: null, port: running!.port });
    expect(service!.output.at(-1)).toBe('[agent-pool] server stopped while the service was running');
    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
  });
});
