// Landing a story from its page, in a real browser (Debian's Chromium) against the real
// server, with real git: the Land section shows where the story's work stands against its
// target, merges it, tells a refusal in words a person understands, opens its pull request
// on a fake GitHub, and archives it.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { describe, expect, it, onTestFinished } from 'vitest';
import { launchBrowser } from '../support/browser.js';
import { startFakeGitHub } from '../support/fake-forge.js';
import { startGitHttpRemote } from '../support/git-http-server.js';
import { openDashboard, scriptArgs, scriptNextRuns, snap } from '../support/dashboard.js';
import { writeFakeAgentConfig } from '../support/fake-agent.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { git } from '../support/temp.js';

/** Where each run leaves its screenshots (ignored by git); `npm run screenshots` refreshes the docs'. */
/** A directive of the fake agent: write `file` with a line of `text` in the story's worktree and commit it. */
const commitFile = (file: string, text: string) => `run printf '${text}\\n' > ${file} && git add -A && git commit -qm 'Write ${file}'`;

/** Starts a story over the API and waits until its run has COMPLETED. */
async function runStory(server: TestServer, variables: { storyId: string; prompt: string; title?: string }): Promise<void> {
  const response = await server.request(
    'mutation ($storyId: ID!, $prompt: String, $title: String) { startAgent(storyId: $storyId, prompt: $prompt, title: $title) { status } }',
    variables,
  );
  expect(response.errors).toBeUndefined();
  await expect.poll(() => server.pool.get(variables.storyId)!.status).toBe('COMPLETED');
}

const land = (page: Page) => page.getByRole('region', { name: 'Land' });
const heading = (page: Page) => page.getByRole('heading', { level: 1 });

describe('landing a story from its page', () => {
  it('shows a conflict with main, and on Merge says which file conflicts in words, with the server\'s message kept, changing nothing', async (context) => {
    const browser = await launchBrowser(context);
    // The agent leaves its work uncommitted: the conflict counts it all the same.
    const server = await startTestServer({ agent: scriptArgs("run printf 'from the story\\n' > notes.txt; say I wrote notes.txt.; result") });
    await runStory(server, { storyId: 'CLASH-1', title: 'Write the notes', prompt: 'Write notes.txt.' });
    // Meanwhile main gets a notes.txt of its own, committed in the project's checkout.
    writeFileSync(path.join(server.root, 'notes.txt'), 'from main\n');
    git(server.root, 'add', 'notes.txt');
    git(server.root, 'commit', '--quiet', '-m', 'Notes on main');
    const worktree = server.pool.get('CLASH-1')!.worktreePath!;
    const before = {
      main: git(server.root, 'rev-parse', 'main'),
      branch: git(server.root, 'rev-parse', 'story/CLASH-1'),
      root: git(server.root, 'status', '--porcelain', '--untracked-files=all'),
      story: git(worktree, 'status', '--porcelain', '--untracked-files=all'),
    };
    expect(before.story).toBe('?? notes.txt');

    const { page } = await openDashboard(browser, server, '/stories/CLASH-1');
    const section = land(page);
    // Before anything is tried: behind main, the work not committed yet, and the file that would conflict.
    await expect.poll(() => section.innerText()).toContain('Into main: 0 ahead, 1 behind');
    expect(await section.innerText()).toContain('its work is not committed yet (1 file)');
    const conflicts = section.locator('.conflicts');
    expect(await conflicts.locator('p').innerText()).toBe('Merging now would conflict with main in 1 file:');
    expect(await conflicts.getByRole('listitem').allInnerTexts()).toEqual(['notes.txt']);

    await section.getByRole('button', { name: 'Merge' }).click();
    const alert = section.getByRole('alert');
    await alert.waitFor();
    expect(await alert.locator('p').innerText()).toBe(
      "Can't merge: these files conflict with main: notes.txt. Rebase the story or ask its agent to resolve them.",
    );
    await alert.getByText("The server's message").click();
    const serverMessage = await alert.locator('pre').innerText();
    expect(serverMessage).toMatch(/^MERGE_CONFLICT: story CLASH-1 conflicts with main/);
    expect(serverMessage).toContain('nothing was changed');
    await snap(page, 'dashboard-landing-conflict');

    // Nothing changed: main, the story's branch, the checkout and the story's uncommitted work.
    expect(git(server.root, 'rev-parse', 'main')).toBe(before.main);
    expect(git(server.root, 'rev-parse', 'story/CLASH-1')).toBe(before.branch);
    expect(git(server.root, 'status', '--porcelain', '--untracked-files=all')).toBe(before.root);
    expect(git(worktree, 'status', '--porcelain', '--untracked-files=all')).toBe(before.story);
    expect(readFileSync(path.join(server.root, 'notes.txt'), 'utf8')).toBe('from main\n');
    expect(await section.getByText(/^Merged /).count()).toBe(0);
    expect(server.pool.get('CLASH-1')!.status).toBe('COMPLETED');
  });

  it('merges a story from its page with Squash (main gets its file) and archives it: deleting an unmerged branch is refused; merged, it goes off the list; its address says it is archived, and a message brings it back', async (context) => {
    const browser = await launchBrowser(context);
    // While it runs, the section only says why it waits; a line on its terminal lets it finish.
    const server = await startTestServer({ agent: scriptArgs(`${commitFile('feature.txt', 'a feature')}; say Done.; echo-stdin 1; result`) });
    const mainBefore = git(server.root, 'rev-parse', 'main');
    const started = await server.request('mutation { startAgent(storyId: "ARC-1", title: "Add a feature", prompt: "Add the feature.") { status } }');
    expect(started.errors).toBeUndefined();
    const { page, requests } = await openDashboard(browser, server, '/stories/ARC-1');
    const section = land(page);
    await expect.poll(() => section.innerText()).toContain("wait until the story's run ends (it is RUNNING)");
    expect(await section.getByRole('button').count()).toBe(0);
    server.pool.sendInput('ARC-1', 'done\n');
    await expect.poll(() => heading(page).innerText()).toContain('COMPLETED');
    const worktree = server.pool.get('ARC-1')!.worktreePath!;
    await expect.poll(() => section.innerText()).toContain('Into main: 1 ahead, 0 behind');
    expect(await section.getByText(/^Merged /).count()).toBe(0);

    // Not merged yet: its branch is not deleted, nor is anything else done.
    await section.getByRole('checkbox', { name: 'also delete its branch (only if merged)' }).check();
    await section.getByRole('button', { name: 'Archive' }).click();
    await section.getByRole('alert').waitFor();
    expect(await section.getByRole('alert').locator('p').innerText()).toBe(
      "Not archived: the story's branch has work that is not merged, so it was kept and nothing changed. Land it first, or archive it without deleting its branch.",
    );
    expect(existsSync(worktree)).toBe(true);

    const squash = section.getByRole('radio', { name: 'Squash' });
    expect(await squash.isChecked()).toBe(true);
    await section.getByRole('radio', { name: 'Merge commit' }).check();
    await squash.check();
    await section.getByRole('button', { name: 'Merge' }).click();
    await section.getByRole('status').filter({ hasText: 'Merged into main (squashed).' }).waitFor();
    await section.getByText(/^Merged \d/).waitFor();
    // Ahead and behind are read again after the merge: the squashed commit is main's, not the story's.
    await expect.poll(() => section.innerText()).toContain('Into main: 0 ahead, 1 behind');
    // Real git: main has one new commit, the story's, with its file; its checkout followed.
    expect(git(server.root, 'rev-list', '--count', `${mainBefore}..main`)).toBe('1');
    expect(git(server.root, 'log', '-1', '--format=%s', 'main')).toBe('ARC-1: Add a feature');
    expect(readFileSync(path.join(server.root, 'feature.txt'), 'utf8')).toBe('a feature\n');
    expect(git(server.root, 'status', '--porcelain', '--', 'feature.txt')).toBe('');
    await snap(page, 'dashboard-landing');
    // A reload still says so; and the page loaded nothing from elsewhere.
    await page.reload();
    await land(page).getByText(/^Merged \d/).waitFor();
    expect(requests.filter((url) => !url.startsWith(server.server.origin))).toEqual([]);

    await section.getByRole('checkbox', { name: 'also delete its branch (only if merged)' }).check();
    await section.getByRole('button', { name: 'Archive' }).click();
    await page.locator('.archived-note').waitFor();
    expect(await heading(page).innerText()).toContain('Archived');
    expect(await page.locator('.archived-note').innerText()).toContain('Starting it again');
    expect(await land(page).count()).toBe(0);
    expect(existsSync(worktree)).toBe(false);
    expect(git(server.root, 'branch', '--list', 'story/ARC-1')).toBe('');

    // The list leaves it out; its address still opens it, archived.
    await page.getByRole('link', { name: '← All stories' }).click();
    await page.getByRole('region', { name: 'Stories' }).getByText('No story yet: start one above.').waitFor();
    expect(await page.getByRole('banner').innerText()).toContain('0 stories');
    await page.goto(`${server.server.origin}/stories/ARC-1`);
    await page.locator('.archived-note').waitFor();
    expect(await heading(page).innerText()).toContain('Add a feature');
    await page.getByRole('region', { name: 'Changes' }).getByText('Archived: its worktree was removed.').waitFor();

    // A message starts it again: it is back, on the list too.
    scriptNextRuns(server, 'say Back at it.; result');
    await page.getByLabel('Message').fill('One more thing.');
    await page.getByRole('button', { name: /^(Send|Run again)$/ }).click();
    await expect.poll(() => heading(page).innerText()).toContain('COMPLETED');
    await expect.poll(() => page.locator('.archived-note').count()).toBe(0);
    expect(await heading(page).innerText()).not.toContain('Archived');
    await page.getByRole('link', { name: '← All stories' }).click();
    await page.getByRole('row').filter({ hasText: 'ARC-1' }).waitFor();
  });

  it('opens a pull request from the page once a forge is set: first it says what to set; then a link with its state, and "Update pull request"', async (context) => {
    const browser = await launchBrowser(context);
    const github = await startFakeGitHub({ token: 'ghp_test-token', repo: 'owner/app' });
    onTestFinished(() => github.close());
    const script = scriptArgs(`${commitFile('feature.txt', 'a feature')}; result`);
    const server = await startTestServer({ agent: script, env: { ...process.env, AGENT_POOL_TEST_FORGE_TOKEN: 'ghp_test-token' } });
    const { url, dir: remote, git: gitAsync } = await startGitHttpRemote();
    git(server.root, 'remote', 'add', 'origin', url);
    await gitAsync(server.root, 'push', '--quiet', 'origin', 'main');
    await runStory(server, { storyId: 'PR-1', title: 'Add a feature', prompt: 'Add the feature.' });
    const { page } = await openDashboard(browser, server, '/stories/PR-1');
    const section = land(page);
    await expect.poll(() => section.innerText()).toContain('1 ahead');

    // No forge configured: the server's message says what to set.
    await section.getByRole('button', { name: 'Create pull request' }).click();
    await section.getByRole('alert').waitFor();
    const refusal = await section.getByRole('alert').locator('p').innerText();
    expect(refusal).toMatch(/^Can't open a pull request: no forge is configured/);
    expect(refusal).toContain('[forge] kind');

    // Set, in agent-pool.toml (read at every operation): it opens one.
    writeFakeAgentConfig(server.root, {
      agent: script,
      tables: `[forge]\nkind = "github"\napi_url = "${github.apiUrl}"\nrepo = "owner/app"\ntoken_env = "AGENT_POOL_TEST_FORGE_TOKEN"\n`,
    });
    await section.getByRole('button', { name: 'Create pull request' }).click();
    await section.getByRole('status').filter({ hasText: 'Pull request #1 opened.' }).waitFor();
    expect(await section.getByRole('alert').count()).toBe(0);
    const link = section.getByRole('link', { name: 'Pull request #1' });
    expect(await link.getAttribute('href')).toBe(github.pulls[0]!.html_url);
    expect(await section.locator('.pull-request').innerText()).toContain('open');
    expect(git(remote, 'rev-parse', 'story/PR-1')).toBe(git(server.root, 'rev-parse', 'story/PR-1'));

    // Merged on GitHub: Update reads its state again.
    github.setState(1, 'merged');
    await section.getByRole('button', { name: 'Update pull request' }).click();
    await section.getByRole('status').filter({ hasText: 'Pull request #1 is merged.' }).waitFor();
    expect(await section.locator('.pull-request').innerText()).toContain('merged');
    await section.getByText(/^Merged \d/).waitFor();
    expect(github.requests.filter((request) => request.method === 'POST')).toHaveLength(1);
  });
});
