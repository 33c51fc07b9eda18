// The dashboard's browser notifications and tab title, in a real browser (Debian's Chromium)
// against the real server: it asks for leave to notify only from a click; while it is in the
// background it notifies of a story that starts waiting for a person or ends (never of what
// it read at load, nor while it is in front); and its title counts the stories that wait.
// The agent is test/fixtures/fake-acp-agent.mjs, asking before its edit: its prompt is its
// script. The page's notifications are seen through a spy on window.Notification: each one
// still goes to the real constructor, and the spy records whether Chromium showed it.
//
// "In the background" is what a test can make of a headless Chromium: its pages stay
// visible whatever is in front, but with Playwright's focus emulation off, a page loses the
// focus (document.hasFocus()) to a page opened after it and gets it back with bringToFront.
import { fileURLToPath } from 'node:url';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { launchBrowser } from '../support/browser.js';
import { holdAgentsQuery } from '../support/dashboard.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { tempDir } from '../support/temp.js';

const FAKE_ACP_AGENT = fileURLToPath(new URL('../fixtures/fake-acp-agent.mjs', import.meta.url));

/** agent-pool.toml whose one profile is the fake ACP agent, asking before its edits; a run ends with its turn. */
function acpConfig(): string {
  return [
    '[agent]',
    'kind = "acp"',
    'command = "node"',
    `args = [${JSON.stringify(FAKE_ACP_AGENT)}]`,
    'permission_mode = "default"',
    `env = { FAKE_ACP_STATE = ${JSON.stringify(tempDir('fake-acp-state-'))} }`,
    '',
    '[pool]',
    'stop_grace_seconds = 2',
    '',
  ].join('\n');
}

/** A notification the page constructed, as the spy saw it. */
interface Seen {
  title: string;
  body: string;
  tag: string;
  /** Whether Chromium fired its `show` event. */
  shown: boolean;
  /** Whether Chromium fired its `error` event. */
  failed: boolean;
}

/** What the spy keeps on the page's window. */
interface Spy {
  notifications: Seen[];
  /** The Notification objects, in the same order, for a click. */
  objects: Notification[];
  /** How many times the page called Notification.requestPermission. */
  permissionRequests: number;
}

/**
 * Wraps the page's window.Notification, before its scripts run, in a subclass that records
 * each notification and its `show` or `error` event, and counts the permission requests;
 * the real constructor and requestPermission still do the work.
 */
function spyOnNotifications(): void {
  const Real = window.Notification;
  const spy: Spy = { notifications: [], objects: [], permissionRequests: 0 };
  (window as unknown as { notificationSpy: Spy }).notificationSpy = spy;
  const Spied = class extends Real {
    constructor(title: string, options?: NotificationOptions) {
      super(title, options);
      const seen: Seen = { title, body: options?.body ?? '', tag: options?.tag ?? '', shown: false, failed: false };
      spy.notifications.push(seen);
      spy.objects.push(this);
      this.addEventListener('show', () => (seen.shown = true));
      this.addEventListener('error', () => (seen.failed = true));
    }
  };
  Object.defineProperty(Spied, 'requestPermission', {
    value: (...args: Parameters<typeof Notification.requestPermission>) => {
      spy.permissionRequests++;
      return Real.requestPermission(...args);
    },
  });
  window.Notification = Spied;
}

const spied = (page: Page) => page.evaluate(() => (window as unknown as { notificationSpy: Spy }).notificationSpy.notifications);
const permissionRequests = (page: Page) =>
  page.evaluate(() => (window as unknown as { notificationSpy: Spy }).notificationSpy.permissionRequests);
const enableButton = (page: Page) => page.getByRole('button', { name: 'Enable notifications' });
const connection = (page: Page) => page.getByRole('status', { name: 'Connection' });

/** A context of its own (`notifications` granted or not) whose page has the spy and reports its errors. */
async function spiedPage(browser: Browser, server: TestServer, granted: boolean): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  if (granted) await context.grantPermissions(['notifications'], { origin: server.server.origin });
  const page = await context.newPage();
  page.on('pageerror', (error) => console.error(`page error: ${error.stack}`));
  await page.addInitScript(spyOnNotifications);
  return { context, page };
}

/** Starts a story whose agent asks to write a file, and waits until it waits for the answer. */
async function startAsking(server: TestServer, storyId: string, title?: string): Promise<void> {
  const prompt = ['write out.txt hello', 'say I wrote out.txt.'].join('\n');
  const started = await server.request(
    'mutation ($storyId: ID!, $prompt: String, $title: String) { startAgent(storyId: $storyId, prompt: $prompt, title: $title) { status } }',
    { storyId, prompt, title },
  );
  expect(started.errors).toBeUndefined();
  await expect.poll(() => server.pool.get(storyId)!.waitingFor, { timeout: 30_000 }).toBe('APPROVAL');
}

/** Allows the story's pending edit over the API, and waits until its run completed. */
async function allow(server: TestServer, storyId: string): Promise<void> {
  const { requestId } = server.pool.get(storyId)!.pendingApprovals[0]!;
  const answered = await server.request(
    'mutation ($storyId: ID!, $requestId: ID!) { respondToApproval(storyId: $storyId, requestId: $requestId, allow: true) { status } }',
    { storyId, requestId },
  );
  expect(answered.errors).toBeUndefined();
  await expect.poll(() => server.pool.get(storyId)!.status, { timeout: 30_000 }).toBe('COMPLETED');
}

describe('the dashboard’s notifications and tab title', () => {
  it('asks for leave to notify only when the person clicks "Enable notifications", and then hides the button', async (context) => {
    const browser = await launchBrowser(context);
    const server = await startTestServer({ toml: acpConfig() });
    const { page } = await spiedPage(browser, server, false);
    await page.goto(`${server.server.origin}/?token=${server.token}`);
    await connection(page).getByText('Live').waitFor();

    await enableButton(page).waitFor();
    expect(await page.evaluate(() => Notification.permission)).toBe('default');
    expect(await permissionRequests(page)).toBe(0);
    await enableButton(page).click();
    expect(await permissionRequests(page)).toBe(1);
    // Headless Chromium answers the prompt itself (it blocks): the button goes with the answer.
    await enableButton(page).waitFor({ state: 'hidden' });
    expect(await page.evaluate(() => Notification.permission)).toBe('denied');
    expect(await permissionRequests(page)).toBe(1);
  });

  it('notifies in the background of a story that starts waiting or ends, not of what it read at load nor in front, and counts the waiting stories in the title', async (context) => {
    const browser = await launchBrowser(context);
    const server = await startTestServer({ toml: acpConfig() });
    // S-1 waits before the page opens: the page reads that at load.
    await startAsking(server, 'S-1', 'Fix the login');
    const { context: browserContext, page } = await spiedPage(browser, server, true);

    // The answer of the agents query is held until the page is in the background; every
    // later message of the socket waits behind it, in order.
    const agentsQuery = await holdAgentsQuery(page);
    await page.goto(`${server.server.origin}/?token=${server.token}`);
    await expect.poll(() => agentsQuery.held()).toBe(true);
    expect(await page.title()).toBe('agent-pool');
    // Leave was given: nothing to ask.
    expect(await enableButton(page).count()).toBe(0);

    // Into the background: Playwright's emulated focus off (after the load: a navigation
    // turns it on again), a page opened after this one takes the focus.
    const cdp = await browserContext.newCDPSession(page);
    await cdp.send('Emulation.setFocusEmulationEnabled', { enabled: false });
    const other = await browserContext.newPage();
    await expect.poll(() => page.evaluate(() => document.hasFocus())).toBe(false);
    agentsQuery.release();
    await connection(page).getByText('Live').waitFor();
    await expect.poll(() => page.title()).toBe('(1) agent-pool');

    // In front, a story that starts waiting is on the page: no notification, the title counts it.
    await page.bringToFront();
    expect(await page.evaluate(() => document.hasFocus())).toBe(true);
    await startAsking(server, 'S-2');
    await expect.poll(() => page.title()).toBe('(2) agent-pool');

    // In the background again: S-1's wait ends and it completes, S-3 starts waiting.
    await other.bringToFront();
    await expect.poll(() => page.evaluate(() => document.hasFocus())).toBe(false);
    await allow(server, 'S-1');
    await expect.poll(() => page.title()).toBe('(1) agent-pool');
    await startAsking(server, 'S-3', 'Add the retries');
    await expect.poll(() => page.title()).toBe('(2) agent-pool');
    await expect.poll(() => spied(page)).toEqual([
      { title: 'S-1 completed', body: 'Fix the login', tag: 'story:S-1', shown: true, failed: false },
      { title: 'S-3 needs approval', body: 'Add the retries', tag: 'story:S-3', shown: true, failed: false },
    ]);

    // Both answered: each ends with a notification (S-3's replaces its approval's, by tag), and the title has no count.
    await allow(server, 'S-2');
    await allow(server, 'S-3');
    await expect.poll(() => page.title()).toBe('agent-pool');
    await expect.poll(async () => (await spied(page)).map((seen) => `${seen.title} ${seen.tag} ${seen.shown}`).sort()).toEqual([
      'S-1 completed story:S-1 true',
      'S-2 completed story:S-2 true',
      'S-3 completed story:S-3 true',
      'S-3 needs approval story:S-3 true',
    ]);

    // A click on a notification opens its story.
    expect(new URL(page.url()).pathname).toBe('/');
    await page.evaluate(() => {
      const spy = (window as unknown as { notificationSpy: Spy }).notificationSpy;
      spy.objects[spy.notifications.findIndex((seen) => seen.title === 'S-3 needs approval')]!.dispatchEvent(new Event('click'));
    });
    await expect.poll(() => new URL(page.url()).pathname).toBe('/stories/S-3');
    await expect.poll(() => page.getByRole('heading', { level: 1 }).innerText()).toContain('Add the retries');
  });
});
