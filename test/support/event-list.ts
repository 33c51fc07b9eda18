// The dashboard's Events list as its Chromium tests read it: its items by `#seq` or text,
// the events it holds in memory (its window), and scrolling through it from its oldest
// event to its newest, checking on the way what it shows.
import type { Page } from 'playwright-core';
import { expect } from 'vitest';
import type { TestServer } from './server.js';

export const events = (page: Page) => page.getByRole('region', { name: 'Events' }).getByRole('listitem');
/** The event showing `#<seq>`. */
export const eventBySeq = (page: Page, seq: number) => events(page).filter({ has: page.getByText(`#${seq}`, { exact: true }) });
/** The event whose text (not its collapsed raw line) is exactly `text`. */
export const eventWithText = (page: Page, text: string) => events(page).filter({ has: page.getByText(text, { exact: true }) });
/** The "Show raw lines (N)" checkbox of the Events region. */
export const rawToggle = (page: Page) => page.getByRole('region', { name: 'Events' }).getByRole('checkbox', { name: /^Show raw lines/ });

/** Waits until the story's output `text` is stored (among its first 1,000 events). */
export async function eventStored(server: TestServer, storyId: string, text: string): Promise<void> {
  const texts = async () => {
    const response = await server.request<{ agent: { events: Array<{ text?: string }> } | null }>(
      'query ($storyId: ID!) { agent(storyId: $storyId) { events(first: 1000) { ... on AgentOutputEvent { text } } } }',
      { storyId },
    );
    return response.data?.agent?.events.map((event) => event.text) ?? [];
  };
  await expect.poll(texts, { timeout: 20_000 }).toContain(text);
}

/** The events the Events list holds in memory (its window, from its data-held), as [first, last] seq. */
export async function heldEvents(page: Page): Promise<[number, number]> {
  const held = await page.getByRole('region', { name: 'Events' }).getByRole('list').getAttribute('data-held');
  const [first, last] = (held ?? '').split('-').map(Number);
  return [first ?? 0, last ?? 0];
}

/** Events held in memory at most (WINDOW_SIZE in web/src/event-window.ts). */
export const WINDOW_SIZE = 1000;

/**
 * Scrolls the Events list up to the oldest event kept, reading older pages on the way (the
 * "Oldest events" button is there until it holds it), and checks that what it holds stays
 * within its window.
 */
export async function scrollToOldest(page: Page): Promise<void> {
  const list = page.getByRole('region', { name: 'Events' }).getByRole('list');
  const oldest = page.getByRole('region', { name: 'Events' }).getByRole('button', { name: 'Oldest events' });
  let mostHeld = 0;
  await expect
    .poll(
      async () => {
        await list.evaluate((element) => (element.scrollTop = 0));
        const [first, last] = await heldEvents(page);
        mostHeld = Math.max(mostHeld, last - first + 1);
        return (await oldest.count()) === 0 && (await list.getAttribute('aria-busy')) === 'false';
      },
      { timeout: 60_000, interval: 20 },
    )
    .toBe(true);
  expect(mostHeld).toBeLessThanOrEqual(WINDOW_SIZE);
  // The last page may have come after the last scroll to the top: the list kept its view
  // where it was then, so once more, now that nothing older is left to read.
  await list.evaluate((element) => (element.scrollTop = 0));
}

/**
 * Scrolls the Events list from its oldest event down to `lastSeq`, a view at a time (the
 * window reading the pages as it goes), and returns every `#seq` it showed, in the order
 * it first showed them. On the way it checks that each view shows its seqs in increasing
 * order, each once (`consecutive`: with no seq left out, as when every event is shown),
 * and that what it holds stays within its window. The scrolling runs in the page, a frame
 * per step, so that thousands of events take seconds.
 */
export async function scrollThroughEvents(page: Page, lastSeq: number, consecutive = false): Promise<number[]> {
  const list = page.getByRole('region', { name: 'Events' }).getByRole('list');
  await scrollToOldest(page);
  const { seqs, badViews, mostHeld } = await list.evaluate(async (element, [lastSeq, consecutive]) => {
    const deadline = performance.now() + 120_000;
    const frame = async (): Promise<void> => {
      if (performance.now() > deadline) throw new Error(`stuck holding ${element.getAttribute('data-held')} before #${lastSeq}`);
      await new Promise((resolve) => requestAnimationFrame(resolve));
    };
    // The items in the page cover the visible part of the list: right after a scroll, the
    // page still holds the items of the old position.
    const covered = (): boolean => {
      const view = element.getBoundingClientRect();
      const items = [...element.querySelectorAll('[role=listitem]')].map((item) => item.getBoundingClientRect());
      const top = Math.min(...items.map((rect) => rect.top));
      const bottom = Math.max(...items.map((rect) => rect.bottom));
      const atBottom = element.scrollTop + element.clientHeight >= element.scrollHeight - 1;
      return items.length > 0 && top <= view.top + 1 && (bottom >= view.bottom - 1 || atBottom);
    };
    const seen = new Set<number>();
    const order: number[] = [];
    const badViews: number[][] = [];
    let mostHeld = 0;
    for (;;) {
      while (!covered()) await frame();
      const items = [...element.querySelectorAll('[role=listitem]')].sort(
        (a, b) => a.getBoundingClientRect().top - b.getBoundingClientRect().top,
      );
      const shown = items.map((item) => Number(item.querySelector('.seq')!.textContent!.replace('#', '')));
      if (shown.some((seq, index) => index > 0 && (consecutive ? seq !== shown[index - 1]! + 1 : seq <= shown[index - 1]!))) {
        badViews.push(shown);
      }
      for (const seq of shown) {
        if (!seen.has(seq)) order.push(seq);
        seen.add(seq);
      }
      const held = element.getAttribute('data-held')!;
      const [first, last] = held.split('-').map(Number);
      mostHeld = Math.max(mostHeld, last! - first! + 1);
      const before = element.scrollTop;
      element.scrollTop += element.clientHeight;
      if (element.scrollTop !== before) {
        await frame();
      } else if (seen.has(lastSeq)) {
        return { seqs: order, badViews, mostHeld };
      } else {
        // At the bottom of what it holds: the next page is being read.
        while (element.getAttribute('data-held') === held) await frame();
      }
    }
  }, [lastSeq, consecutive] as const);
  expect(badViews, 'views whose seqs were out of order, repeated or (consecutive) with one left out').toEqual([]);
  expect(mostHeld).toBeLessThanOrEqual(WINDOW_SIZE);
  return seqs;
}
