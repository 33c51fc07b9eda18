// Agent.diff(path:) takes a path from a client (as Agent.changes lists it): git must read
// it as that file's name, never as a pathspec with magic (`*`, `[ab]`, `:(exclude)…`)
// that would pick other files, in the worktree and on the branch once it is removed.
import { renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultConfig } from '../../src/config/config.js';
import { readChanges, readDiff, type StoryWork } from '../../src/worktree/story-changes.js';
import { Worktrees } from '../../src/worktree/worktrees.js';
import { tempRepo } from '../support/temp.js';

const config = () => defaultConfig().worktree;

/** Names that git would read as pathspec magic, each a file of its own. */
const MAGIC_NAMES = ['*.txt', '[ab].txt', 'a?txt', ':(exclude)a.txt', ':!b.txt', ':(glob)**'];
const PLAIN_NAMES = ['a.txt', 'b.txt'];

/** The files (`b/` side) a unified diff shows, in its order. */
function filesOf(diff: string): string[] {
  return [...diff.matchAll(/^\+\+\+ b\/(.*)$/gm)].map((match) => match[1]!);
}

/** A story whose worktree adds every file of {@link MAGIC_NAMES} and {@link PLAIN_NAMES}, each with its own line. */
async function storyWithMagicNames(): Promise<{ root: string; worktrees: Worktrees; work: StoryWork }> {
  const root = tempRepo();
  const worktrees = new Worktrees(root);
  const made = await worktrees.ensure('S-1', config());
  for (const name of [...PLAIN_NAMES, ...MAGIC_NAMES]) writeFileSync(path.join(made.path, name), `line of ${name}\n`);
  const work = (await worktrees.storyWork('S-1', made.branch, made.path))!;
  expect(work.worktreePath).toBe(made.path);
  return { root, worktrees, work };
}

async function expectEachDiffIsItsOwnFile(root: string, work: StoryWork): Promise<void> {
  const listed = (await readChanges(root, work)).files.map((file) => file.path);
  expect(listed.sort()).toEqual([...PLAIN_NAMES, ...MAGIC_NAMES].sort());
  for (const name of [...MAGIC_NAMES, ...PLAIN_NAMES]) {
    const diff = await readDiff(root, work, name);
    expect(filesOf(diff), `the diff of ${name}`).toEqual([name]);
    expect(diff).toContain(`+line of ${name}\n`);
  }
}

describe('the diff of one file', () => {
  it('reads a changed file whose name is pathspec magic as that file alone, in the worktree', async () => {
    const { root, work } = await storyWithMagicNames();
    await expectEachDiffIsItsOwnFile(root, work);
  });

  it('reads it as that file alone on the branch, once the worktree is removed (its work saved there)', async () => {
    const { root, worktrees, work } = await storyWithMagicNames();
    expect((await worktrees.remove('S-1', config())).savedCommit).toMatch(/^[0-9a-f]{40}$/);
    const saved = (await worktrees.storyWork('S-1', work.branch, work.worktreePath))!;
    expect(saved.worktreePath).toBeUndefined();
    await expectEachDiffIsItsOwnFile(root, saved);
  });

  it('gives a plain path its own diff and refuses a path with no change (the honest twins)', async () => {
    const { root, work } = await storyWithMagicNames();
    const diff = await readDiff(root, work, 'a.txt');
    expect(filesOf(diff)).toEqual(['a.txt']);
    expect(diff).toContain('+line of a.txt\n');
    expect(filesOf(await readDiff(root, work))).toEqual(expect.arrayContaining([...PLAIN_NAMES, ...MAGIC_NAMES]));
    await expect(readDiff(root, work, '*.md')).rejects.toMatchObject({ code: 'PATH_NOT_CHANGED' });
    await expect(readDiff(root, work, 'README.md')).rejects.toMatchObject({ code: 'PATH_NOT_CHANGED' });

    // A rename to a name with magic in it is still one rename, by either of its names.
    renameSync(path.join(work.worktreePath!, 'README.md'), path.join(work.worktreePath!, 'READ*ME.md'));
    const renamed = (await readChanges(root, work)).files.find((file) => file.path === 'READ*ME.md');
    expect(renamed).toMatchObject({ oldPath: 'README.md', kind: 'RENAMED' });
    for (const name of ['README.md', 'READ*ME.md']) {
      expect(await readDiff(root, work, name)).toMatch(/^rename from README\.md\nrename to READ\*ME\.md$/m);
    }
  });
});
