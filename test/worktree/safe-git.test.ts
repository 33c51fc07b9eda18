// What an agent plants in the repository's configuration (shared by every worktree) must
// never run in the server's own git. Each key is planted as an agent would, the server's
// git path that would run it is taken, and a marker file shows whether it ran; each beside
// the honest twin that still works.
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readdirSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { defaultConfig } from '../../src/config/config.js';
import { overridesFor, safeGit } from '../../src/worktree/safe-git.js';
import { readChanges, readCommits, readDiff, type StoryWork } from '../../src/worktree/story-changes.js';
import { Worktrees } from '../../src/worktree/worktrees.js';
import { git, tempDir, tempRepo } from '../support/temp.js';

const config = () => defaultConfig().worktree;

/** A command that leaves a marker where it ran; the test asserts it never exists. */
function planted(marker: string): string {
  return `touch ${marker}; cat`;
}

async function storyWith(root: string, storyId = 'S-1'): Promise<{ worktrees: Worktrees; work: StoryWork; worktree: string }> {
  const worktrees = new Worktrees(root);
  const made = await worktrees.ensure(storyId, config());
  const work = (await worktrees.storyWork(storyId, made.branch, made.path))!;
  return { worktrees, work, worktree: made.path };
}

describe('git that the server runs', () => {
  it('does not run a core.fsmonitor an agent set, when it reads changes and makes a worktree', async () => {
    const root = tempRepo();
    const marker = path.join(tempDir(), 'fsmonitor-ran');
    const { work, worktree } = await storyWith(root);
    git(root, 'config', 'core.fsmonitor', `touch ${marker}; false`);
    writeFileSync(path.join(worktree, 'new.txt'), 'new\n');
    const changes = await readChanges(root, work);
    await new Worktrees(root).ensure('S-2', config());
    expect(existsSync(marker)).toBe(false);
    expect(changes.files.map((file) => file.path)).toEqual(['new.txt']);
  });

  it('does not run hooks an agent planted (post-checkout on a new worktree; pre-commit, post-commit when work is saved)', async () => {
    const root = tempRepo();
    const markers = tempDir();
    const hooks = path.join(root, '.git', 'hooks');
    mkdirSync(hooks, { recursive: true });
    for (const hook of ['post-checkout', 'pre-commit', 'post-commit', 'reference-transaction']) {
      writeFileSync(path.join(hooks, hook), `#!/bin/sh\ntouch ${path.join(markers, hook)}\n`);
      chmodSync(path.join(hooks, hook), 0o755);
    }
    const { worktrees, worktree } = await storyWith(root);
    writeFileSync(path.join(worktree, 'work.txt'), 'work\n');
    const removed = await worktrees.remove('S-1', config());
    expect(readdirSync(markers)).toEqual([]);
    // The honest twin: the work was saved on the branch all the same.
    expect(removed.savedCommit).toMatch(/^[0-9a-f]{40}$/);
    expect(git(root, 'show', '--name-only', '--format=', 'story/S-1')).toBe('work.txt');
  });

  it('does not run clean, smudge or process filters an agent planted with a .gitattributes entry', async () => {
    const root = tempRepo();
    const markers = tempDir();
    writeFileSync(path.join(root, '.gitattributes'), '*.txt filter=evil\n*.dat filter=proc\n');
    writeFileSync(path.join(root, 'kept.txt'), 'kept\n');
    git(root, 'add', '--all');
    git(root, 'commit', '--quiet', '-m', 'attributes');
    // Planted after the commit, as an agent would plant them.
    git(root, 'config', 'filter.evil.clean', planted(path.join(markers, 'clean')));
    git(root, 'config', 'filter.evil.smudge', planted(path.join(markers, 'smudge')));
    git(root, 'config', 'filter.evil.required', 'true');
    git(root, 'config', 'filter.proc.process', `touch ${path.join(markers, 'process')}`);

    const { work, worktree } = await storyWith(root); // a checkout: smudge
    writeFileSync(path.join(worktree, 'changed.txt'), 'changed\n'); // a read adds it: clean
    writeFileSync(path.join(worktree, 'data.dat'), 'data\n');
    const changes = await readChanges(root, work);
    const diff = await readDiff(root, work);
    expect(readdirSync(markers)).toEqual([]);
    expect(changes.files.map((file) => file.path).sort()).toEqual(['changed.txt', 'data.dat']);
    expect(diff).toContain('+changed');
  });

  it('runs no external diff or text conversion an agent configured (diff.external, diff.<driver>.command, textconv)', async () => {
    const root = tempRepo();
    const markers = tempDir();
    git(root, 'config', 'diff.external', `sh -c 'touch ${path.join(markers, 'external')}'`);
    git(root, 'config', 'diff.evil.command', `sh -c 'touch ${path.join(markers, 'command')}'`);
    git(root, 'config', 'diff.conv.textconv', `sh -c 'touch ${path.join(markers, 'textconv')}; cat "$1"' -`);
    writeFileSync(path.join(root, '.gitattributes'), '*.md diff=evil\n*.txt diff=conv\n');
    writeFileSync(path.join(root, 'notes.txt'), 'one\n');
    git(root, 'add', '--all');
    git(root, 'commit', '--quiet', '-m', 'attributes');
    const { work, worktree } = await storyWith(root);
    writeFileSync(path.join(worktree, 'README.md'), '# changed\n');
    writeFileSync(path.join(worktree, 'notes.txt'), 'two\n');
    const diff = await readDiff(root, work);
    const oneFile = await readDiff(root, work, 'notes.txt');
    git(worktree, 'add', '--all');
    git(worktree, 'commit', '--quiet', '-m', 'story work');
    const commits = await readCommits(root, work);
    expect(readdirSync(markers)).toEqual([]);
    expect(diff).toContain('+# changed');
    expect(oneFile).toContain('+two');
    expect(commits.map((commit) => commit.subject)).toEqual(['story work']);
  });

  it('disarms a filter planted after the configuration was last read for a start (its cache sees the change)', async () => {
    const root = tempRepo();
    const marker = path.join(tempDir(), 'smudge-ran');
    writeFileSync(path.join(root, '.gitattributes'), '*.txt filter=late\n');
    writeFileSync(path.join(root, 'kept.txt'), 'kept\n');
    git(root, 'add', '--all');
    git(root, 'commit', '--quiet', '-m', 'attributes');
    const worktrees = new Worktrees(root);
    await worktrees.ensure('S-1', config()); // reads the configuration, and remembers it
    git(root, 'config', 'filter.late.smudge', `touch ${marker}; cat`);
    git(root, 'config', 'filter.late.required', 'true');
    const second = await worktrees.ensure('S-2', config());
    expect(existsSync(marker)).toBe(false);
    expect(readdirSync(second.path)).toContain('kept.txt');
  });

  it('merges with the built-in merge, not a merge driver an agent configured', async () => {
    const root = tempRepo({ files: { 'f.m': 'a\nb\nc\nd\ne\n' } });
    const marker = path.join(tempDir(), 'merge-driver-ran');
    writeFileSync(path.join(root, '.gitattributes'), '*.m merge=evil\n');
    git(root, 'add', '--all');
    git(root, 'commit', '--quiet', '-m', 'attributes');
    git(root, 'config', 'merge.evil.driver', `touch ${marker}; false`);
    // Both sides change f.m, on lines far apart: a content merge, which a driver would do.
    git(root, 'branch', 'side');
    writeFileSync(path.join(root, 'f.m'), 'A\nb\nc\nd\ne\n');
    git(root, 'commit', '--quiet', '-am', 'main');
    git(root, 'checkout', '--quiet', 'side');
    writeFileSync(path.join(root, 'f.m'), 'a\nb\nc\nd\nE\n');
    git(root, 'commit', '--quiet', '-am', 'side');
    git(root, 'checkout', '--quiet', 'main');
    const merged = await (await safeGit(root)).raw(['merge-tree', '--write-tree', 'main', 'side']);
    expect(existsSync(marker)).toBe(false);
    const tree = merged.trim();
    expect(tree).toMatch(/^[0-9a-f]{40}$/);
    expect(git(root, 'show', `${tree}:f.m`)).toBe('A\nb\nc\nd\nE');
  });

  it('asks no credential helper an agent configured, and runs no core.sshCommand', async () => {
    const root = tempRepo();
    const markers = tempDir();
    git(root, 'config', 'credential.helper', `!touch ${path.join(markers, 'helper')}; echo`);
    git(root, 'config', 'credential.http://127.0.0.1.helper', `!touch ${path.join(markers, 'url-helper')}; echo`);
    git(root, 'config', 'core.sshCommand', `touch ${path.join(markers, 'ssh')}; false`);
    // A forge that wants credentials, on loopback.
    const forge = createServer((_request, response) => {
      response.writeHead(401, { 'www-authenticate': 'Basic realm="test"' }).end();
    });
    await new Promise<void>((resolve) => forge.listen(0, '127.0.0.1', resolve));
    onTestFinished(() => new Promise<void>((resolve) => forge.close(() => resolve())));
    const { port } = forge.address() as AddressInfo;
    const gitOf = await safeGit(root, { env: { PATH: process.env.PATH!, HOME: tempDir(), GIT_TERMINAL_PROMPT: '0' } });
    // Both fail as git fails without credentials or a reachable host (not as a refused call).
    await expect(gitOf.raw(['ls-remote', `http://127.0.0.1:${port}/repo.git`])).rejects.toThrow(/could not read Username|Authentication failed/);
    await expect(gitOf.raw(['ls-remote', 'ssh://git@127.0.0.1:1/repo.git'])).rejects.toThrow(/Could not read from remote repository/);
    expect(readdirSync(markers)).toEqual([]);
  });

  it('signs nothing with a gpg.program an agent configured when it saves work', async () => {
    const root = tempRepo();
    const marker = path.join(tempDir(), 'gpg-ran');
    git(root, 'config', 'commit.gpgSign', 'true');
    git(root, 'config', 'gpg.program', `sh -c 'touch ${marker}; exit 1'`);
    const { worktrees, worktree } = await storyWith(root);
    writeFileSync(path.join(worktree, 'work.txt'), 'work\n');
    const removed = await worktrees.remove('S-1', config());
    expect(existsSync(marker)).toBe(false);
    expect(removed.savedCommit).toMatch(/^[0-9a-f]{40}$/);
  });

  it('disarms only the repository\'s own keys: the user\'s global filters (such as git LFS) stay', () => {
    const list = [
      'global', 'filter.lfs.clean\ngit-lfs clean -- %f',
      'local', 'filter.Evil.clean\ntouch x',
      'worktree', 'merge.m.driver\ntouch y',
      'local', 'core.bare\nfalse',
      '',
    ].join('\0');
    expect(overridesFor(list)).toEqual([
      'filter.Evil.clean=',
      'filter.Evil.required=false',
      'merge.m.driver=git merge-file --marker-size=%L %A %O %B',
    ]);
  });
});

describe('reads of a story\'s work', () => {
  it('write nothing to the repository: .git/objects does not grow over ten reads of a 5 MB untracked file', async () => {
    const root = tempRepo();
    const { work, worktree } = await storyWith(root);
    writeFileSync(path.join(worktree, 'big.bin'), Buffer.alloc(5 * 1024 * 1024, 'agent-pool '));
    const objects = path.join(root, '.git', 'objects');
    const size = (): number => {
      let total = 0;
      for (const entry of readdirSync(objects, { recursive: true, encoding: 'utf8' })) {
        const stats = statSync(path.join(objects, entry));
        if (stats.isFile()) total += stats.size;
      }
      return total;
    };
    const before = size();
    for (let i = 0; i < 10; i++) {
      const changes = await readChanges(root, work);
      expect(changes.files.map((file) => file.path)).toEqual(['big.bin']);
    }
    expect(size()).toBe(before);
    expect(readdirSync(path.join(root, '.git', 'worktrees', 'S-1')).filter((name) => name.startsWith('agent-pool-index'))).toEqual([]);
  });

  it('keep only the first MiB of a 96 MB diff in memory, and say how much was left out', async () => {
    const root = tempRepo();
    const { work, worktree } = await storyWith(root);
    const line = Buffer.from(`${'generated output of an agent '.repeat(4)}\n`);
    const chunk = Buffer.concat(Array.from({ length: Math.ceil((1024 * 1024) / line.length) }, () => line));
    const file = openSync(path.join(worktree, 'generated.txt'), 'w');
    for (let i = 0; i < 96; i++) writeSync(file, chunk);
    closeSync(file);
    global.gc?.();
    const before = process.memoryUsage().rss;
    let peak = before;
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss);
    }, 5);
    try {
      const diff = await readDiff(root, work, 'generated.txt');
      const note = /\[agent-pool: diff cut at 1048576 bytes; (\d+) more bytes not shown\]\n$/.exec(diff);
      expect(Number(note?.[1])).toBeGreaterThan(90 * 1024 * 1024);
    } finally {
      clearInterval(sampler);
    }
    // Holding the whole diff costs about three times its size (chunks, joined, as text).
    expect((peak - before) / 1024 / 1024).toBeLessThan(60);
  }, 60_000);
});
