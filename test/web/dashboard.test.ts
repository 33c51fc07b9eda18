// The dashboard at `/` in a real browser (Debian's Chromium) against the real server: a
// person starts, watches, stops and steers agents with nothing but the page, by the
// accessible names the contract gives its controls.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Locator, Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { examplesOf } from '../docs/markdown.js';
import { writeFile } from '../fixtures/fake-anthropic.js';
import { launchBrowser } from '../support/browser.js';
import { claudeServer } from '../support/claude.js';
import { FAKE_AGENT } from '../support/fake-agent.js';
import { leftovers } from '../support/no-leftover-processes.js';
import { holdAgentsQuery, newPage, openDashboard, scriptArgs, scriptNextRuns, snap } from '../support/dashboard.js';
import { eventBySeq, eventWithText, events, rawToggle, scrollThroughEvents } from '../support/event-list.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { tcpProxy } from '../support/tcp-proxy.js';

const README = fileURLToPath(new URL('../../README.md', import.meta.url));

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

/**
 * The text of `locator` as it reads on the screen, left to right: its characters ordered by
 * where they are drawn (for text on one line). A bidirectional reordering shows as a
 * difference from the DOM's text.
 */
async function textAsDrawn(locator: Locator): Promise<string> {
  return locator.evaluate((element) => {
    const drawn: Array<{ char: string; x: number }> = [];
    const walker = document.createTreeWalker(element, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const text = node.textContent ?? '';
      for (let index = 0; index < text.length; index++) {
        const range = document.createRange();
        range.setStart(node, index);
        range.setEnd(node, index + 1);
        const rect = range.getBoundingClientRect();
        if (rect.width > 0) drawn.push({ char: text[index]!, x: rect.left + rect.width / 2 });
      }
    }
    return drawn
      .sort((a, b) => a.x - b.x)
      .map((item) => item.char)
      .join('');
  });
}

/**
 * What is left of the agents' runs: the processes this test file started that carry a run's
 * marker (`AGENT_POOL_RUN`), the agent and whatever it started. The server's own git reads
 * (the Changes panel asks for them as the story moves) carry none: they come and go, and
 * the file's own check after its last test sees that they went.
 */
function runLeftovers(): string[] {
  return leftovers().filter((line) => {
    try {
      const environ = readFileSync(`/proc/${line.split(' ')[0]}/environ`, 'latin1').split('\0');
      return environ.some((entry) => entry.startsWith('AGENT_POOL_RUN='));
    } catch {
      return false; // gone meanwhile
    }
  });
}

/** Whether the page scrolls sideways: something in it is wider than the window. */
const overflowsSideways = (page: Page) =>
  page.evaluate(() => document.documentElement.scrollWidth > document.documentElement.clientWidth);

const heading = (page: Page) => page.getByRole('heading', { level: 1 });
const connectionBadge = (page: Page) => page.getByRole('status', { name: 'Connection' });
const runRows = (page: Page) => page.getByRole('region', { name: 'Runs' }).locator('tbody').getByRole('row');
const storyRows = (page: Page) => page.getByRole('region', { name: 'Stories' }).locator('tbody').getByRole('row');
/** The terms of the facts list of a story's page (Agent, Branch, Cost, Session, Error). */
const factTerms = (page: Page) => page.locator('dl.facts dt').allInnerTexts();

const row = (page: Page, storyId: string) => page.getByRole('row').filter({ hasText: storyId });
/** The ids of the stories the list shows, from their links, in order. */
const shownStories = async (page: Page) =>
  (await storyRows(page).getByRole('link').evaluateAll((links) => links.map((link) => link.getAttribute('href')!.split('/').pop()))).join(' ');
const filters = (page: Page) => page.getByRole('group', { name: 'Filter by status' });
/** The status filter `name` ("Running", …), whatever its count. */
const filterButton = (page: Page, name: string) => filters(page).getByRole('button', { name: new RegExp(`^${name}\\b`) });

/** The highest `#seq` the Events list shows now. */
async function lastShownSeq(page: Page): Promise<number> {
  const texts = await events(page).locator('.seq').allInnerTexts();
  return Math.max(0, ...texts.map((text) => Number(text.replace('#', ''))));
}

describe('the dashboard in a real browser', () => {
  it('starts a story from the form with a title and opens it, shows it live to COMPLETED, and opens its events and changes', async (context) => {
    const browser = await launchBrowser(context);
    // The profile the form picks; what its fake agent does is its script, the prompt reads as a person's.
    const script = 'say I will look at what the repository has first.; tool; tool-result; run printf "hello\\n" > hello.txt; say Wrote hello.txt.; result';
    const server = await startTestServer({
      tables: `[agents.writer]\ncommand = ${JSON.stringify(FAKE_AGENT)}\n${scriptArgs(script)}`,
    });
    const { page, requests } = await openDashboard(browser, server);
    // The token left the address bar once the page had it.
    expect(new URL(page.url()).search).toBe('');

    await page.getByLabel('Story').fill('S-1');
    await page.getByLabel('Title').fill('Add a hello.txt');
    await page.getByLabel('Prompt').fill('Add a hello.txt at the root of the repository that says hello.');
    await page.getByLabel('Agent').selectOption('writer');
    await page.getByRole('button', { name: 'Start' }).click();
    // Start opens the story it started.
    await expect.poll(() => new URL(page.url()).pathname).toBe('/stories/S-1');
    await expect.poll(() => heading(page).innerText(), { timeout: 20_000 }).toContain('COMPLETED');
    expect(await heading(page).innerText()).toContain('Add a hello.txt');

    const lastSeq = server.pool.get('S-1')!.lastSeq;
    await eventBySeq(page, lastSeq).waitFor();
    await expect.poll(() => eventWithText(page, 'Wrote hello.txt.').count()).toBe(1);
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
    expect(await row(page, 'S-1').innerText()).toContain('writer');
    expect(await row(page, 'S-1').innerText()).toContain('Add a hello.txt');
  });

  it('does the README\'s Quick start in the browser: its text agent, story hello-1 typed in the form, COMPLETED with hello.txt in Changes', async (context) => {
    const browser = await launchBrowser(context);
    // The agent-pool.toml the README tells a reader to save, as printed there.
    const toml = examplesOf(readFileSync(README, 'utf8')).get('agent-pool.toml');
    expect(toml).toContain('kind = "text"');
    const server = await startTestServer({ toml });
    const { page } = await openDashboard(browser, server);
    // One profile: the form has no Agent picker, as a reader of the Quick start sees it.
    expect(await page.getByLabel('Agent', { exact: true }).count()).toBe(0);
    await page.getByLabel('Story').fill('hello-1');
    await page.getByLabel('Title').fill('Say hello');
    await page.getByLabel('Prompt').fill('Say hello');
    await page.getByRole('button', { name: 'Start' }).click();

    // The story's page opens: its events as they come, its runs, and what it changed.
    await expect.poll(() => new URL(page.url()).pathname).toBe('/stories/hello-1');
    await expect.poll(() => heading(page).innerText(), { timeout: 20_000 }).toContain('COMPLETED');
    expect(await heading(page).innerText()).toContain('Say hello');
    await eventWithText(page, 'Working on: Say hello').waitFor();
    await eventWithText(page, 'Wrote hello.txt').waitFor();
    expect(await factTerms(page)).toEqual(['Agent', 'Branch']);
    expect(await page.locator('dl.facts').innerText()).toContain('story/hello-1');
    expect(await runRows(page).count()).toBe(1);
    expect(await runRows(page).nth(0).innerText()).toContain('Say hello');
    const changes = page.getByRole('region', { name: 'Changes' });
    await changes.getByRole('button', { name: /hello\.txt/ }).click();
    await expect.poll(() => changes.getByLabel('Diff of hello.txt').innerText()).toContain('+Say hello');
    expect(await changes.getByRole('heading').innerText()).toContain('1 file · +1 −0');
    // Written in the story's worktree; the checkout is never touched.
    expect(readFileSync(path.join(server.root, '.agent-pool', 'worktrees', 'hello-1', 'hello.txt'), 'utf8')).toBe('Say hello\n');
    expect(existsSync(path.join(server.root, 'hello.txt'))).toBe(false);
    await snap(page, 'dashboard-quick-start');
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
    expect(await scrollThroughEvents(page, others.at(-1)!)).toEqual(others);
    expect(await events(page).filter({ hasText: 'raw line:' }).count()).toBe(0);

    await toggle.click();
    expect(await scrollThroughEvents(page, all.at(-1)!, true)).toEqual(all);
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
    expect(runLeftovers()).toEqual([]);
    expect(await page.getByRole('button', { name: 'Stop' }).isDisabled()).toBe(true);
  });

  it('keeps a running story\'s Changes current while its events flow', async (context) => {
    const browser = await launchBrowser(context);
    const server = await startTestServer();
    // Thirty seconds of steady events: the story moves on every second while the test runs; then
    // it waits for input, so it is still running however slow the machine.
    await server.request('mutation { startAgent(storyId: "BUSY-1", prompt: "ticks 600 20; echo-stdin 1; result") { status } }');
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
    // 8,000 raw lines, 250 a second (32 s of them, so that they still flow when the network
    // drops, after a reload, on a machine busy with other browsers): the prompt says so as a
    // person would, the args make the fake do it. Then it waits for a line on its terminal, so
    // that it is still running however long the reload and the reconnect take.
    scriptNextRuns(server, 'ticks 8000 250; echo-stdin 1; result');
    await startStory(
      server,
      { storyId: 'LONG-1', title: 'Soak test of the event stream', prompt: 'Report your progress as you go: 8,000 ticks, 250 a second.' },
      'RUNNING',
    );
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

    server.pool.sendInput('LONG-1', 'that will do\n');
    await expect.poll(() => server.pool.get('LONG-1')!.status, { timeout: 30_000 }).toBe('COMPLETED');
    const lastSeq = server.pool.get('LONG-1')!.lastSeq;
    // Following the end, the list shows the last event once it arrived.
    await eventBySeq(page, lastSeq).waitFor({ timeout: 20_000 });
    await snap(page, 'dashboard-long-run');
    const seqs = await scrollThroughEvents(page, lastSeq, true);
    const all = Array.from({ length: lastSeq }, (_, i) => i + 1);
    expect(all.filter((seq) => !seqs.includes(seq)), 'seqs never shown').toEqual([]);
    expect(seqs).toEqual(all);
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
    // Nothing written yet, and the screenshot shows that rather than "Loading…".
    await page.getByRole('region', { name: 'Changes' }).getByText('No change against the base commit.').waitFor();
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
    const agentsQuery = await holdAgentsQuery(page);
    await page.goto(`${server.server.origin}/?token=${server.token}`);
    await expect.poll(() => agentsQuery.held()).toBe(true);
    const header = page.getByRole('banner');
    expect(await header.innerText()).toContain('Loading…');
    expect(await connectionBadge(page).innerText()).toBe('Loading…');
    expect(await page.getByRole('region', { name: 'Stories' }).innerText()).toContain('Loading…');
    expect(await page.getByRole('row').count()).toBe(0);

    agentsQuery.release();
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
    // What each fake agent does is its script (scriptNextRuns); the prompts are what a person would ask.
    scriptNextRuns(server, 'say Looking at the date test.; result-error The tests still fail on the 1st of the month.; exit 1');
    await startStory(
      server,
      { storyId: 'PROJ-102', title: 'Fix the flaky date test', prompt: 'The date test fails on the first day of each month. Find out why and fix it.' },
      'FAILED',
    );
    scriptNextRuns(server, 'say Upgrading ESLint.; wait');
    await startStory(server, { storyId: 'PROJ-103', title: 'Upgrade the linter', prompt: 'Upgrade ESLint to version 9 and fix what it reports.' }, 'RUNNING');
    await server.request('mutation { stopAgent(storyId: "PROJ-103") { status } }');
    scriptNextRuns(server, 'say Adding the dark theme.; wait');
    await startStory(
      server,
      { storyId: 'PROJ-104', title: 'Dark mode for the settings page', prompt: 'Give the settings page a dark mode that follows the system setting.' },
      'RUNNING',
    );
    scriptNextRuns(server, undefined);
    await startStory(server, { storyId: 'PROJ-105', prompt: 'Write the changelog entry for 2.4.' });
    const { page } = await openDashboard(browser, server);
    const filter = (name: string) => filterButton(page, name);
    await expect.poll(() => filters(page).getByRole('button').allInnerTexts()).toEqual([
      'All 5',
      'Running 1',
      'Pending 0',
      'Waiting 0',
      'Completed 2',
      'Failed 1',
      'Stopped 1',
    ]);
    expect(await filter('All').getAttribute('aria-pressed')).toBe('true');
    expect(await storyRows(page).count()).toBe(5);
    await snap(page, 'dashboard-list');

    const shown = () => shownStories(page);
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

  it('counts "running" and "pending" the same way in the header and the filters: with max_concurrent = 1, one story runs and the next is pending', async (context) => {
    const browser = await launchBrowser(context);
    const server = await startTestServer({ pool: 'max_concurrent = 1\nstop_grace_seconds = 0.5', agent: scriptArgs('say Working on it.; wait') });
    await startStory(server, { storyId: 'Q-1', title: 'Migrate the billing tables', prompt: 'Move the billing tables to the new schema.' }, 'RUNNING');
    await startStory(server, { storyId: 'Q-2', title: 'Translate the settings page', prompt: 'Translate the settings page into German.' }, 'PENDING');
    // It waits for the one slot, which Q-1 holds.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(server.pool.get('Q-2')!.status).toBe('PENDING');
    const { page } = await openDashboard(browser, server);
    const header = page.getByRole('banner');
    const filter = (name: string) => filterButton(page, name);

    await expect.poll(() => header.innerText()).toContain('2 stories · 1 running · 1 pending · 2 runs');
    expect(await filters(page).getByRole('button').allInnerTexts()).toEqual([
      'All 2',
      'Running 1',
      'Pending 1',
      'Waiting 0',
      'Completed 0',
      'Failed 0',
      'Stopped 0',
    ]);
    // Each count says what it counts, the same words in the header and on the filter.
    const running = await header.getByText('1 running', { exact: true }).getAttribute('title');
    const pending = await header.getByText('1 pending', { exact: true }).getAttribute('title');
    expect(running).toContain('RUNNING');
    expect(pending).toContain('PENDING');
    expect(pending).toContain('max_concurrent');
    expect(await filter('Running').getAttribute('title')).toBe(running);
    expect(await filter('Pending').getAttribute('title')).toBe(pending);
    await filter('Running').click();
    expect(await shownStories(page)).toBe('Q-1');
    expect(await row(page, 'Q-1').innerText()).toContain('RUNNING');
    await filter('Pending').click();
    expect(await shownStories(page)).toBe('Q-2');
    expect(await row(page, 'Q-2').innerText()).toContain('PENDING');

    // The slot frees: Q-2 runs, and both counts follow it.
    await server.request('mutation { stopAgent(storyId: "Q-1") { status } }');
    await expect.poll(() => server.pool.get('Q-2')!.status, { timeout: 20_000 }).toBe('RUNNING');
    await expect.poll(() => header.innerText()).toContain('2 stories · 1 running · 2 runs');
    expect(await header.innerText()).not.toContain('pending');
    await expect.poll(() => filter('Pending').innerText()).toBe('Pending 0');
    expect(await page.getByRole('region', { name: 'Stories' }).innerText()).toContain('No story is pending.');
    expect(await filter('Running').innerText()).toBe('Running 1');
    await filter('Running').click();
    expect(await shownStories(page)).toBe('Q-2');
    await server.request('mutation { stopAgent(storyId: "Q-2") { status } }');
  });

  it('wraps a title of 200 "x", a 64-character id and a prompt of one long word: nothing scrolls sideways at 1280 px, on the list or the story page', async (context) => {
    const browser = await launchBrowser(context);
    const server = await startTestServer();
    const storyId = `LONG-${'x'.repeat(59)}`;
    const title = 'x'.repeat(200);
    const prompt = 'y'.repeat(300);
    await startStory(server, { storyId, title, prompt });
    const { page } = await openDashboard(browser, server);
    await page.setViewportSize({ width: 1280, height: 900 });
    const story = row(page, storyId);
    await story.waitFor();

    expect(await overflowsSideways(page)).toBe(false);
    // Every column in the window, the last one too; the title whole, wrapped.
    const lastCell = (await story.getByRole('cell').last().boundingBox())!;
    expect(lastCell.x + lastCell.width).toBeLessThanOrEqual(1280);
    expect(await story.getByRole('link').innerText()).toBe(title);
    expect((await story.getByRole('link').boundingBox())!.height).toBeGreaterThan(40);

    await story.getByRole('link').click();
    await expect.poll(() => heading(page).innerText()).toContain('COMPLETED');
    // The agent said the prompt back: its event wraps too.
    await eventWithText(page, prompt).waitFor();
    expect(await overflowsSideways(page)).toBe(false);
    const badge = (await heading(page).getByText('COMPLETED').boundingBox())!;
    expect(badge.x + badge.width).toBeLessThanOrEqual(1280);
    expect(await heading(page).locator('bdi').innerText()).toBe(title);
    const eventList = page.getByRole('region', { name: 'Events' }).getByRole('list');
    expect(await eventList.evaluate((element) => element.scrollWidth <= element.clientWidth)).toBe(true);
  });

  it('isolates titles and prompts in <bdi>: right-to-left text, or a U+202E in a prompt, reorders no story id or status beside them', async (context) => {
    const browser = await launchBrowser(context);
    const server = await startTestServer();
    // Arabic needs no control character to pull the digits of an id that follows it to its side.
    const arabic = 'ضبط المصادقة';
    const override = 'Rename abc\u202Egnp.exe to what it is.';
    await startStory(server, { storyId: '12-34', title: arabic, prompt: override });
    await startStory(server, { storyId: 't-12', prompt: 'abc\u202Egnp.exe' });
    const { page } = await openDashboard(browser, server);

    // The list: each id reads as it is, left to right, beside the title and above the prompt.
    const titled = row(page, '12-34');
    await titled.waitFor();
    expect(await titled.locator('.story-id').innerText()).toBe('12-34');
    expect(await textAsDrawn(titled.locator('.story-id'))).toBe('12-34');
    expect(await titled.getByRole('link').locator('bdi').innerText()).toBe(arabic);
    const promptLine = titled.locator('.prompt-line');
    expect(await promptLine.evaluate((element) => element.tagName)).toBe('BDI');
    expect(await promptLine.innerText()).toBe(override);
    const bare = row(page, 't-12');
    expect(await bare.getByRole('link').innerText()).toBe('t-12');
    expect(await textAsDrawn(bare.getByRole('link'))).toBe('t-12');
    expect(await textAsDrawn(bare.locator('.badge'))).toBe('COMPLETED');
    expect(await bare.locator('bdi.prompt-line').innerText()).toBe('abc\u202Egnp.exe');

    // The story's page: the title in a <bdi> in the heading, the status and id as they are,
    // the prompt a block of its own direction, and in a <bdi> in the runs table.
    await titled.getByRole('link').click();
    await expect.poll(() => heading(page).innerText()).toContain('COMPLETED');
    expect(await heading(page).locator('bdi').innerText()).toBe(arabic);
    expect(await textAsDrawn(heading(page).locator('.badge'))).toBe('COMPLETED');
    expect(await page.locator('p.story-id').innerText()).toBe('12-34');
    expect(await textAsDrawn(page.locator('p.story-id'))).toBe('12-34');
    const promptText = page.getByRole('region', { name: 'Prompt' }).locator('.prompt-text');
    expect(await promptText.getAttribute('dir')).toBe('auto');
    expect(await promptText.innerText()).toBe(override);
    expect(await runRows(page).nth(0).locator('bdi').innerText()).toBe(override);
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
