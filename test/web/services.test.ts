// A story's services from its page, in a real browser (Debian's Chromium) against the real
// server: the Services region starts a small dev server (test/fixtures/dev-server.mjs) in
// the story's worktree, links to it on its port, shows its output as it comes, stops it,
// and says why a start was refused; a project without services shows no such region.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { portInUse } from '../../src/pool/story-services.js';
import { launchBrowser } from '../support/browser.js';
import { newPage, openDashboard, snap } from '../support/dashboard.js';
import { isAlive } from '../support/events.js';
import { FAKE_AGENT } from '../support/fake-agent.js';
import { leftovers } from '../support/no-leftover-processes.js';
import { startTestServer, type TestServer } from '../support/server.js';

const DEV_SERVER = fileURLToPath(new URL('../fixtures/dev-server.mjs', import.meta.url));

/** A range of `count` ports on which nothing listens now, away from the ones tests and the system pick. */
async function freeRange(count: number): Promise<string> {
  for (;;) {
    const first = 20_000 + Math.floor(Math.random() * 30_000);
    const ports = Array.from({ length: count }, (_, index) => first + index);
    if (!(await Promise.all(ports.map(portInUse))).some(Boolean)) return `${first}-${first + count - 1}`;
  }
}

/** agent-pool.toml with the fake agent and `[services.web]`, the dev server, READY on its "ready on" line. */
async function servicesToml(service = 'web'): Promise<string> {
  return [
    '[agent]',
    `command = ${JSON.stringify(FAKE_AGENT)}`,
    '[pool]',
    'stop_grace_seconds = 1',
    '[services]',
    `ports = "${await freeRange(4)}"`,
    `[services.${service}]`,
    `command = ${JSON.stringify(`node ${DEV_SERVER}`)}`,
    'ready = "ready on"',
  ].join('\n');
}

/** Starts a story over the API ("result": the fake agent completes at once) and waits until its run has COMPLETED. */
async function finishedStory(server: TestServer, storyId: string): Promise<string> {
  const response = await server.request('mutation ($s: ID!) { startAgent(storyId: $s, prompt: "result", title: "Serve the site") { status } }', { s: storyId });
  expect(response.errors).toBeUndefined();
  await expect.poll(() => server.pool.get(storyId)?.status).toBe('COMPLETED');
  return server.pool.get(storyId)!.worktreePath!;
}

/** The story's service as the API tells it. */
async function serviceOf(server: TestServer, storyId: string): Promise<{ status: string; port: number; pid: number | null }> {
  const response = await server.request<{ agent: { services: Array<{ status: string; port: number; pid: number | null }> } }>(
    'query ($s: ID!) { agent(storyId: $s) { services { status port pid } } }',
    { s: storyId },
  );
  expect(response.errors).toBeUndefined();
  return response.data!.agent.services[0]!;
}

const services = (page: Page) => page.getByRole('region', { name: 'Services' });

describe('a story\'s services on its page', () => {
  it('starts the story\'s dev server, links to it on its port, shows its output live, and stops it', async (context) => {
    const browser = await launchBrowser(context);
    const server = await startTestServer({ toml: await servicesToml() });
    const worktree = await finishedStory(server, 'S-1');
    writeFileSync(path.join(worktree, 'index.html'), '<h1>The page of S-1</h1>\n');
    const { port } = await serviceOf(server, 'S-1');

    // As openDashboard, with the messages the page sends on its socket recorded.
    const { page, requests } = await newPage(browser);
    const sent: string[] = [];
    page.on('websocket', (socket) => socket.on('framesent', (frame) => sent.push(String(frame.payload))));
    await page.goto(`${server.server.origin}/stories/S-1?token=${server.token}`);
    await page.getByRole('status', { name: 'Connection' }).getByText('Live').waitFor();
    const region = services(page);
    const heading = region.getByRole('heading', { name: /^web/ });
    await expect.poll(() => heading.innerText()).toMatch(/^web\s+STOPPED$/);
    // Named apart from the agent's own Stop: exactly one button is "Stop".
    expect(await page.getByRole('button', { name: 'Stop', exact: true }).count()).toBe(1);
    const link = region.getByRole('link');
    expect(await link.getAttribute('href')).toBe(`http://127.0.0.1:${port}/`);
    expect(await link.getAttribute('target')).toBe('_blank');
    expect(await link.getAttribute('rel')).toBe('noopener noreferrer');

    await region.getByRole('button', { name: 'Start service web' }).click();
    await expect.poll(() => heading.innerText()).toMatch(/^web\s+READY$/);
    const running = await serviceOf(server, 'S-1');
    expect(running).toMatchObject({ status: 'READY', port });
    const log = region.getByRole('log', { name: 'Output of web' });
    await expect.poll(() => log.innerText()).toContain(`ready on http://127.0.0.1:${port}/`);
    expect(await log.innerText()).toMatch(/^\[agent-pool\] started on port \d+: node /);

    // The link opens the story's dev server, which serves the story's worktree.
    const [opened] = await Promise.all([page.context().waitForEvent('page'), link.click()]);
    await expect.poll(() => opened.locator('body').innerText()).toContain('The page of S-1');
    expect(opened.url()).toBe(`http://127.0.0.1:${port}/`);
    await opened.close();
    const fetched = await fetch(`http://127.0.0.1:${port}/`);
    expect(await fetched.text()).toBe('<h1>The page of S-1</h1>\n');
    expect(fetched.headers.get('x-cwd')).toBe(worktree);

    // Its output comes as it is printed: the line of a request made now shows up on the open page.
    await expect.poll(() => log.innerText()).toMatch(/^GET \/$/m);
    expect(await log.innerText()).not.toContain('GET /from-the-test');
    expect((await fetch(`http://127.0.0.1:${port}/from-the-test`)).status).toBe(404);
    await expect.poll(() => log.innerText()).toContain('GET /from-the-test');
    await snap(page, 'dashboard-services');
    // The list of stories reads each service's name, status and port, never its output: only this region does.
    const agentsQuery = sent.find((message) => message.includes('query Agents'));
    expect(agentsQuery).toContain('services');
    expect(agentsQuery).not.toContain('output');
    expect(sent.filter((message) => message.includes('serviceOutput'))).toHaveLength(1);

    // A busy server: the page keeps its newest 500 lines, and follows the end.
    for (let request = 0; request < 600; request += 50) {
      await Promise.all(Array.from({ length: 50 }, (_, index) => fetch(`http://127.0.0.1:${port}/n/${request + index}`).then((response) => response.text())));
    }
    await expect.poll(async () => (await log.innerText()).split('\n').length).toBe(500);
    const lines = (await log.innerText()).split('\n');
    expect(lines.filter((line) => line.startsWith('GET /n/'))).toHaveLength(500);
    expect(new Set(lines).size).toBe(500);
    expect(await log.evaluate((element) => element.scrollHeight - element.scrollTop - element.clientHeight)).toBeLessThan(8);

    await region.getByRole('button', { name: 'Stop service web' }).click();
    await expect.poll(() => heading.innerText()).toMatch(/^web\s+STOPPED$/);
    await expect.poll(() => log.innerText()).toMatch(/\[agent-pool\] stopped$/);
    expect(isAlive(running.pid!)).toBe(false);
    expect(await portInUse(port)).toBe(false);
    expect(await region.getByRole('button', { name: 'Start service web' }).isEnabled()).toBe(true);
    // Everything the page loaded came from agent-pool (the dev server's page opened in a tab of its own).
    expect(requests.filter((url) => !url.startsWith(server.server.origin))).toEqual([]);

    // agent-pool.toml renamed the service meanwhile: a start is refused, said in words, with the server's message kept.
    writeFileSync(path.join(server.root, 'agent-pool.toml'), await servicesToml('site'));
    await region.getByRole('button', { name: 'Start service web' }).click();
    const alert = region.getByRole('alert');
    await alert.waitFor();
    expect(await alert.locator('p').innerText()).toBe('agent-pool.toml has no service web any more (its services are now site): reload the page.');
    await alert.getByText("The server's message").click();
    expect(await alert.locator('pre').innerText()).toBe('UNKNOWN_SERVICE: no service is named "web"; the services are site');
    expect(leftovers().filter((line) => line.includes('dev-server'))).toEqual([]);
  });

  it('shows no Services region for a project whose agent-pool.toml configures none', async (context) => {
    const browser = await launchBrowser(context);
    const server = await startTestServer();
    await finishedStory(server, 'S-1');
    const { page } = await openDashboard(browser, server, '/stories/S-1');
    await page.getByRole('region', { name: 'Runs' }).getByText('COMPLETED').waitFor();
    expect(await services(page).count()).toBe(0);
  });
});
