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
  const { page, requests } = await newPage(browser);
  await page.goto(`${origin}${pathname}?token=${server.token}`);
  await page.getByRole('status', { name: 'Connection' }).getByText('Live').waitFor();
  return { page, requests };
}

/** A page at a common desktop size that reports its errors and records every request it makes. */
async function newPage(browser: Browser): Promise<{ page: Page; requests: string[] }> {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const requests: string[] = [];
  page.on('request', (request) => requests.push(request.url()));
  page.on('pageerror', (error) => console.error(`page error: ${error.stack}`));
  page.on('console', (message) => {
    if (message.type() === 'error' || message.type() === 'warning') console.error(`page console: ${message.text()}`);
  });
  return { page, requests };
}

/** The story's events as the API lists them: the seqs of its raw lines (AgentJsonEvent) and of the others. */
async function storyEvents(server: TestServer, storyId: string): Promise<{ all: number[]; raw: number[]; others: number[] }> {
  const response = await server.request<{ agent: { events: Array<{ __typename: string; seq: number }> } }>(
    'query ($storyId: ID!) { agent(storyId: $storyId) { events(first: 1000) { __typename seq } } }',
    { storyId },
  );
  const events = response.data!.agent.events;
  return {
    all: events.map((event) => event.seq),
    raw: events.filter((event) => event.__typename === 'AgentJsonEvent').map((event) => event.seq),
    others: events.filter((event) => event.__typename !== 'AgentJsonEvent').map((event) => event.seq),
  };
}

/** Starts a story over the API and waits until its run ends with `status`. */
async function startStory(
  server: TestServer,
  variables: { storyId: string; prompt?: string; title?: string; agent?: string },
  status: string | undefined = 'COMPLETED',
): Promise<void> {
  const response = await server.request(
    'mutation ($storyId: ID!, $prompt: String, $title: String, $agent: String) { startAgent(storyId: $storyId, prompt: $prompt, title: $title, agent: $agent) { status } }',
    variables,
  );
  expect(response.errors).toBeUndefined();
  if (status) await expect.poll(() => server.pool.get(variables.storyId)!.status, { timeout: 20_000 }).toBe(status);
}

const heading = (page: Page) => page.getByRole('heading', { level: 1 });
const connectionBadge = (page: Page) => page.getByRole('status', { name: 'Connection' });
const runRows = (page: Page) => page.getByRole('region', { name: 'Runs' }).locator('tbody').getByRole('row');
const storyRows = (page: Page) => page.getByRole('region', { name: 'Stories' }).locator('tbody').getByRole('row');
const rawToggle = (page: Page) => page.getByRole('region', { name: 'Events' }).getByRole('checkbox', { name: /^Show raw lines/ });
/** The terms of the facts list of a story's page (Agent, Branch, Cost, Session, Error). */
const factTerms = (page: Page) => page.locator('dl.facts dt').allInnerTexts();

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
  it('starts a story from the form with a title and opens it, shows it live to COMPLETED, and opens its events and changes', async (context) => {
    const browser = await launchBrowser(context);
    const server = await startTestServer({
      tables: `[agents.reviewer]\ncommand = ${JSON.stringify(FAKE_AGENT)}`,
    });
    const { page, requests } = await openDashboard(browser, server);
    // The token left the address bar once the page had it.
    expect(new URL(page.url()).search).toBe('');

    await page.getByLabel('Story').fill('S-1');
    await page.getByLabel('Title').fill('Write hello.txt');
    await page.getByLabel('Prompt').fill('say starting; run printf "hello\\n" > hello.txt; say wrote hello.txt; tool; tool-result; result');
    await page.getByLabel('Agent').selectOption('reviewer');
    await page.getByRole('button', { name: 'Start' }).click();
    // Start opens the story it started.
    await expect.poll(() => new URL(page.url()).pathname).toBe('/stories/S-1');
    await expect.poll(() => heading(page).innerText(), { timeout: 20_000 }).toContain('COMPLETED');
    expect(await heading(page).innerText()).toContain('Write hello.txt');

    const lastSeq = server.pool.get('S-1')!.lastSeq;
    await eventBySeq(page, lastSeq).waitFor();
    await expect.poll(() => eventWithText(page, 'wrote hello.txt').count()).toBe(1);
    // An agent with a session and a cost says so; Send resumes that session.
    expect(await factTerms(page)).toEqual(['Agent', 'Branch', 'Cost', 'Session']);
    expect(await page.getByRole('button', { name: 'Send' }).count()).toBe(1);
    expect(await page.getByRole('button', { name: 'Run again' }).count()).toBe(0);

    const changes = page.getByRole('region', { name: 'Changes' });
    await changes.getByRole('button', { name: /hello\.txt/ }).click();
    await expect.poll(() => changes.getByLabel('Diff of hello.txt').innerText()).toContain('+hello');
    await snap(page, 'dashboard-story');

    // A reload lands on the same story, and the page loaded nothing from elsewhere.
    await page.reload();
    await eventBySeq(page, lastSeq).waitFor();
    const origin = server.server.origin;
    expect(requests.filter((url) => !url.startsWith(origin))).toEqual([]);

    await page.getByRole('link', { name: '← All stories' }).click();
    expect(await row(page, 'S-1').innerText()).toContain('COMPLETED');
    expect(await row(page, 'S-1').innerText()).toContain('reviewer');
    expect(await row(page, 'S-1').innerText()).toContain('Write hello.txt');
  });

  it('hides the raw lines by default and shows them, with their count, in one click', async (context) => {
    const browser = await launchBrowser(context);
    const server = await startTestServer();
    await startStory(server, { storyId: 'RAW-1', prompt: 'say one; tool; tool-result; say two; result' });
    const { raw, others, all } = await storyEvents(server, 'RAW-1');
    expect(raw.length).toBeGreaterThan(3);
    const { page } = await openDashboard(browser, server, '/stories/RAW-1');
    await eventBySeq(page, others.at(-1)!).waitFor();

    const toggle = rawToggle(page);
    expect(await toggle.isChecked()).toBe(false);
    await page.getByRole('checkbox', { name: `Show raw lines (${raw.length})`, exact: true }).waitFor();
    expect(await scrollThroughEvents(page)).toEqual(others);
    expect(await events(page).filter({ hasText: 'raw line:' }).count()).toBe(0);

    await toggle.click();
    expect(await scrollThroughEvents(page)).toEqual(all);
    expect(await eventBySeq(page, raw[0]!).innerText()).toContain('raw line: system / init');
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
    // Its ticks are raw lines, hidden until asked for; the choice holds for the tab, reloads too.
    await rawToggle(page).click();
    // The list follows the end: wait until it has shown #200 or later.
    await expect.poll(() => lastShownSeq(page), { timeout: 20_000 }).toBeGreaterThanOrEqual(200);
    expect(server.pool.get('LONG-1')!.status).toBe('RUNNING');

    await page.reload();
    await connection.getByText('Live').waitFor();
    expect(await rawToggle(page).isChecked()).toBe(true);
    await expect.poll(() => lastShownSeq(page)).toBeGreaterThan(200);
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
    const approval = page.getByRole('region', { name: 'Approval: Write' });
    await approval.waitFor({ timeout: 30_000 });
    await page.getByRole('link', { name: '← All stories' }).click();
    await expect.poll(() => row(page, 'ASK-1').innerText(), { timeout: 30_000 }).toContain('Needs approval');
    await snap(page, 'dashboard-waiting');

    await row(page, 'ASK-1').click();
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

  it('says Loading… until the first answer of the agents query, never "0 stories", and Live only once it is there', async (context) => {
    const browser = await launchBrowser(context);
    const server = await startTestServer();
    await startStory(server, { storyId: 'S-1', prompt: 'say hi' });
    const { page } = await newPage(browser);
    // Every text the header shows, from the page's first render on.
    await page.addInitScript(() => {
      const seen: string[] = [];
      (globalThis as unknown as { headerTexts: string[] }).headerTexts = seen;
      new MutationObserver(() => {
        const text = document.querySelector('header')?.textContent;
        if (text && seen.at(-1) !== text) seen.push(text);
      }).observe(document, { subtree: true, childList: true, characterData: true });
    });
    // The answer of the agents query is held until the test lets it through; every later
    // message of the socket waits behind it, in order.
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let held = false;
    await page.routeWebSocket(/\/graphql$/, (ws) => {
      const server = ws.connectToServer();
      let queue = Promise.resolve();
      server.onMessage((message) => {
        queue = queue.then(async () => {
          if (!held && typeof message === 'string' && message.includes('"agentProfiles"')) {
            held = true;
            await released;
          }
          ws.send(message);
        });
      });
    });
    await page.goto(`${server.server.origin}/?token=${server.token}`);
    await expect.poll(() => held).toBe(true);
    const header = page.getByRole('banner');
    expect(await header.innerText()).toContain('Loading…');
    expect(await connectionBadge(page).innerText()).toBe('Loading…');
    expect(await page.getByRole('region', { name: 'Stories' }).innerText()).toContain('Loading…');
    expect(await page.getByRole('row').count()).toBe(0);

    release();
    await connectionBadge(page).getByText('Live').waitFor();
    await row(page, 'S-1').waitFor();
    expect(await header.innerText()).toContain('1 story · 0 running · 1 run');
    const seen = await page.evaluate(() => (globalThis as unknown as { headerTexts: string[] }).headerTexts);
    expect(seen.length).toBeGreaterThan(1);
    expect(seen.filter((text) => /\b0 stories/.test(text))).toEqual([]);
    // "Live" only ever showed once the stories were there.
    expect(seen.filter((text) => text.includes('Live') && !text.includes('1 story'))).toEqual([]);
  });

  it('tells stories apart: title and first prompt line on the list, the whole prompt on the page, each run\'s prompt in its table', async (context) => {
    const browser = await launchBrowser(context);
    const server = await startTestServer({ agent: 'prompt = "say the configured prompt of {{story_id}}"' });
    const longWord = `https://example.com/${'very-long-path-'.repeat(30)}`;
    const prompt = `Make the upload client retry.\nThree times at most, with backoff.\n\nSee ${longWord}`;
    await startStory(server, { storyId: 'UP-7', title: 'Retries for uploads', prompt });
    await startStory(server, { storyId: 'CONF-1' });
    await startStory(server, { storyId: 'BARE-1', prompt: 'say hello' });
    const { page } = await openDashboard(browser, server);

    // The list: a title (and the id beside it), else the id; the prompt's first line only.
    const titled = await row(page, 'UP-7').getByRole('cell').first().innerText();
    expect(titled).toContain('Retries for uploads');
    expect(titled).toContain('Make the upload client retry.');
    expect(titled).not.toContain('Three times');
    expect(await row(page, 'UP-7').getByRole('link').innerText()).toBe('Retries for uploads');
    expect(await row(page, 'BARE-1').getByRole('link').innerText()).toBe('BARE-1');
    expect(await row(page, 'BARE-1').getByRole('cell').first().innerText()).toContain('say hello');
    // The configured prompt, as the agent got it.
    expect(await row(page, 'CONF-1').getByRole('cell').first().innerText()).toContain('say the configured prompt of CONF-1');

    // The story's page: its title, and its prompt whole, line breaks kept, long words wrapped.
    await row(page, 'UP-7').click();
    await expect.poll(() => heading(page).innerText()).toContain('Retries for uploads');
    const promptRegion = page.getByRole('region', { name: 'Prompt' });
    expect(await promptRegion.locator('.prompt-text').innerText()).toBe(prompt);
    expect(await promptRegion.locator('.prompt-text').evaluate((element) => element.scrollWidth <= element.clientWidth)).toBe(true);

    // A follow-up resumes the session; the runs table shows what each run was asked.
    await page.getByLabel('Message').fill('say and now the tests');
    await page.getByRole('button', { name: 'Send' }).click();
    await expect.poll(() => runRows(page).count(), { timeout: 20_000 }).toBe(2);
    await expect.poll(() => runRows(page).nth(1).innerText(), { timeout: 20_000 }).toContain('COMPLETED');
    expect(await runRows(page).nth(1).innerText()).toContain('say and now the tests');
    const first = runRows(page).nth(0);
    expect(await first.innerText()).toContain('Make the upload client retry.');
    await first.locator('summary').click();
    expect(await first.locator('.prompt-text').innerText()).toBe(prompt);

    await page.getByRole('link', { name: '← All stories' }).click();
    await row(page, 'CONF-1').click();
    await expect.poll(() => runRows(page).count()).toBe(1);
    expect(await runRows(page).nth(0).innerText()).toContain('say the configured prompt of CONF-1');
    expect(await page.getByRole('region', { name: 'Prompt' }).innerText()).toContain('say the configured prompt of CONF-1');
  });

  it('offers Run again, not a resumed Send, on a finished story that has no session, and starts its run 2 with the typed prompt', async (context) => {
    const browser = await launchBrowser(context);
    // A plain-text agent: it reports no session and no cost.
    const server = await startTestServer({
      tables: `[agents.plain]\nkind = "text"\ncommand = ${JSON.stringify(FAKE_AGENT)}`,
    });
    await startStory(server, { storyId: 'PLAIN-1', agent: 'plain', prompt: 'first try' });
    expect(server.pool.get('PLAIN-1')!.sessionId).toBeUndefined();
    const { page } = await openDashboard(browser, server);
    // No cost: an empty cell, not a dash.
    expect(await row(page, 'PLAIN-1').getByRole('cell').nth(5).innerText()).toBe('');

    await row(page, 'PLAIN-1').click();
    await expect.poll(() => heading(page).innerText()).toContain('COMPLETED');
    // Only the facts that apply: no "Session –", no "Cost –".
    expect(await factTerms(page)).toEqual(['Agent', 'Branch']);
    expect(await page.getByRole('button', { name: 'Send' }).count()).toBe(0);
    await page.getByLabel('Message').fill('second try');
    await page.getByRole('button', { name: 'Run again' }).click();

    await expect.poll(() => runRows(page).count(), { timeout: 20_000 }).toBe(2);
    await expect.poll(() => runRows(page).nth(1).innerText(), { timeout: 20_000 }).toContain('COMPLETED');
    expect(await runRows(page).nth(1).innerText()).toContain('second try');
    expect(await page.getByLabel('Message').inputValue()).toBe('');
    expect(await page.getByRole('alert').count()).toBe(0);
    expect(await page.locator('body').innerText()).not.toMatch(/resume|NO_SESSION/i);
    const runs = server.pool.get('PLAIN-1')!.runs;
    expect(runs.map((run) => [run.number, run.agent, run.prompt, run.status])).toEqual([
      [1, 'plain', 'first try', 'COMPLETED'],
      [2, 'plain', 'second try', 'COMPLETED'],
    ]);
  });

  it('filters the list by status, with the count of each', async (context) => {
    const browser = await launchBrowser(context);
    const server = await startTestServer();
    await startStory(server, {
      storyId: 'PROJ-101',
      title: 'Retry failed uploads',
      prompt: 'Make the upload client retry failed requests.\nThree times at most, with exponential backoff.',
    });
    await startStory(server, { storyId: 'PROJ-102', title: 'Fix the flaky date test', prompt: 'say looking; result-error the tests still fail; exit 1' }, 'FAILED');
    await startStory(server, { storyId: 'PROJ-103', title: 'Upgrade the linter', prompt: 'say upgrading; wait' }, 'RUNNING');
    await server.request('mutation { stopAgent(storyId: "PROJ-103") { status } }');
    await startStory(server, { storyId: 'PROJ-104', title: 'Dark mode for the settings page', prompt: 'say working on it; wait' }, 'RUNNING');
    await startStory(server, { storyId: 'PROJ-105', prompt: 'Write the changelog entry for 2.4.' });
    const { page } = await openDashboard(browser, server);
    const filters = page.getByRole('group', { name: 'Filter by status' });
    const filter = (name: string) => filters.getByRole('button', { name: new RegExp(`^${name}\\b`) });
    await expect.poll(() => filters.getByRole('button').allInnerTexts()).toEqual([
      'All 5',
      'Running 1',
      'Waiting 0',
      'Completed 2',
      'Failed 1',
      'Stopped 1',
    ]);
    expect(await filter('All').getAttribute('aria-pressed')).toBe('true');
    expect(await storyRows(page).count()).toBe(5);
    await snap(page, 'dashboard-list');

    /** The ids of the stories the list shows, from their links. */
    const shown = async () =>
      (await storyRows(page).getByRole('link').evaluateAll((links) => links.map((link) => link.getAttribute('href')!.split('/').pop()))).join(' ');
    await filter('Failed').click();
    expect(await filter('Failed').getAttribute('aria-pressed')).toBe('true');
    expect(await shown()).toBe('PROJ-102');
    await filter('Running').click();
    expect(await shown()).toBe('PROJ-104');
    await filter('Completed').click();
    expect(await storyRows(page).count()).toBe(2);
    await filter('Waiting').click();
    expect(await page.getByRole('region', { name: 'Stories' }).innerText()).toContain('No story waits for a person.');

    // The filter holds while the list changes, and when a person comes back to it.
    await filter('Stopped').click();
    expect(await shown()).toBe('PROJ-103');
    await server.request('mutation { stopAgent(storyId: "PROJ-104") { status } }');
    await expect.poll(shown).toBe('PROJ-103 PROJ-104');
    await row(page, 'PROJ-104').click();
    await page.getByRole('link', { name: '← All stories' }).click();
    expect(await filter('Stopped').getAttribute('aria-pressed')).toBe('true');
    expect(await filter('Stopped').innerText()).toBe('Stopped 2');
    await filter('All').click();
    expect(await storyRows(page).count()).toBe(5);
  });

  it('shows the Agent picker\'s choices whole, not cut off, at common widths', async (context) => {
    const browser = await launchBrowser(context);
    const server = await startTestServer({
      tables: [
        `[agents.reviewer]\ncommand = ${JSON.stringify(FAKE_AGENT)}\npermission_mode = "acceptEdits"`,
        `[agents.plain-text-agent]\nkind = "text"\ncommand = ${JSON.stringify(FAKE_AGENT)}`,
      ].join('\n'),
    });
    const { page } = await openDashboard(browser, server);
    const picker = page.getByLabel('Agent');
    const choices = await picker.locator('option').allInnerTexts();
    expect(choices).toEqual(["The story's own, else default", 'default (claude)', 'reviewer (claude, acceptEdits)', 'plain-text-agent (text)']);
    for (const width of [1920, 1440, 1366, 1280, 1024, 800, 390]) {
      await page.setViewportSize({ width, height: 900 });
      for (const choice of choices) {
        await picker.selectOption({ label: choice });
        // The width the picker needs to show its choices whole: its own width unconstrained.
        const { needed, has } = await picker.evaluate((select) => {
          const free = select.cloneNode(true) as HTMLSelectElement;
          free.style.width = 'max-content';
          free.style.position = 'absolute';
          select.parentElement!.append(free);
          const result = { needed: free.getBoundingClientRect().width, has: select.getBoundingClientRect().width };
          free.remove();
          return result;
        });
        expect(has, `${width}px wide, "${choice}"`).toBeGreaterThanOrEqual(needed - 0.5);
      }
    }
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
