// Long histories on the dashboard, in a real browser (Debian's Chromium) against the real
// server: a story opens at its end, reads older pages as the person scrolls, down to the
// oldest kept and back, holding a bounded window of events, and its live events keep
// arriving, each `#seq` once.
import { describe, expect, it } from 'vitest';
import { launchBrowser } from '../support/browser.js';
import { holdServerMessage, newPage, openDashboard, snap } from '../support/dashboard.js';
import {
  eventBySeq,
  events,
  eventStored,
  eventWithText,
  heldEvents,
  rawToggle,
  scrollThroughEvents,
  scrollToOldest,
  WINDOW_SIZE,
} from '../support/event-list.js';
import { startTestServer } from '../support/server.js';

describe('a long history on the dashboard', () => {
  it('opens a long story at its end, reads older pages down to #1 and back within its window, and live events keep arriving, each #seq once', async (context) => {
    const browser = await launchBrowser(context);
    const server = await startTestServer();
    // A run that answers three lines on its terminal, one at a time: the live events, on cue.
    await server.request('mutation { startAgent(storyId: "HIST-1", prompt: "say ready; echo-stdin 3; result") { status } }');
    await expect.poll(() => server.pool.get('HIST-1')?.status, { timeout: 20_000 }).toBe('RUNNING');
    // Its first words are stored before the history is added after them.
    await eventStored(server, 'HIST-1', 'ready');
    // A history five times the page's window: 5,000 more lines, stored.
    for (let batch = 0; batch < 5; batch++) {
      const lines = Array.from({ length: 1000 }, (_, i) => ({ type: 'output' as const, text: `line ${batch * 1000 + i + 1}` }));
      await server.pool.eventLog.append('HIST-1', 1, lines);
    }
    const stored = server.pool.get('HIST-1')!.lastSeq;
    expect(stored).toBeGreaterThan(5000);

    const { page } = await openDashboard(browser, server, '/stories/HIST-1');
    // It opens at the end, having read the newest page only, and follows it. Every event is
    // shown, the raw lines of the agent's own words too.
    await eventWithText(page, 'line 5000').waitFor();
    await rawToggle(page).click();
    const [openedFirst, openedLast] = await heldEvents(page);
    expect(openedLast).toBe(stored);
    expect(openedLast - openedFirst + 1).toBeLessThanOrEqual(200);
    expect(await page.getByRole('region', { name: 'Events' }).getByRole('heading').innerText()).toContain(`#1–#${stored}`);
    server.pool.sendInput('HIST-1', 'first live line\n');
    await eventWithText(page, 'first live line').waitFor();
    expect((await heldEvents(page))[1]).toBe(server.pool.get('HIST-1')!.lastSeq);

    // Up to the oldest: #1 in view, the newest pages dropped from memory.
    await scrollToOldest(page);
    await eventBySeq(page, 1).waitFor();
    const [oldFirst, oldLast] = await heldEvents(page);
    expect(oldFirst).toBe(1);
    expect(oldLast).toBeLessThan(stored - WINDOW_SIZE);
    // A live event while the view is far from the end: counted, read when the list gets there.
    const beforeLive = server.pool.get('HIST-1')!.lastSeq;
    server.pool.sendInput('HIST-1', 'second live line\n');
    // The heading counts what has arrived (the newest seq read when it is checked: the echo comes as several events).
    await expect
      .poll(async () => {
        const heading = await page.getByRole('region', { name: 'Events' }).getByRole('heading').innerText();
        const lastSeq = server.pool.get('HIST-1')!.lastSeq;
        return lastSeq > beforeLive && heading.includes(`#1–#${lastSeq}`);
      })
      .toBe(true);
    expect((await heldEvents(page))[1]).toBe(oldLast);
    await snap(page, 'dashboard-long-history-start');

    // And back down: every #seq once, in order, the live ones too; then it follows the end again.
    const lastSeq = server.pool.get('HIST-1')!.lastSeq;
    const seqs = await scrollThroughEvents(page, lastSeq, true);
    const all = Array.from({ length: lastSeq }, (_, i) => i + 1);
    expect(all.filter((seq) => !seqs.includes(seq)), 'seqs never shown').toEqual([]);
    expect(seqs).toEqual(all);
    await page.getByRole('region', { name: 'Events' }).getByRole('button', { name: 'Follow new events' }).waitFor({ state: 'detached' });
    server.pool.sendInput('HIST-1', 'third live line\n');
    await eventWithText(page, 'third live line').waitFor();
    await expect.poll(() => server.pool.get('HIST-1')!.status, { timeout: 20_000 }).toBe('COMPLETED');
    const final = server.pool.get('HIST-1')!.lastSeq;
    await eventBySeq(page, final).waitFor();
    expect((await heldEvents(page))[1]).toBe(final);
  });

  it('reads back to the oldest event retention kept, and says that older ones were dropped', async (context) => {
    const browser = await launchBrowser(context);
    const server = await startTestServer({ store: 'max_events_per_story = 1000' });
    await server.request('mutation { startAgent(storyId: "KEPT-1", prompt: "say hi") { status } }');
    await expect.poll(() => server.pool.get('KEPT-1')?.status, { timeout: 20_000 }).toBe('COMPLETED');
    for (let batch = 0; batch < 3; batch++) {
      server.pool.eventLog.append('KEPT-1', 1, Array.from({ length: 1000 }, (_, i) => ({ type: 'output' as const, text: `line ${batch * 1000 + i + 1}` })));
      await server.pool.eventLog.settled('KEPT-1');
    }
    const { firstSeq, lastSeq } = (
      await server.request<{ agent: { firstSeq: number; lastSeq: number } }>('{ agent(storyId: "KEPT-1") { firstSeq lastSeq } }')
    ).data!.agent;
    expect(firstSeq).toBeGreaterThan(1);
    const { page } = await openDashboard(browser, server, '/stories/KEPT-1');
    await eventBySeq(page, lastSeq).waitFor();
    const region = page.getByRole('region', { name: 'Events' });
    expect(await region.getByRole('heading').innerText()).toContain(`#${firstSeq}–#${lastSeq}`);
    const dropped = region.getByText(`Events before #${firstSeq} were dropped by retention`);
    expect(await dropped.count()).toBe(0);

    await region.getByRole('button', { name: 'Oldest events' }).click();
    await eventBySeq(page, firstSeq).waitFor();
    await dropped.waitFor();
    expect((await heldEvents(page))[0]).toBe(firstSeq);
  });

  it('with the raw lines hidden, opens a story whose newest events are all raw lines on the events it shows, reading back only until it has a screenful', async (context) => {
    const browser = await launchBrowser(context);
    const server = await startTestServer();
    // Its words, 300 lines of output, then 3,000 raw lines (hidden by default), then a wait for a line on its terminal.
    await server.request('mutation { startAgent(storyId: "RAWTAIL-1", prompt: "say ready; echo-stdin 1; result") { status } }');
    await eventStored(server, 'RAWTAIL-1', 'ready');
    server.pool.eventLog.append('RAWTAIL-1', 1, Array.from({ length: 300 }, (_, i) => ({ type: 'output' as const, text: `output ${i + 1}` })));
    server.pool.eventLog.append('RAWTAIL-1', 1, Array.from({ length: 3000 }, (_, i) => ({ type: 'json' as const, data: { type: 'tick', n: i + 1 } })));
    await server.pool.eventLog.settled('RAWTAIL-1');
    const stored = server.pool.get('RAWTAIL-1')!.lastSeq;
    const { page } = await newPage(browser);
    const reads: string[] = [];
    page.on('websocket', (socket) =>
      socket.on('framesent', ({ payload }) => {
        if (typeof payload === 'string' && payload.includes('query EventPage')) reads.push(payload);
      }),
    );
    await page.goto(`${server.server.origin}/stories/RAWTAIL-1?token=${server.token}`);
    await eventWithText(page, 'output 300').waitFor();
    // Pages of 200 back from the end: 15 of raw lines, then one of 200 lines of output, a
    // screenful and more: there it stops, far from #1.
    await expect.poll(() => heldEvents(page)).toEqual([stored - 3199, stored]);
    expect(reads).toHaveLength(16);
    expect(await rawToggle(page).isChecked()).toBe(false);
    expect(await page.getByRole('region', { name: 'Events' }).locator('.raw-toggle').innerText()).toBe('Show raw lines (3000)');

    // Still following the end: a live event shows at once, and nothing more was read.
    server.pool.sendInput('RAWTAIL-1', 'after the ticks\n');
    await eventWithText(page, 'after the ticks').waitFor();
    expect(reads).toHaveLength(16);
    expect((await heldEvents(page))[0]).toBe(stored - 3199);
  });

  it('follows the live events when the raw lines are shown while its first page is still being read', async (context) => {
    const browser = await launchBrowser(context);
    const server = await startTestServer();
    await server.request('mutation { startAgent(storyId: "EARLY-1", prompt: "say ready; echo-stdin 1; result") { status } }');
    await eventStored(server, 'EARLY-1', 'ready');
    const { page } = await newPage(browser);
    // The answer of the first page read is held until the toggle was clicked: that click
    // reads the page again, and the first answer, come late, is not the one applied.
    const firstPage = await holdServerMessage(page, '"firstSeq"');
    await page.goto(`${server.server.origin}/stories/EARLY-1?token=${server.token}`);
    await expect.poll(() => firstPage.held()).toBe(true);
    await rawToggle(page).click();
    firstPage.release();
    await eventWithText(page, 'ready').waitFor();
    await events(page).filter({ hasText: 'raw line: assistant' }).first().waitFor();

    server.pool.sendInput('EARLY-1', 'a live line\n');
    await eventWithText(page, 'a live line').waitFor({ timeout: 10_000 });
    await expect.poll(() => server.pool.get('EARLY-1')!.status).toBe('COMPLETED');
    await eventBySeq(page, server.pool.get('EARLY-1')!.lastSeq).waitFor();
  });
});
