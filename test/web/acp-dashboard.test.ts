// The dashboard with an agent over the Agent Client Protocol (kind "acp"), in a real browser
// (Debian's Chromium) against the real server: the agent's plan as a checklist in the
// Events, its own answers to an approval as buttons by their names, and a new turn in its
// live session from the message box. The agent is test/fixtures/fake-acp-agent.mjs, whose
// prompt is its script.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { launchBrowser } from '../support/browser.js';
import { openDashboard, snap } from '../support/dashboard.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { tempDir } from '../support/temp.js';

const FAKE_ACP_AGENT = fileURLToPath(new URL('../fixtures/fake-acp-agent.mjs', import.meta.url));

/** agent-pool.toml whose one profile is the fake ACP agent, asking before its edits, its session open 30 s after a turn. */
function acpConfig(): string {
  return [
    '[agent]',
    'kind = "acp"',
    'command = "node"',
    `args = [${JSON.stringify(FAKE_ACP_AGENT)}]`,
    'permission_mode = "default"',
    'keep_open_seconds = 30',
    // Its sessions in this test's own directory, not the machine's temp dir.
    `env = { FAKE_ACP_STATE = ${JSON.stringify(tempDir('fake-acp-state-'))} }`,
    '',
    '[pool]',
    'stop_grace_seconds = 2',
    '',
  ].join('\n');
}

const heading = (page: Page) => page.getByRole('heading', { level: 1 });
const events = (page: Page) => page.getByRole('region', { name: 'Events' }).getByRole('listitem');
/** The event whose text (not its collapsed raw line) is exactly `text`. */
const eventWithText = (page: Page, text: string) => events(page).filter({ has: page.getByText(text, { exact: true }) });
const approvals = (page: Page) => page.getByRole('region', { name: /^Approval: / });

async function stopStory(server: TestServer, storyId: string): Promise<void> {
  const response = await server.request('mutation ($storyId: ID!) { stopAgent(storyId: $storyId) { status } }', { storyId });
  expect(response.errors).toBeUndefined();
  await expect.poll(() => server.pool.get(storyId)!.status, { timeout: 20_000 }).not.toBe('RUNNING');
}

describe('the dashboard with an ACP agent', () => {
  it("shows the agent's plan as a checklist, answers its approval with one of its own options (Always allow), and sends a new turn from the page", async (context) => {
    const browser = await launchBrowser(context);
    const server = await startTestServer({ toml: acpConfig() });
    const prompt = ['plan Read the code|Write the fix|Run the tests', 'write out.txt hello', 'say I wrote out.txt.'].join('\n');
    const started = await server.request(
      'mutation ($storyId: ID!, $prompt: String, $title: String) { startAgent(storyId: $storyId, prompt: $prompt, title: $title) { status } }',
      { storyId: 'S-1', prompt, title: 'Fix the bug' },
    );
    expect(started.errors).toBeUndefined();
    const { page } = await openDashboard(browser, server, '/stories/S-1');

    // The plan: one event, its entries in order, each marked pending.
    const plan = events(page).filter({ has: page.getByRole('list', { name: 'Plan' }) });
    await plan.waitFor({ timeout: 30_000 });
    const entries = plan.getByRole('list', { name: 'Plan' }).getByRole('listitem');
    // Each entry's status is read out before it (its mark is for the eye only).
    expect(await entries.evaluateAll((items) => items.map((item) => item.textContent))).toEqual([
      '○pending: Read the code',
      '○pending: Write the fix',
      '○pending: Run the tests',
    ]);
    expect(await plan.innerText()).toContain('0/3 done');

    // The approval: the agent's four options, by their names, and no Allow / Deny of ours.
    const approval = approvals(page);
    await approval.waitFor({ timeout: 30_000 });
    expect(await approval.innerText()).toContain('out.txt');
    const offered = approval.getByRole('group', { name: 'Answers the agent offers' }).getByRole('button');
    expect(await offered.allInnerTexts()).toEqual(['Allow', 'Always allow', 'Reject', 'Never']);
    expect(await approval.getByRole('button', { name: 'Deny', exact: true }).count()).toBe(0);
    expect(await approval.getByRole('checkbox').count()).toBe(0);
    const worktree = server.pool.get('S-1')!.worktreePath!;
    expect(existsSync(path.join(worktree, 'out.txt'))).toBe(false);
    await snap(page, 'dashboard-acp-approval');

    await approval.getByRole('button', { name: 'Always allow', exact: true }).click();
    await expect.poll(() => approvals(page).count()).toBe(0);
    await expect.poll(() => existsSync(path.join(worktree, 'out.txt'))).toBe(true);
    expect(readFileSync(path.join(worktree, 'out.txt'), 'utf8')).toBe('hello');
    await eventWithText(page, 'allowed').waitFor();
    await eventWithText(page, 'I wrote out.txt.').waitFor();
    expect(await page.getByRole('alert').count()).toBe(0);

    // The turn ended; the session stays open for a message (keep_open_seconds), sent from the page.
    await expect.poll(() => server.pool.get('S-1')!.status).toBe('RUNNING');
    const send = page.getByRole('button', { name: 'Send', exact: true });
    expect(await send.isEnabled()).toBe(true);
    await page.getByLabel('Message').fill('say done here');
    await send.click();
    await eventWithText(page, 'done here').waitFor({ timeout: 30_000 });
    expect(await page.getByLabel('Message').inputValue()).toBe('');
    expect(await page.getByRole('alert').count()).toBe(0);
    expect(await heading(page).innerText()).toContain('Fix the bug');

    await stopStory(server, 'S-1');
  });
});
