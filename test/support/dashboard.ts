// What the dashboard's Chromium tests share: a page that reports its errors, the dashboard
// opened on it once live, screenshots, and a fake agent that follows a script whatever
// prompt a person types.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { type ConfigLines, writeFakeAgentConfig } from './fake-agent.js';
import type { TestServer } from './server.js';

/** Where each run leaves its screenshots (ignored by git); `npm run screenshots` refreshes the docs'. */
export const SCREENSHOT_DIR = process.env.AGENT_POOL_SCREENSHOTS ?? 'test-results/screenshots';

/** Saves a screenshot of the whole page as `<name>.png` in {@link SCREENSHOT_DIR}. */
export async function snap(page: Page, name: string): Promise<void> {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOT_DIR, `${name}.png`), fullPage: true });
}

/** A page at a common desktop size that reports its errors and records every request it makes. */
export async function newPage(browser: Browser): Promise<{ page: Page; requests: string[] }> {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const requests: string[] = [];
  page.on('request', (request) => requests.push(request.url()));
  page.on('pageerror', (error) => console.error(`page error: ${error.stack}`));
  page.on('console', (message) => {
    if (message.type() === 'error' || message.type() === 'warning') console.error(`page console: ${message.text()}`);
  });
  return { page, requests };
}

/**
 * Opens the address the server prints for the dashboard (at `origin`, the server's own
 * unless the test puts a proxy in front) once the page is live, and records every request
 * the page makes.
 */
export async function openDashboard(
  browser: Browser,
  server: TestServer,
  pathname = '/',
  origin = server.server.origin,
): Promise<{ page: Page; requests: string[] }> {
  const { page, requests } = await newPage(browser);
  await page.goto(`${origin}${pathname}?token=${server.token}`);
  await page.getByRole('status', { name: 'Connection' }).getByText('Live').waitFor();
  return { page, requests };
}

/**
 * The fake agent's arguments that make it follow `script` (its directives: `say …`, `wait`,
 * …) whatever prompt it gets: it reads its script after the first `--`, and agent-pool puts
 * a profile's `args` before its own `-- <prompt>`. So a story's prompt can read like the
 * work a person asks for, in the screenshots too, and still choose what the fake does.
 */
export function scriptArgs(script: string): string {
  return `args = ["--", ${JSON.stringify(script)}]`;
}

/**
 * Rewrites the test server's agent-pool.toml (with `lines`) so that the default profile's
 * next runs follow `script`; without one, the fake says the prompt back. The file is read
 * again at every start, so this holds for the starts that follow.
 */
export function scriptNextRuns(server: TestServer, script: string | undefined, lines: ConfigLines = {}): void {
  writeFakeAgentConfig(server.root, { ...lines, agent: script === undefined ? lines.agent : scriptArgs(script) });
}

/**
 * Holds the answer of the page's agents query (the first server message that carries
 * `agentProfiles`) until `release()`; every later message of the socket waits behind it, in
 * order. Set up before the page is opened; `held()` says whether the answer came.
 */
export function holdAgentsQuery(page: Page): Promise<{ held: () => boolean; release: () => void }> {
  return holdServerMessage(page, '"agentProfiles"');
}

/**
 * Holds the first message from the server over the page's socket that contains `marker`
 * until `release()`; every later message of the socket waits behind it, in order. Set up
 * before the page is opened; `held()` says whether that message came.
 */
export async function holdServerMessage(page: Page, marker: string): Promise<{ held: () => boolean; release: () => void }> {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let held = false;
  await page.routeWebSocket(/\/graphql$/, (ws) => {
    const toServer = ws.connectToServer();
    let queue = Promise.resolve();
    toServer.onMessage((message) => {
      queue = queue.then(async () => {
        if (!held && typeof message === 'string' && message.includes(marker)) {
          held = true;
          await released;
        }
        ws.send(message);
      });
    });
  });
  return { held: () => held, release };
}
