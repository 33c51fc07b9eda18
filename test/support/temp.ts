import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { onTestFinished } from 'vitest';

/** A temp dir removed when the current test finishes. */
export function tempDir(prefix = 'agent-pool-test-'): string {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Runs git in `cwd` and returns its trimmed stdout. */
export function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

/**
 * A new git repository in a temp dir with one commit, and its own git identity (the tests
 * never rely on the machine's). Removed when the test finishes.
 */
export function tempRepo(options: { commit?: boolean; files?: Record<string, string> } = {}): string {
  const root = tempDir('agent-pool-repo-');
  git(root, 'init', '--quiet', '--initial-branch=main');
  git(root, 'config', 'user.name', 'Test Author');
  git(root, 'config', 'user.email', 'test@example.com');
  git(root, 'config', 'commit.gpgsign', 'false');
  if (options.commit ?? true) {
    for (const [file, text] of Object.entries(options.files ?? { 'README.md': '# test project\n' })) {
      writeFileSync(path.join(root, file), text);
    }
    git(root, 'add', '--all');
    git(root, 'commit', '--quiet', '-m', 'initial commit');
  }
  return root;
}
