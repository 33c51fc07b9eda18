// Landing a story's work with real git: each strategy, and every refusal (a conflict, a
// target checkout that is not clean, nothing to land) checked to change nothing at all:
// no ref, no file, no status, not even an object in the repository.
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultConfig } from '../../src/config/config.js';
import {
  type LandingWork,
  landingStatus,
  landStory,
  type MergeStrategy,
  rebaseStory,
} from '../../src/worktree/landing.js';
import { Worktrees } from '../../src/worktree/worktrees.js';
import { git, tempRepo } from '../support/temp.js';

const config = () => defaultConfig().worktree;
const identity = { name: 'Test Author', email: 'test@example.com' };

/** A project with one story whose worktree exists, and helpers to work in both. */
async function project(files: Record<string, string> = { 'README.md': '# test project\n', 'app.txt': 'one\ntwo\nthree\n' }) {
  const root = tempRepo({ commit: false });
  for (const [file, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
    writeFileSync(path.join(root, file), text);
  }
  git(root, 'add', '--all');
  git(root, 'commit', '--quiet', '-m', 'initial commit');
  const worktrees = new Worktrees(root);
  const made = await worktrees.ensure('S-1', config());
  expect(await made.baseBranch).toBe('main');
  await worktrees.settled();
  let landedCommit: string | undefined;
  const story = {
    root,
    worktrees,
    path: made.path,
    branch: made.branch,
    write(file: string, text: string, where = made.path): void {
      mkdirSync(path.dirname(path.join(where, file)), { recursive: true });
      writeFileSync(path.join(where, file), text);
    },
    commit(message: string, where = made.path): string {
      git(where, 'add', '--all');
      git(where, 'commit', '--quiet', '-m', message);
      return git(where, 'rev-parse', 'HEAD');
    },
    async work(): Promise<LandingWork> {
      const work = (await worktrees.storyWork('S-1', made.branch, made.path))!;
      return { ...work, landedCommit };
    },
    async land(strategy: MergeStrategy, target = 'main', message = 'S-1: the story') {
      const landed = await landStory(root, await story.work(), {
        strategy,
        target,
        message,
        identity,
        saveUncommittedWork: () => worktrees.saveWork('S-1', made.path, 'before landing'),
      });
      landedCommit = landed.landedCommit;
      return landed;
    },
    status: async (target = 'main') => landingStatus(root, await story.work(), target),
  };
  return story;
}

/** Everything a refused landing must leave as it was. */
function snapshot(story: { root: string; path: string }) {
  return {
    refs: git(story.root, 'for-each-ref', '--format=%(refname) %(objectname)'),
    rootStatus: git(story.root, 'status', '--porcelain=v2', '--untracked-files=all', '--ignored'),
    storyStatus: git(story.path, 'status', '--porcelain=v2', '--untracked-files=all'),
    rootApp: readFileSync(path.join(story.root, 'app.txt'), 'utf8'),
    storyApp: readFileSync(path.join(story.path, 'app.txt'), 'utf8'),
    objects: git(story.root, 'count-objects', '-v'),
  };
}

describe('landing a story', () => {
  it('SQUASH: one commit with the message on main, the uncommitted work committed on the branch first, the checkout fast-forwarded', async () => {
    const story = await project();
    story.write('feature.txt', 'a feature\n');
    story.commit('add a feature');
    story.write('app.txt', 'one\ntwo\nthree\nfour\n'); // left uncommitted
    story.write('notes/new.txt', 'untracked\n');
    const before = git(story.root, 'rev-parse', 'main');
    expect(await story.status()).toEqual({ aheadBy: 1, behindBy: 0, conflicts: [] });

    const landed = await story.land('SQUASH');
    expect(git(story.root, 'rev-parse', 'main')).toBe(landed.commit);
    expect(git(story.root, 'log', '-1', '--format=%P%n%s%n%an', 'main')).toBe(`${before}\nS-1: the story\nTest Author`);
    // The user's checkout has the work, and is clean.
    expect(readFileSync(path.join(story.root, 'feature.txt'), 'utf8')).toBe('a feature\n');
    expect(readFileSync(path.join(story.root, 'app.txt'), 'utf8')).toBe('one\ntwo\nthree\nfour\n');
    expect(readFileSync(path.join(story.root, 'notes/new.txt'), 'utf8')).toBe('untracked\n');
    expect(git(story.root, 'status', '--porcelain')).toBe('');
    // The agent's uncommitted work is a commit on its branch now.
    expect(git(story.path, 'status', '--porcelain')).toBe('');
    expect(git(story.path, 'log', '-1', '--format=%s')).toBe('agent-pool: save uncommitted work of story S-1 before landing');
    expect(landed.landedCommit).toBe(git(story.path, 'rev-parse', 'HEAD'));
    expect(await story.status()).toEqual({ aheadBy: 0, behindBy: 1, conflicts: [] });
  });

  it('SQUASH again after a follow-up that changes the same lines: only the new work lands, without a conflict', async () => {
    const story = await project();
    story.write('app.txt', 'one\nTWO\nthree\n');
    story.commit('first change');
    await story.land('SQUASH');
    story.write('app.txt', 'one\nTWO!\nthree\n');
    story.commit('second change');
    expect(await story.status()).toEqual({ aheadBy: 1, behindBy: 1, conflicts: [] });
    await story.land('SQUASH', 'main', 'S-1: again');
    expect(readFileSync(path.join(story.root, 'app.txt'), 'utf8')).toBe('one\nTWO!\nthree\n');
    expect(git(story.root, 'log', '--format=%s', 'main')).toBe('S-1: again\nS-1: the story\ninitial commit');
  });

  it('MERGE: a merge commit of main and the story', async () => {
    const story = await project();
    story.write('feature.txt', 'a feature\n');
    const tip = story.commit('add a feature');
    story.write('other.txt', 'on main\n', story.root);
    const mainTip = story.commit('meanwhile on main', story.root);
    const landed = await story.land('MERGE', 'main', 'Merge story S-1');
    expect(git(story.root, 'log', '-1', '--format=%P%n%s', 'main')).toBe(`${mainTip} ${tip}\nMerge story S-1`);
    expect(readFileSync(path.join(story.root, 'feature.txt'), 'utf8')).toBe('a feature\n');
    expect(readFileSync(path.join(story.root, 'other.txt'), 'utf8')).toBe('on main\n');
    expect(landed.landedCommit).toBe(tip);
    // main has its own commit and the merge, which the story's branch lacks.
    expect(await story.status()).toEqual({ aheadBy: 0, behindBy: 2, conflicts: [] });
  });

  it('REBASE: the story\'s commits replayed on main in its worktree, and main fast-forwarded to them', async () => {
    const story = await project();
    story.write('feature.txt', 'a feature\n');
    story.commit('add a feature');
    story.write('feature2.txt', 'more\n');
    story.commit('add more');
    story.write('other.txt', 'on main\n', story.root);
    const mainTip = story.commit('meanwhile on main', story.root);
    const landed = await story.land('REBASE');
    expect(git(story.root, 'log', '--format=%s', 'main')).toBe('add more\nadd a feature\nmeanwhile on main\ninitial commit');
    expect(git(story.root, 'rev-parse', 'main')).toBe(landed.commit);
    expect(git(story.path, 'rev-parse', 'HEAD')).toBe(landed.commit);
    expect(git(story.root, 'merge-base', '--is-ancestor', mainTip, 'main')).toBe('');
    expect(await story.status()).toEqual({ aheadBy: 0, behindBy: 0, conflicts: [] });
  });

  it('into a branch that is not checked out: update-ref moves it, no checkout is touched', async () => {
    const story = await project();
    git(story.root, 'branch', 'release');
    story.write('feature.txt', 'a feature\n');
    story.commit('add a feature');
    const mainBefore = git(story.root, 'rev-parse', 'main');
    const landed = await story.land('SQUASH', 'release');
    expect(git(story.root, 'rev-parse', 'release')).toBe(landed.commit);
    expect(git(story.root, 'rev-parse', 'main')).toBe(mainBefore);
    expect(git(story.root, 'status', '--porcelain')).toBe('');
  });

  it('a conflict is MERGE_CONFLICT with the files, for every strategy, and changes nothing (refs, files, status, objects)', async () => {
    const story = await project();
    story.write('app.txt', 'one\nstory\nthree\n');
    story.commit('story change');
    story.write('feature.txt', 'uncommitted\n');
    story.write('app.txt', 'one\nmain\nthree\n', story.root);
    story.commit('main change', story.root);
    const before = snapshot(story);
    expect((await story.status()).conflicts).toEqual(['app.txt']);
    expect(snapshot(story)).toEqual(before);
    for (const strategy of ['SQUASH', 'MERGE', 'REBASE'] as const) {
      await expect(story.land(strategy)).rejects.toMatchObject({ code: 'MERGE_CONFLICT', extensions: { files: ['app.txt'] } });
      expect(snapshot(story), strategy).toEqual(before);
    }
  });

  it('uncommitted work counts: a conflict only in the worktree is found, and the honest twin without it lands', async () => {
    const story = await project();
    story.write('app.txt', 'one\nmain\nthree\n', story.root);
    story.commit('main change', story.root);
    story.write('app.txt', 'one\nuncommitted story\nthree\n');
    expect(await story.status()).toEqual({ aheadBy: 0, behindBy: 1, conflicts: ['app.txt'] });
    git(story.path, 'checkout', '--', 'app.txt');
    story.write('feature.txt', 'uncommitted\n');
    expect(await story.status()).toEqual({ aheadBy: 0, behindBy: 1, conflicts: [] });
    await story.land('SQUASH');
    expect(readFileSync(path.join(story.root, 'feature.txt'), 'utf8')).toBe('uncommitted\n');
  });

  it('a target checkout with changes to tracked files is TARGET_DIRTY and keeps them; staged ones too', async () => {
    const story = await project();
    story.write('feature.txt', 'a feature\n');
    story.commit('add a feature');
    story.write('app.txt', 'the user\'s own edit\n', story.root);
    const before = snapshot(story);
    await expect(story.land('SQUASH')).rejects.toMatchObject({ code: 'TARGET_DIRTY', extensions: { files: ['app.txt'] } });
    expect(snapshot(story)).toEqual(before);
    git(story.root, 'add', 'app.txt');
    const staged = snapshot(story);
    await expect(story.land('REBASE')).rejects.toMatchObject({ code: 'TARGET_DIRTY', extensions: { files: ['app.txt'] } });
    expect(snapshot(story)).toEqual(staged);
  });

  it('an untracked or ignored file where the merge writes is TARGET_DIRTY; one anywhere else stays and the story lands', async () => {
    const story = await project();
    story.write('feature.txt', 'a feature\n');
    story.write('build/out.txt', 'a build\n');
    story.commit('add a feature and a build file');
    story.write('feature.txt', 'the user\'s own untracked file\n', story.root);
    let before = snapshot(story);
    await expect(story.land('SQUASH')).rejects.toMatchObject({ code: 'TARGET_DIRTY', extensions: { files: ['feature.txt'], reason: 'FILES_IN_THE_WAY' } });
    expect(snapshot(story)).toEqual(before);
    expect(readFileSync(path.join(story.root, 'feature.txt'), 'utf8')).toBe('the user\'s own untracked file\n');

    writeFileSync(path.join(story.root, '.git', 'info', 'exclude'), 'build\nfeature.txt\n');
    before = snapshot(story);
    await expect(story.land('MERGE')).rejects.toMatchObject({ code: 'TARGET_DIRTY', extensions: { files: ['feature.txt'] } });
    expect(snapshot(story)).toEqual(before);

    // A file (not a folder) where the merge needs a folder.
    writeFileSync(path.join(story.root, '.git', 'info', 'exclude'), '');
    git(story.root, 'clean', '-fdxq', '--', 'feature.txt');
    writeFileSync(path.join(story.root, 'build'), 'a file named build\n');
    await expect(story.land('SQUASH')).rejects.toMatchObject({ code: 'TARGET_DIRTY', extensions: { files: ['build'] } });

    git(story.root, 'clean', '-fdxq', '--', 'build');
    story.write('elsewhere.txt', 'the user\'s scratch file\n', story.root);
    await story.land('SQUASH');
    expect(readFileSync(path.join(story.root, 'elsewhere.txt'), 'utf8')).toBe('the user\'s scratch file\n');
    expect(readFileSync(path.join(story.root, 'build/out.txt'), 'utf8')).toBe('a build\n');
  });

  it('a merge in progress in the target checkout is TARGET_DIRTY', async () => {
    const story = await project();
    story.write('feature.txt', 'a feature\n');
    story.commit('add a feature');
    git(story.root, 'checkout', '--quiet', '-b', 'side');
    story.write('app.txt', 'side\n', story.root);
    story.commit('side', story.root);
    git(story.root, 'checkout', '--quiet', 'main');
    story.write('app.txt', 'main\n', story.root);
    story.commit('main', story.root);
    expect(() => git(story.root, 'merge', '--quiet', 'side')).toThrow();
    const before = snapshot(story);
    await expect(story.land('SQUASH')).rejects.toMatchObject({ code: 'TARGET_DIRTY', extensions: { reason: 'OPERATION_IN_PROGRESS' } });
    expect(snapshot(story)).toEqual(before);
  });

  it('nothing to land is NOTHING_TO_MERGE', async () => {
    const story = await project();
    await expect(story.land('SQUASH')).rejects.toMatchObject({ code: 'NOTHING_TO_MERGE' });
    story.write('feature.txt', 'a feature\n');
    await story.land('SQUASH');
    await expect(story.land('MERGE')).rejects.toMatchObject({ code: 'NOTHING_TO_MERGE' });
  });

  it('a target that does not exist is NO_TARGET_BRANCH', async () => {
    const story = await project();
    story.write('feature.txt', 'a feature\n');
    await expect(story.land('SQUASH', 'no-such-branch')).rejects.toMatchObject({ code: 'NO_TARGET_BRANCH' });
  });
});

describe('rebasing a story', () => {
  const rebase = async (story: Awaited<ReturnType<typeof project>>) =>
    rebaseStory(story.root, await story.work(), {
      target: 'main',
      identity,
      saveUncommittedWork: () => story.worktrees.saveWork('S-1', story.path, 'before rebasing'),
    });

  it('replays the story\'s commits onto its target in its worktree', async () => {
    const story = await project();
    story.write('feature.txt', 'a feature\n');
    story.commit('add a feature');
    story.write('other.txt', 'on main\n', story.root);
    const mainTip = story.commit('meanwhile on main', story.root);
    expect(await story.status()).toEqual({ aheadBy: 1, behindBy: 1, conflicts: [] });
    const tip = await rebase(story);
    expect(git(story.path, 'rev-parse', 'HEAD')).toBe(tip);
    expect(git(story.path, 'rev-parse', 'HEAD~1')).toBe(mainTip);
    expect(readFileSync(path.join(story.path, 'other.txt'), 'utf8')).toBe('on main\n');
    expect(git(story.root, 'rev-parse', 'main')).toBe(mainTip);
    expect(await story.status()).toEqual({ aheadBy: 1, behindBy: 0, conflicts: [] });
  });

  it('a conflict is MERGE_CONFLICT, and the branch, its files and its uncommitted work are as they were', async () => {
    const story = await project();
    story.write('app.txt', 'one\nstory\nthree\n');
    story.commit('story change');
    story.write('notes.txt', 'uncommitted\n');
    story.write('app.txt', 'one\nmain\nthree\n', story.root);
    story.commit('main change', story.root);
    const before = snapshot(story);
    await expect(rebase(story)).rejects.toMatchObject({ code: 'MERGE_CONFLICT', extensions: { files: ['app.txt'] } });
    expect(snapshot(story)).toEqual(before);
  });
});

describe('what an outside review tried', () => {
  it('a story worktree with a rebase of its own under way, or on a detached HEAD, is STORY_WORKTREE_BUSY, and its work stays as it is', async () => {
    const story = await project();
    story.write('a.txt', 'one\n');
    story.commit('first');
    story.write('a.txt', 'two\n');
    story.commit('second');
    git(story.path, '-c', 'sequence.editor=sed -i s/^pick/edit/', 'rebase', '--quiet', '-i', 'HEAD~2');
    story.write('precious.txt', 'the agent\'s own\n');
    story.write('other.txt', 'on main\n', story.root);
    story.commit('meanwhile on main', story.root);
    const before = snapshot(story);
    for (const strategy of ['SQUASH', 'REBASE'] as const) {
      await expect(story.land(strategy)).rejects.toMatchObject({ code: 'STORY_WORKTREE_BUSY', message: expect.stringContaining('has a rebase in progress') });
      expect(snapshot(story)).toEqual(before);
    }
    await expect(
      rebaseStory(story.root, await story.work(), { target: 'main', identity, saveUncommittedWork: () => story.worktrees.saveWork('S-1', story.path, 'x') }),
    ).rejects.toMatchObject({ code: 'STORY_WORKTREE_BUSY' });
    expect(snapshot(story)).toEqual(before);
    expect(readFileSync(path.join(story.path, 'precious.txt'), 'utf8')).toBe('the agent\'s own\n');

    // The honest twin: the rebase finished, on its branch again, the story lands.
    git(story.path, '-c', 'core.editor=true', 'rebase', '--continue');
    git(story.path, 'rebase', '--continue');
    await story.land('SQUASH');
    expect(readFileSync(path.join(story.root, 'precious.txt'), 'utf8')).toBe('the agent\'s own\n');

    git(story.path, 'checkout', '--quiet', '--detach');
    story.write('more.txt', 'more\n');
    await expect(story.land('SQUASH')).rejects.toMatchObject({ code: 'STORY_WORKTREE_BUSY', message: expect.stringContaining('detached HEAD') });
  });

  it('the target being rebased in the user\'s checkout (HEAD detached) is TARGET_DIRTY: its abort would undo the landing', async () => {
    const story = await project();
    story.write('feature.txt', 'a feature\n');
    story.commit('add a feature');
    story.write('x.txt', '1\n', story.root);
    story.commit('one', story.root);
    story.write('x.txt', '2\n', story.root);
    story.commit('two', story.root);
    git(story.root, '-c', 'sequence.editor=sed -i s/^pick/edit/', 'rebase', '--quiet', '-i', 'HEAD~2');
    const before = snapshot(story);
    await expect(story.land('SQUASH')).rejects.toMatchObject({ code: 'TARGET_DIRTY', extensions: { reason: 'OPERATION_IN_PROGRESS', checkout: story.root } });
    expect(snapshot(story)).toEqual(before);
  });

  it('a core.worktree an agent sets (shared, or for its worktree alone) is UNSAFE_GIT_CONFIG: no file elsewhere is read or written', async () => {
    const story = await project();
    story.write('feature.txt', 'a feature\n');
    story.commit('add a feature');
    story.write('agent.txt', 'uncommitted\n');
    const elsewhere = path.join(story.root, '..', `${path.basename(story.root)}-elsewhere`);
    mkdirSync(elsewhere);
    git(story.path, 'config', 'core.worktree', elsewhere);
    let before = snapshot(story);
    await expect(story.land('SQUASH')).rejects.toMatchObject({ code: 'UNSAFE_GIT_CONFIG', message: expect.stringContaining('config --unset core.worktree') });
    expect(snapshot(story)).toEqual(before);
    expect(existsSync(path.join(elsewhere, 'feature.txt'))).toBe(false);
    git(story.root, 'config', '--unset', 'core.worktree');

    // For the story's worktree alone, pointing at the user's checkout with their own uncommitted file in it.
    git(story.path, 'config', 'extensions.worktreeConfig', 'true');
    git(story.path, 'config', '--worktree', 'core.worktree', story.root);
    story.write('secret.env', 'the user\'s own\n', story.root);
    before = snapshot(story);
    await expect(story.land('SQUASH')).rejects.toMatchObject({ code: 'UNSAFE_GIT_CONFIG' });
    await expect(story.status()).rejects.toMatchObject({ code: 'UNSAFE_GIT_CONFIG' });
    await expect(story.worktrees.saveWork('S-1', story.path, 'x')).rejects.toMatchObject({ code: 'UNSAFE_GIT_CONFIG' });
    expect(snapshot(story)).toEqual(before);
    expect(git(story.root, 'log', '--all', '--format=%s')).not.toContain('save uncommitted work');

    // The honest twin: without it, the story lands, and only its own work.
    git(story.path, 'config', '--worktree', '--unset', 'core.worktree');
    await story.land('SQUASH');
    expect(git(story.root, 'show', '--name-only', '--format=', 'main').split('\n').sort()).toEqual(['agent.txt', 'feature.txt']);
  });

  it('a rebase moves the story\'s branch alone, whatever rebase.updateRefs says', async () => {
    const story = await project();
    story.write('a.txt', 'a\n');
    const first = story.commit('first');
    story.write('b.txt', 'b\n');
    story.commit('second');
    git(story.root, 'branch', 'user-branch', first);
    git(story.root, 'config', 'rebase.updateRefs', 'true');
    story.write('other.txt', 'on main\n', story.root);
    story.commit('meanwhile on main', story.root);
    await rebaseStory(story.root, await story.work(), { target: 'main', identity, saveUncommittedWork: () => story.worktrees.saveWork('S-1', story.path, 'x') });
    expect(git(story.root, 'rev-parse', 'user-branch')).toBe(first);
    expect(git(story.path, 'log', '--format=%s', '-3')).toBe('second\nfirst\nmeanwhile on main');
  });

  it('a tracked folder that becomes a file, and a file that becomes a folder, land into a clean checkout', async () => {
    const story = await project({ 'README.md': '# test\n', 'app.txt': 'one\n', 'd/x.txt': 'x\n' });
    git(story.path, 'rm', '-rq', 'd', 'app.txt');
    story.write('d', 'now a file\n');
    story.write('app.txt/inner.txt', 'now a folder\n');
    story.commit('swap');
    await story.land('SQUASH');
    expect(readFileSync(path.join(story.root, 'd'), 'utf8')).toBe('now a file\n');
    expect(readFileSync(path.join(story.root, 'app.txt', 'inner.txt'), 'utf8')).toBe('now a folder\n');
  });

  it('a check writes nothing even with core.splitIndex set by the agent', async () => {
    const story = await project();
    git(story.path, 'config', 'core.splitIndex', 'true');
    git(story.path, 'update-index', '--split-index');
    story.write('new.txt', 'uncommitted\n');
    const gitDir = git(story.path, 'rev-parse', '--absolute-git-dir');
    const files = () => [readdirSync(gitDir).sort(), readdirSync(path.join(story.root, '.git')).sort()];
    const before = { snapshot: snapshot(story), files: files() };
    await story.status();
    expect({ snapshot: snapshot(story), files: files() }).toEqual(before);
  });
});
