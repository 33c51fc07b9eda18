// The dashboard at `/` in a real browser (Debian's Chromium) against the real server: a
// person starts, watches, stops and steers agents with nothing but the page, by the
// accessible names the contract gives its controls.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { writeFile } from '../fixtures/fake-anthropic.js';
import { launchBrowser } from '../support/browser.js';
import { claudeServer } from '../support/claude.js';
import { FAKE_AGENT } from '../support/fake-agent.js';
import { leftovers } from '../support/no-leftover-processes.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { tcpProxy } from '../support/tcp-proxy.js';

/** Where each run leaves its screenshots (ignored by git); `npm run screenshots` refreshes the README's. */
export const SCREENSHOT_DIR = process.env.AGENT_POOL_SCREENSHOTS ?? 'test-results/screenshots';

async function snap(page: Page, name: string): Promise<void> {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOT_DIR, `${name}.png`), fullPage: true });
}

/**
 * Opens the address the server prints for the dashboard (at `origin`, the server's own
 * unless the test puts a proxy in front), and records every request the page makes.
 */
async function openDashboard(
  browser: Browser,
  server: TestServer,
  pathname = '/',
  origin = server.server.origin,
): Promise<{ page: Page; requests: string[] }> {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const requests: string[] = [];
  page.on('request', (request) => requests.push(request.url()));
  page.on('pageerror', (error) => console.error(`page error: ${error.stack}`));
  page.on('console', (message) => {
    if (message.type() === 'error' || message.type() === 'warning') console.error(`page console: ${message.text()}`);
  });
  await page.goto(`${origin}${pathname}?token=${server.token}`);
  await page.getByRole('status', { name: 'Connection' }).getByText('Live').waitFor();
  return { page, requests };
}

const row = (page: Page, storyId: string) => page.getByRole('row').filter({ hasText: storyId });
const events = (page: Page) => page.getByRole('region', { name: 'Events' }).getByRole('listitem');
/** The event showing `#<seq>`. */
const eventBySeq = (page: Page, seq: number) => events(page).filter({ has: page.getByText(`#${seq}`, { exact: true }) });
/** The event whose text (not its collapsed raw line) is exactly `text`. */
const eventWithText = (page: Page, text: string) => events(page).filter({ has: page.getByText(text, { exact: true }) });

/** The highest `#seq` the Events list shows now. */
async function lastShownSeq(page: Page): Promise<number> {
  const texts = await events(page).locator('.seq').allInnerTexts();
  return Math.max(0, ...texts.map((text) => Number(text.replace('#', ''))));
}

/**
 * Waits until the virtualised Events list has rendered the items for where it is scrolled
 * now: the items in the page cover the whole visible part of the list. Right after a
 * scroll, the page still holds the items of the old position.
 */
async function waitForItemsInView(page: Page): Promise<void> {
  const list = page.getByRole('region', { name: 'Events' }).getByRole('list');
  await list.evaluate(
    (element) =>
      new Promise<void>((resolve) => {
        const check = (): void => {
          const view = element.getBoundingClientRect();
          const items = [...element.querySelectorAll('[role=listitem]')].map((item) => item.getBoundingClientRect());
          const top = Math.min(...items.map((rect) => rect.top));
          const bottom = Math.max(...items.map((rect) => rect.bottom));
          const atEnd = element.scrollTop + element.clientHeight >= element.scrollHeight - 1;
          if (items.length > 0 && top <= view.top + 1 && (bottom >= view.bottom - 1 || atEnd)) resolve();
          else requestAnimationFrame(check);
        };
        check();
      }),
  );
}

/**
 * Scrolls the Events list from top to bottom and returns every `#seq` it showed, checking
 * on the way that no seq is shown twice at once.
 */
async function scrollThroughEvents(page: Page): Promise<number[]> {
  const list = page.getByRole('region', { name: 'Events' }).getByRole('list');
  const seen = new Set<number>();
  const order: number[] = [];
  await list.evaluate((element) => (element.scrollTop = 0));
  for (;;) {
    await waitForItemsInView(page);
    const texts = await events(page).locator('.seq').allInnerTexts();
    const seqs = texts.map((text) => Number(text.replace('#', '')));
    expect(new Set(seqs).size).toBe(seqs.length);
    for (const seq of seqs) {
      if (!seen.has(seq)) order.push(seq);
      seen.add(seq);
    }
    const atEnd = await list.evaluate((element) => {
      const before = element.scrollTop;
      element.scrollTop += element.clientHeight * 0.8;
      return element.scrollTop === before;
    });
    if (atEnd) return order.sort((a, b) => a - b);
  }
}

describe('the dashboard in a real browser', () => {
  it('starts a story from the form, shows it live to COMPLETED, and opens its events and changes', async (context) => {
    const browser = await launchBrowser(context);
    const server = await startTestServer({
      tables: `[agents.reviewer]\ncommand = ${JSON.stringify(FAKE_AGENT)}`,
    });
    const { page, requests } = await openDashboard(browser, server);
    // The token left the address bar once the page had it.
    expect(new URL(page.url()).search).toBe('');

    await page.getByLabel('Story').fill('S-1');
    await page.getByLabel('Prompt').fill('say starting; run printf "hello\\n" > hello.txt; say wrote hello.txt; tool; tool-result; result');
    await page.getByLabel('Agent').selectOption('reviewer');
    await page.getByRole('button', { name: 'Start' }).click();
    await expect.poll(() => row(page, 'S-1').innerText(), { timeout: 20_000 }).toContain('COMPLETED');
    expect(await row(page, 'S-1').innerText()).toContain('reviewer');
    await snap(page, 'dashboard-list');

    await row(page, 'S-1').click();
    expect(new URL(page.url()).pathname).toBe('/stories/S-1');
    const lastSeq = server.pool.get('S-1')!.lastSeq;
    await eventBySeq(page, lastSeq).waitFor();
    expect(await scrollThroughEvents(page)).toEqual(Array.from({ length: lastSeq }, (_, i) => i + 1));
    await expect.poll(() => eventWithText(page, 'wrote hello.txt').count()).toBe(1);

    const changes = page.getByRole('region', { name: 'Changes' });
    await changes.getByRole('button', { name: /hello\.txt/ }).click();
    await expect.poll(() => changes.getByLabel('Diff of hello.txt').innerText()).toContain('+hello');
    await snap(page, 'dashboard-story');

    // A reload lands on the same story, and the page loaded nothing from elsewhere.
    await page.reload();
    await eventBySeq(page, lastSeq).waitFor();
    const origin = server.server.origin;
    expect(requests.filter((url) => !url.startsWith(origin))).toEqual([]);
  });

  it('stops a slow story from its page, with nothing of it left running', async (context) => {
    const browser = await launchBrowser(context);
    const server = await startTestServer();
    await server.request('mutation { startAgent(storyId: "SLOW-1", prompt: "say working on it; wait") { status } }');
    const { page } = await openDashboard(browser, server, '/stories/SLOW-1');
    await eventWithText(page, 'working on it').waitFor();
    expect(await page.getByRole('heading', { level: 1 }).innerText()).toContain('RUNNING');

    await page.getByRole('button', { name: 'Stop' }).click();
    await expect.poll(() => page.getByRole('heading', { level: 1 }).innerText()).toContain('STOPPED');
    await eventWithText(page, 'stopped by request').waitFor();
    expect(leftovers()).toEqual([]);
    expect(await page.getByRole('button', { name: 'Stop' }).isDisabled()).toBe(true);
  });

  it('keeps a running story\'s Changes current while its events flow', async (context) => {
    const browser = await launchBrowser(context);
    const server = await startTestServer();
    // Thirty seconds of steady events: the story moves on every second while the test runs.
    await server.request('mutation { startAgent(storyId: "BUSY-1", prompt: "ticks 600 20; result") { status } }');
    const { page } = await openDashboard(browser, server, '/stories/BUSY-1');
    const changes = page.getByRole('region', { name: 'Changes' });
    await changes.getByText('No change against the base commit.').waitFor();

    writeFileSync(path.join(server.pool.get('BUSY-1')!.worktreePath!, 'late.txt'), 'written while the agent runs\n');
    await changes.getByRole('button', { name: /late\.txt/ }).waitFor({ timeout: 10_000 });
    expect(server.pool.get('BUSY-1')!.status).toBe('RUNNING');
  });

  it('resumes after a reload and after a dropped connection in the middle of a long run: every #seq once, end to end', async (context) => {
    const browser = await launchBrowser(context);
    const server = await startTestServer();
    const proxy = await tcpProxy(server.server.origin);
    await server.request('mutation { startAgent(storyId: "LONG-1", prompt: "ticks 8000 500; result") { status } }');
    const { page } = await openDashboard(browser, server, '/stories/LONG-1', proxy.origin);
    const connection = page.getByRole('status', { name: 'Connection' });
    // The list follows the end: wait until it has shown #200 or later.
    await expect.poll(() => lastShownSeq(page), { timeout: 20_000 }).toBeGreaterThanOrEqual(200);
    expect(server.pool.get('LONG-1')!.status).toBe('RUNNING');

    await page.reload();
    await connection.getByText('Live').waitFor();
    const beforeDrop = await lastShownSeq(page);
    expect(beforeDrop).toBeGreaterThan(200);

    // The network drops: the page says so, reconnects by itself and goes on from its last seq.
    proxy.drop();
    await connection.getByText('Reconnecting…').waitFor();
    await connection.getByText('Live').waitFor({ timeout: 20_000 });
    expect(server.pool.get('LONG-1')!.status).toBe('RUNNING');
    // The server replayed from the page's last seq, not from the beginning.
    const resumedSeqs = () => [...proxy.sentSinceDrop().matchAll(/"agentEvents":\{"__typename":"\w+","seq":(\d+)/g)].map((match) => Number(match[1]));
    await expect.poll(() => resumedSeqs().length).toBeGreaterThan(0);
    expect(Math.min(...resumedSeqs())).toBeGreaterThan(beforeDrop);

    await expect.poll(() => server.pool.get('LONG-1')!.status, { timeout: 30_000 }).toBe('COMPLETED');
    const lastSeq = server.pool.get('LONG-1')!.lastSeq;
    // Following the end, the list shows the last event once it arrived.
    await eventBySeq(page, lastSeq).waitFor({ timeout: 20_000 });
    await snap(page, 'dashboard-long-run');
    const seqs = await scrollThroughEvents(page);
    expect(seqs).toEqual(Array.from({ length: lastSeq }, (_, i) => i + 1));
    // Virtualised: a few dozen items are in the page, not thousands.
    expect(await events(page).count()).toBeLessThan(100);
  });

  it('shows which story waits for a person, and denies its tool call with a note the model gets', async (context) => {
    const browser = await launchBrowser(context);
    const { api, server } = await claudeServer(
      { agentLines: ['permission_mode = "default"'] },
      { tool: 'Write', input: writeFile('secret.txt', 'do not write me\n') },
      { text: 'Understood, I will not write it.' },
    );
    const { page } = await openDashboard(browser, server);
    await page.getByLabel('Story').fill('ASK-1');
    await page.getByLabel('Prompt').fill('Write secret.txt.');
    await page.getByRole('button', { name: 'Start' }).click();
    await expect.poll(() => row(page, 'ASK-1').innerText(), { timeout: 30_000 }).toContain('Needs approval');
    await snap(page, 'dashboard-waiting');

    await row(page, 'ASK-1').click();
    const approval = page.getByRole('region', { name: 'Approval: Write' });
    await approval.waitFor();
    expect(await approval.innerText()).toContain('secret.txt');
    await approval.getByLabel('Note for the agent').fill('Not this file, please.');
    await snap(page, 'dashboard-approval');
    await approval.getByRole('button', { name: 'Deny' }).click();

    await expect.poll(() => page.getByRole('heading', { level: 1 }).innerText(), { timeout: 30_000 }).toContain('COMPLETED');
    await eventWithText(page, 'denied: Not this file, please.').waitFor();
    await eventWithText(page, 'Understood, I will not write it.').waitFor();
    expect(await page.getByRole('button', { name: 'Allow' }).count()).toBe(0);
    const worktree = server.pool.get('ASK-1')!.worktreePath!;
    expect(existsSync(path.join(worktree, 'secret.txt'))).toBe(false);
    expect(JSON.stringify(api.conversation()[1]!.messages)).toContain('Not this file, please.');
  });

  it('asks for the token when the address has none, and shows no story until it is given', async (context) => {
    const browser = await launchBrowser(context);
    const server = await startTestServer();
    await server.request('mutation { startAgent(storyId: "S-9", prompt: "say hi") { status } }');
    const page = await browser.newPage();
    await page.goto(`${server.server.origin}/`);
    await page.getByLabel('Token').waitFor();
    expect(await page.getByRole('row').count()).toBe(0);

    await page.getByLabel('Token').fill('not-the-token');
    await page.getByRole('button', { name: 'Connect' }).click();
    await page.getByRole('alert').filter({ hasText: 'The server refused that token.' }).waitFor();
    expect(await page.getByRole('row').count()).toBe(0);
    await page.getByLabel('Token').fill(server.token);
    await page.getByRole('button', { name: 'Connect' }).click();
    await row(page, 'S-9').waitFor();
  });

  it('opens an address with a broken percent-encoding (/stories/%E0%A4%A) as a page that says what is wrong, not a blank one', async (context) => {
    const browser = await launchBrowser(context);
    const server = await startTestServer();
    const errors: string[] = [];
    const { page } = await openDashboard(browser, server, '/stories/%E0%A4%A');
    page.on('pageerror', (error) => errors.push(error.message));
    await expect.poll(async () => (await page.locator('body').innerText()).trim().length).toBeGreaterThan(0);
    await page.getByText(/INVALID_STORY_ID|not a valid story id|story id/i).first().waitFor();
    expect(errors).toEqual([]);
  });
});
