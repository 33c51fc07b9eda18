// The bounds on reads of git work, with reads that end only when told to (or when their
// signal aborts, as git does when simple-git kills it).
import { describe, expect, it } from 'vitest';
import { GitReads } from '../../src/worktree/git-reads.js';

/** A read that runs until `finish()` or until its signal aborts. */
function controllableRead() {
  let finish!: () => void;
  let started = false;
  const read = (signal: AbortSignal) =>
    new Promise<string>((resolve, reject) => {
      started = true;
      finish = () => resolve('done');
      signal.addEventListener('abort', () => reject(new Error('git was killed')), { once: true });
    });
  return { read, finish: () => finish(), started: () => started };
}

describe('GitReads', () => {
  it('runs at most `concurrency` reads at once, the others in their turn', async () => {
    const reads = new GitReads({ concurrency: 2 });
    const each = Array.from({ length: 4 }, controllableRead);
    const results = each.map((one) => reads.run(undefined, one.read));
    await expect.poll(() => each.map((one) => one.started())).toEqual([true, true, false, false]);
    expect(reads.pending).toBe(4);
    each[0]!.finish();
    await expect.poll(() => each.map((one) => one.started())).toEqual([true, true, true, false]);
    for (const one of each.slice(1)) {
      await expect.poll(() => one.started()).toBe(true);
      one.finish();
    }
    expect(await Promise.all(results)).toEqual(['done', 'done', 'done', 'done']);
    expect(reads.pending).toBe(0);
  });

  it('ends a running read and gives up a waiting one when its client leaves; the others go on', async () => {
    const reads = new GitReads({ concurrency: 1 });
    const [running, waiting, next] = [controllableRead(), controllableRead(), controllableRead()];
    const leftRunning = new AbortController();
    const leftWaiting = new AbortController();
    const first = reads.run(leftRunning.signal, running.read);
    const second = reads.run(leftWaiting.signal, waiting.read);
    const third = reads.run(undefined, next.read);
    leftWaiting.abort();
    await expect(second).rejects.toMatchObject({ code: 'GIT_READ_CANCELLED' });
    leftRunning.abort();
    await expect(first).rejects.toMatchObject({ code: 'GIT_READ_CANCELLED' });
    await expect.poll(() => next.started()).toBe(true);
    expect(waiting.started()).toBe(false);
    next.finish();
    expect(await third).toBe('done');
  });

  it('ends a read past its time limit', async () => {
    const reads = new GitReads({ timeoutMs: 50 });
    await expect(reads.run(undefined, controllableRead().read)).rejects.toMatchObject({ code: 'GIT_READ_TIMEOUT' });
    expect(reads.pending).toBe(0);
  });

  it('on close ends every read, waiting or running, waits for them, and refuses new ones', async () => {
    const reads = new GitReads({ concurrency: 1 });
    const [running, waiting] = [controllableRead(), controllableRead()];
    const first = reads.run(undefined, running.read);
    const second = reads.run(undefined, waiting.read);
    await reads.close();
    await expect(first).rejects.toMatchObject({ code: 'POOL_CLOSED' });
    await expect(second).rejects.toMatchObject({ code: 'POOL_CLOSED' });
    await expect(reads.run(undefined, controllableRead().read)).rejects.toMatchObject({ code: 'POOL_CLOSED' });
    expect(reads.pending).toBe(0);
  });
});
