import { describe, expect, it } from 'vitest';
import { EventLog, EventsTruncatedError, MemoryEventStorage } from '../../src/pool/event-log.js';
import type { AgentEvent } from '../../src/pool/events.js';

function say(count: number, from = 1) {
  return Array.from({ length: count }, (_, i) => ({ type: 'output' as const, text: `line ${from + i}` }));
}

async function take(iterator: AsyncIterator<AgentEvent>, count: number): Promise<AgentEvent[]> {
  const events: AgentEvent[] = [];
  while (events.length < count) {
    const next = await iterator.next();
    if (next.done) break;
    events.push(next.value);
  }
  return events;
}

const seqs = (events: AgentEvent[]) => events.map((event) => event.seq);
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('EventLog', () => {
  it('numbers a story\'s events 1, 2, 3, … across appends and runs, each with its run and time', () => {
    const log = new EventLog(new MemoryEventStorage(1000));
    const first = log.append('S-1', 1, say(2));
    const second = log.append('S-1', 2, say(1));
    log.append('S-2', 1, say(1));
    expect(seqs([...first, ...second])).toEqual([1, 2, 3]);
    expect(second[0]).toMatchObject({ storyId: 'S-1', run: 2, type: 'output', text: 'line 1' });
    expect(second[0]!.at).toBeInstanceOf(Date);
    expect(log.lastSeq('S-1')).toBe(3);
    expect(log.lastSeq('S-2')).toBe(1);
    expect(log.lastSeq('never')).toBe(0);
  });

  it('replays the stored events after afterSeq, then continues live, without gap or duplicate', async () => {
    const log = new EventLog(new MemoryEventStorage(100_000));
    log.append('S-1', 1, say(1000));
    const reader = log.read('S-1', 250);
    const replayed = await take(reader, 500);
    // Events arrive while the replay is still going on.
    log.append('S-1', 1, say(1000, 1001));
    const rest = await take(reader, 1250);
    expect(seqs([...replayed, ...rest])).toEqual(range(251, 2000));
    await reader.return!();
  });

  it('can be opened before the story has any event, and wakes when the first arrives', async () => {
    const log = new EventLog(new MemoryEventStorage(1000));
    const reader = log.read('later');
    const first = reader.next();
    log.append('later', 1, say(1));
    expect((await first).value).toMatchObject({ seq: 1, text: 'line 1' });
    await reader.return!();
  });

  it('ends a reader that waits for events when it is returned, and releases it', async () => {
    const log = new EventLog(new MemoryEventStorage(1000));
    const reader = log.read('idle');
    const waiting = reader.next();
    expect(log.openReaders).toBe(1);
    await reader.return!();
    expect(await waiting).toEqual({ done: true, value: undefined });
    expect(log.openReaders).toBe(0);
  });

  it('ends every reader on close', async () => {
    const log = new EventLog(new MemoryEventStorage(1000));
    const readers = [log.read('a'), log.read('b', 5)];
    const pending = readers.map((reader) => reader.next());
    log.close();
    expect(await Promise.all(pending)).toEqual([
      { done: true, value: undefined },
      { done: true, value: undefined },
    ]);
    expect(log.openReaders).toBe(0);
  });

  it('lets a reader that reads nothing fall behind a large log without a queue of its own', async () => {
    const log = new EventLog(new MemoryEventStorage(200_000));
    const slow = log.read('S-1');
    for (let i = 0; i < 100; i++) log.append('S-1', 1, say(1000, i * 1000 + 1));
    const all = await take(slow, 100_000);
    expect(seqs(all)).toEqual(range(1, 100_000));
    await slow.return!();
  });

  it('keeps at most max events per story and ends a replay below them with EVENTS_TRUNCATED and the oldest kept seq', async () => {
    const log = new EventLog(new MemoryEventStorage(100));
    log.append('S-1', 1, say(250));
    expect(log.bounds('S-1')).toEqual({ firstSeq: 151, lastSeq: 250 });

    const tooOld = log.read('S-1', 10);
    const error = await tooOld.next().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(EventsTruncatedError);
    expect(error).toMatchObject({ code: 'EVENTS_TRUNCATED', extensions: { firstSeq: 151 } });
    expect(await tooOld.next()).toEqual({ done: true, value: undefined });
    expect(log.openReaders).toBe(0);

    const fine = log.read('S-1', 150);
    expect(seqs(await take(fine, 100))).toEqual(range(151, 250));
    await fine.return!();
  });

  it('ends a reader that falls behind retention with EVENTS_TRUNCATED rather than skipping events', async () => {
    const log = new EventLog(new MemoryEventStorage(300));
    log.append('S-1', 1, say(10));
    const reader = log.read('S-1');
    await take(reader, 5);
    log.append('S-1', 1, say(1000, 11));
    // What it had already taken from storage it still gets, then the gap is reported.
    const got: number[] = [];
    const error = await (async () => {
      for (;;) got.push((await reader.next()).value.seq);
    })().catch((e: unknown) => e);
    expect(got).toEqual(range(6, 10));
    expect(error).toMatchObject({ code: 'EVENTS_TRUNCATED', extensions: { firstSeq: 711 } });
  });

  it('pages stored events in seq order', async () => {
    const log = new EventLog(new MemoryEventStorage(1000));
    log.append('S-1', 1, say(10));
    expect(seqs(await log.page('S-1', 3, 4))).toEqual([4, 5, 6, 7]);
    expect(seqs(await log.page('S-1', -5, 2))).toEqual([1, 2]);
    expect(await log.page('S-1', 10, 5)).toEqual([]);
    expect(await log.page('nobody', 0, 5)).toEqual([]);
  });
});
