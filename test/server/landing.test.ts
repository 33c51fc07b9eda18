// Landing a story's work over the API, with real git throughout: mergeStory (each
// strategy, and every refusal leaving refs, files and status as they were), rebaseStory,
// createPullRequest against a bare repository as the remote and fake GitHub and GitLab
// APIs that speak their real protocol, and archiveStory.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { AgentPool } from '../../src/pool/agent-pool.js';
import { Store } from '../../src/store/store.js';
import { startFakeGitHub, startFakeGitLab } from '../support/fake-forge.js';
import { type GitHttpRemote, startGitHttpRemote } from '../support/git-http-server.js';
import { writeFakeAgentConfig } from '../support/fake-agent.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { git, tempDir } from '../support/temp.js';

const START = `mutation ($storyId: ID!, $prompt: String, $title: String) {
  startAgent(storyId: $storyId, prompt: $prompt, title: $title) { status }
}`;
const LANDING = `query ($storyId: ID!) {
  agent(storyId: $storyId) { status branch worktreePath baseBranch aheadBy behindBy conflicts mergedAt archived pullRequest { url number state } }
}`;
const MERGE = `mutation ($storyId: ID!, $strategy: MergeStrategy, $message: String, $into: String) {
  mergeStory(storyId: $storyId, strategy: $strategy, message: $message, into: $into) { aheadBy mergedAt }
}`;
const REBASE = `mutation ($storyId: ID!) { rebaseStory(storyId: $storyId) { aheadBy behindBy } }`;
const PULL_REQUEST = `mutation ($storyId: ID!, $title: String, $body: String, $draft: Boolean) {
  createPullRequest(storyId: $storyId, title: $title, body: $body, draft: $draft) { mergedAt pullRequest { url number state } }
}`;
const ARCHIVE = `mutation ($storyId: ID!, $deleteBranch: Boolean) {
  archiveStory(storyId: $storyId, deleteBranch: $deleteBranch) { archived worktreePath }
}`;

interface Landing {
  status: string;
  branch: string;
  worktreePath: string;
  baseBranch: string | null;
  aheadBy: number;
  behindBy: number;
  conflicts: string[];
  mergedAt: string | null;
  archived: boolean;
  pullRequest: { url: string; number: number; state: string } | null;
}

type Result = { data?: Record<string, unknown> | null; errors?: { message: string; extensions: Record<string, unknown> }[] };

/** What a story is, without its git reads (aheadBy, behindBy, conflicts): see {@link landing}. */
const FACTS = `query ($storyId: ID!) { agent(storyId: $storyId) { status branch worktreePath baseBranch mergedAt archived pullRequest { url number state } } }`;

/** Starts a run of the agent with `prompt` (its directives), waits for it to end, and returns the story's facts. */
async function runStory(server: TestServer, storyId: string, prompt: string, title?: string): Promise<Omit<Landing, 'aheadBy' | 'behindBy' | 'conflicts'>> {
  const started = (await server.request(START, { storyId, prompt, title })) as Result;
  expect(started.errors).toBeUndefined();
  await expect.poll(() => server.pool.get(storyId)?.status, { timeout: 30_000 }).toBe('COMPLETED');
  // The story's target is recorded beside the start.
  await server.pool.worktrees.settled();
  const facts = (await server.request(FACTS, { storyId })) as Result;
  expect(facts.errors).toBeUndefined();
  return facts.data!.agent as Landing;
}

async function landing(server: TestServer, storyId: string): Promise<Landing> {
  const result = (await server.request(LANDING, { storyId })) as Result;
  expect(result.errors).toBeUndefined();
  return result.data!.agent as Landing;
}

/** The one error of a result, with its code. */
function errorOf(result: Result): { message: string; extensions: Record<string, unknown> } {
  expect(result.errors, JSON.stringify(result)).toHaveLength(1);
  return result.errors![0]!;
}

/** Everything a refused operation must leave as it was. */
function snapshot(server: TestServer, worktreePath: string) {
  return {
    refs: git(server.root, 'for-each-ref', '--format=%(refname) %(objectname)'),
    root: git(server.root, 'status', '--porcelain=v2', '--untracked-files=all'),
    story: git(worktreePath, 'status', '--porcelain=v2', '--untracked-files=all'),
    objects: git(server.root, 'count-objects'),
  };
}

/**
 * The agent of these tests: `sh`, as a `text` agent, doing what its prompt says in the fake
 * agent's words (`run <command>; result`, `wait`, `record <file>`), without starting a Node
 * process per run. The work an agent does here is git in its worktree.
 */
const SH_AGENT = `[agent]
kind = "text"
command = "sh"
args = ['-c', '''
printf '%s\\n' "$1" | tr ';' '\\n' | while IFS= read -r step; do
  step=\${step# }
  case "$step" in
    "run "*) eval "\${step#run }" || exit 1 ;;
    result|"") ;;
    wait) sleep 600 ;;
    "record "*) env > "\${step#record }" ;;
    *) echo "$step" ;;
  esac
done
''', 'agent']
[pool]
stop_grace_seconds = 0.5
`;

/** A test server whose agent is {@link SH_AGENT}; `toml` adds sections. */
function landingServer(options: { toml?: string; env?: NodeJS.ProcessEnv } = {}): Promise<TestServer> {
  return startTestServer({ toml: `${SH_AGENT}${options.toml ?? ''}`, env: options.env });
}

/** A shell command for the agent's `run`: commit a file with a text. */
const commitFile = (file: string, text: string) => `run printf '${text}\\n' > ${file} && git add -A && git commit -qm 'write ${file}'`;

describe('mergeStory', () => {
  it('SQUASH lands the story on its target (main, the checked-out branch), its uncommitted work included', async () => {
    const server = await landingServer();
    await runStory(server, 'S-1', `${commitFile('feature.txt', 'a feature')}; run printf 'draft\\n' > notes.txt; result`, 'Add a feature');
    expect(await landing(server, 'S-1')).toMatchObject({ baseBranch: 'main', aheadBy: 1, behindBy: 0, conflicts: [], mergedAt: null, archived: false });

    const merged = (await server.request(MERGE, { storyId: 'S-1' })) as Result;
    expect(merged.errors).toBeUndefined();
    expect(merged.data!.mergeStory).toMatchObject({ aheadBy: 0, mergedAt: expect.any(String) });
    expect(git(server.root, 'log', '-1', '--format=%s', 'main')).toBe('S-1: Add a feature');
    expect(readFileSync(path.join(server.root, 'feature.txt'), 'utf8')).toBe('a feature\n');
    expect(readFileSync(path.join(server.root, 'notes.txt'), 'utf8')).toBe('draft\n');
    expect(git(server.root, 'status', '--porcelain', '--', 'feature.txt', 'notes.txt')).toBe('');
    expect(await landing(server, 'S-1')).toMatchObject({ aheadBy: 0, behindBy: 1, conflicts: [] });
    expect(server.logs.some((line) => /story S-1: landed on main \(SQUASH\)/.test(line))).toBe(true);
  });

  it('MERGE makes a merge commit with the message given; REBASE replays the commits; a follow-up lands only what is new', async () => {
    const server = await landingServer();
    await runStory(server, 'S-1', `${commitFile('a.txt', 'one')}; result`);
    await runStory(server, 'S-2', `${commitFile('b.txt', 'two')}; ${commitFile('c.txt', 'three')}; result`);
    const merged = (await server.request(MERGE, { storyId: 'S-1', strategy: 'MERGE', message: 'Merge the first story' })) as Result;
    expect(merged.errors).toBeUndefined();
    expect(git(server.root, 'log', '-1', '--format=%s%n%p', 'main').split('\n')[0]).toBe('Merge the first story');
    expect(git(server.root, 'rev-list', '--count', '--merges', 'main')).toBe('1');

    expect(await landing(server, 'S-2')).toMatchObject({ aheadBy: 2, behindBy: 2 });
    const rebased = (await server.request(MERGE, { storyId: 'S-2', strategy: 'REBASE' })) as Result;
    expect(rebased.errors).toBeUndefined();
    expect(git(server.root, 'log', '--format=%s', '-2', 'main')).toBe('write c.txt\nwrite b.txt');
    expect(git(server.root, 'rev-parse', 'main')).toBe(git(server.root, 'rev-parse', 'story/S-2'));

    // A follow-up run of the first story: only its new commit is ahead, and only it lands.
    await runStory(server, 'S-1', `${commitFile('a.txt', 'one, again')}; result`);
    expect(await landing(server, 'S-1')).toMatchObject({ aheadBy: 1, conflicts: [] });
    expect(((await server.request(MERGE, { storyId: 'S-1' })) as Result).errors).toBeUndefined();
    expect(readFileSync(path.join(server.root, 'a.txt'), 'utf8')).toBe('one, again\n');
    expect(errorOf((await server.request(MERGE, { storyId: 'S-1' })) as Result).extensions.code).toBe('NOTHING_TO_MERGE');
  });

  it('a conflict is MERGE_CONFLICT with the files, listed beforehand in conflicts, and changes nothing', async () => {
    const server = await landingServer();
    const story = await runStory(server, 'S-1', `${commitFile('README.md', 'the story')}; run printf 'x\\n' > new.txt; result`);
    writeFileSync(path.join(server.root, 'README.md'), 'main\n');
    git(server.root, 'commit', '-qam', 'main moves');
    expect(await landing(server, 'S-1')).toMatchObject({ aheadBy: 1, behindBy: 1, conflicts: ['README.md'] });
    const before = snapshot(server, story.worktreePath);
    for (const strategy of ['SQUASH', 'MERGE', 'REBASE']) {
      const error = errorOf((await server.request(MERGE, { storyId: 'S-1', strategy })) as Result);
      expect(error.extensions).toMatchObject({ code: 'MERGE_CONFLICT', files: ['README.md'] });
      expect(error.message).toMatch(/conflicts with main in 1 file\(s\) \(README\.md\)/);
      expect(snapshot(server, story.worktreePath)).toEqual(before);
    }
    const rebase = errorOf((await server.request(REBASE, { storyId: 'S-1' })) as Result);
    expect(rebase.extensions).toMatchObject({ code: 'MERGE_CONFLICT', files: ['README.md'] });
    expect(snapshot(server, story.worktreePath)).toEqual(before);
  });

  it('a checkout of the target with the user\'s uncommitted changes is TARGET_DIRTY, and they stay; committed, the story lands', async () => {
    const server = await landingServer();
    const story = await runStory(server, 'S-1', `${commitFile('feature.txt', 'a feature')}; result`);
    writeFileSync(path.join(server.root, 'README.md'), 'the user\'s own work\n');
    const before = snapshot(server, story.worktreePath);
    const error = errorOf((await server.request(MERGE, { storyId: 'S-1' })) as Result);
    expect(error.extensions).toMatchObject({ code: 'TARGET_DIRTY', files: ['README.md'], checkout: server.root, reason: 'UNCOMMITTED_CHANGES' });
    expect(snapshot(server, story.worktreePath)).toEqual(before);
    expect(readFileSync(path.join(server.root, 'README.md'), 'utf8')).toBe('the user\'s own work\n');

    git(server.root, 'commit', '-qam', 'the user commits');
    // rebaseStory takes in what main gained, in the story's worktree; then it lands.
    const rebased = (await server.request(REBASE, { storyId: 'S-1' })) as Result;
    expect(rebased.data?.rebaseStory).toEqual({ aheadBy: 1, behindBy: 0 });
    expect(readFileSync(path.join(story.worktreePath, 'README.md'), 'utf8')).toBe('the user\'s own work\n');
    expect(((await server.request(MERGE, { storyId: 'S-1' })) as Result).errors).toBeUndefined();
    expect(readFileSync(path.join(server.root, 'feature.txt'), 'utf8')).toBe('a feature\n');
  });

  it('refuses while the story runs (AGENT_ALREADY_RUNNING); the honest twin after the stop lands', async () => {
    const server = await landingServer();
    await server.request(START, { storyId: 'S-1', prompt: `${commitFile('feature.txt', 'a feature')}; wait` });
    await expect.poll(() => server.pool.get('S-1')?.status).toBe('RUNNING');
    await expect.poll(() => git(server.root, 'log', '-1', '--format=%s', 'story/S-1')).toBe('write feature.txt');
    for (const [query, variables] of [
      [MERGE, { storyId: 'S-1' }],
      [REBASE, { storyId: 'S-1' }],
      [PULL_REQUEST, { storyId: 'S-1' }],
      [ARCHIVE, { storyId: 'S-1' }],
    ] as const) {
      expect(errorOf((await server.request(query, variables)) as Result).extensions.code).toBe('AGENT_ALREADY_RUNNING');
    }
    await server.pool.stop('S-1');
    await expect.poll(async () => ((await server.request(MERGE, { storyId: 'S-1' })) as Result).errors?.[0]?.extensions.code).toBeUndefined();
    expect(readFileSync(path.join(server.root, 'feature.txt'), 'utf8')).toBe('a feature\n');
  });

  it('a start that comes while a landing runs waits for it: the run sees the story as landed', async () => {
    const server = await landingServer();
    await runStory(server, 'S-1', `${commitFile('feature.txt', 'a feature')}; result`);
    const merging = server.request(MERGE, { storyId: 'S-1' });
    const record = path.join(tempDir(), 'log.txt');
    const starting = server.request(START, { storyId: 'S-1', prompt: `run git log -1 --format=%s main > ${record}; result` });
    expect(((await merging) as Result).errors).toBeUndefined();
    expect(((await starting) as Result).errors).toBeUndefined();
    await expect.poll(() => server.pool.get('S-1')?.status, { timeout: 30_000 }).toBe('COMPLETED');
    expect(readFileSync(record, 'utf8').trim()).toBe('S-1: run printf \'a feature\\n\' > feature.txt && git add -A && git commit -qm \'write feature.txt\'; result');
  });

  it('without a target (made from a detached HEAD) it is NO_TARGET_BRANCH; into names one; a bad into is refused', async () => {
    const server = await landingServer();
    git(server.root, 'checkout', '--quiet', '--detach');
    await runStory(server, 'S-1', `${commitFile('feature.txt', 'a feature')}; result`);
    expect(await landing(server, 'S-1')).toMatchObject({ baseBranch: null, aheadBy: 0, behindBy: 0, conflicts: [] });
    expect(errorOf((await server.request(MERGE, { storyId: 'S-1' })) as Result).extensions.code).toBe('NO_TARGET_BRANCH');
    expect(errorOf((await server.request(MERGE, { storyId: 'S-1', into: 'no-such-branch' })) as Result).extensions.code).toBe('NO_TARGET_BRANCH');
    for (const into of ['main~1', '--force', 'main..x', 'refs/heads/../x']) {
      expect(errorOf((await server.request(MERGE, { storyId: 'S-1', into })) as Result).extensions.code, into).toBe('INVALID_ARGUMENT');
    }
    // Not into another story's branch while its agent works there; the honest twin lands into main.
    await server.request(START, { storyId: 'S-2', prompt: 'wait' });
    await expect.poll(() => server.pool.get('S-2')?.status).toBe('RUNNING');
    const busy = errorOf((await server.request(MERGE, { storyId: 'S-1', into: 'story/S-2' })) as Result);
    expect(busy.extensions).toMatchObject({ code: 'AGENT_ALREADY_RUNNING', storyId: 'S-2' });
    const mainBefore = git(server.root, 'rev-parse', 'main');
    expect(((await server.request(MERGE, { storyId: 'S-1', into: 'main' })) as Result).errors).toBeUndefined();
    expect(git(server.root, 'rev-parse', 'main^')).toBe(mainBefore);
    expect(git(server.root, 'show', 'main:feature.txt')).toBe('a feature');
  });
});

describe('the landing mutations, attacked', () => {
  it('refuse a request without the token, a story id that could escape, and a story never started, touching nothing; a message is only a message', async () => {
    const server = await landingServer();
    await runStory(server, 'S-1', `${commitFile('feature.txt', 'a feature')}; result`);
    const before = git(server.root, 'for-each-ref', '--format=%(refname) %(objectname)');
    const mutations: [string, string][] = [
      ['mergeStory', `mergeStory(storyId: $storyId) { storyId }`],
      ['rebaseStory', `rebaseStory(storyId: $storyId) { storyId }`],
      ['createPullRequest', `createPullRequest(storyId: $storyId) { storyId }`],
      ['archiveStory', `archiveStory(storyId: $storyId, deleteBranch: true) { storyId }`],
    ];
    for (const [name, field] of mutations) {
      const query = `mutation ($storyId: ID!) { ${field} }`;
      const anonymous = await fetch(server.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query, variables: { storyId: 'S-1' } }),
      });
      expect(anonymous.status, name).toBe(401);
      for (const [storyId, code] of [
        ['../S-1', 'INVALID_STORY_ID'],
        ['-S-1', 'INVALID_STORY_ID'],
        ['NEVER-1', 'AGENT_NOT_FOUND'],
      ]) {
        expect(errorOf((await server.request(query, { storyId })) as Result).extensions.code, `${name} ${storyId}`).toBe(code);
      }
    }
    expect(git(server.root, 'for-each-ref', '--format=%(refname) %(objectname)')).toBe(before);
    expect(existsSync(server.pool.get('S-1')!.worktreePath!)).toBe(true);

    // The honest twin, with a message that looks like options: it is the commit's message, nothing else.
    const message = '--amend -F /etc/passwd\n\n$(touch pwned)';
    expect(((await server.request(MERGE, { storyId: 'S-1', message })) as Result).errors).toBeUndefined();
    expect(git(server.root, 'log', '-1', '--format=%B', 'main')).toBe(message);
    expect(existsSync(path.join(server.root, 'pwned'))).toBe(false);
  });
});

/** A bare repository served over HTTP (as a forge serves one) as the project's `origin`; its folder. */
async function addRemote(root: string): Promise<GitHttpRemote> {
  const remote = await startGitHttpRemote();
  git(root, 'remote', 'add', 'origin', remote.url);
  await remote.git(root, 'push', '--quiet', 'origin', 'main');
  return remote;
}

const forgeToml = (kind: string, apiUrl: string, repo: string) =>
  `[forge]\nkind = "${kind}"\napi_url = "${apiUrl}"\nrepo = "${repo}"\ntoken_env = "AGENT_POOL_TEST_FORGE_TOKEN"\n`;

describe('createPullRequest', () => {
  it('GitHub: pushes the branch with a lease, opens one pull request, updates it after a follow-up, and sees it merged', async () => {
    const github = await startFakeGitHub({ token: 'ghp_test-token', repo: 'owner/app' });
    onTestFinished(() => github.close());
    const server = await landingServer({ toml: forgeToml('github', github.apiUrl, 'owner/app'), env: { ...process.env, AGENT_POOL_TEST_FORGE_TOKEN: 'ghp_test-token' } });
    const remote = (await addRemote(server.root)).dir;
    const envFile = path.join(tempDir(), 'env.json');
    await runStory(server, 'S-1', `${commitFile('feature.txt', 'a feature')}; record ${envFile}; result`, 'Add a feature');
    // The token is the server's, never an agent's.
    expect(readFileSync(envFile, 'utf8')).toMatch(/^PATH=/m);
    expect(readFileSync(envFile, 'utf8')).not.toMatch(/AGENT_POOL_TEST_FORGE_TOKEN|ghp_test-token/);

    const opened = (await server.request(PULL_REQUEST, { storyId: 'S-1', body: 'Why: a feature' })) as Result;
    expect(opened.errors).toBeUndefined();
    expect(opened.data!.createPullRequest).toMatchObject({ pullRequest: { number: 1, state: 'open', url: expect.stringContaining('/owner/app/pull/1') } });
    expect(git(remote, 'rev-parse', 'story/S-1')).toBe(git(server.root, 'rev-parse', 'story/S-1'));
    const post = github.requests.find((request) => request.method === 'POST')!;
    expect(post.body).toEqual({ head: 'story/S-1', base: 'main', title: 'Add a feature', body: 'Why: a feature', draft: false });
    expect(post.headers).toMatchObject({
      authorization: 'Bearer ghp_test-token',
      accept: 'application/vnd.github+json',
      'user-agent': expect.stringMatching(/^agent-pool\/\d+\.\d+\.\d+/),
    });

    // A follow-up run, then again: pushed, title updated, the same pull request.
    await runStory(server, 'S-1', `${commitFile('more.txt', 'more')}; result`);
    const again = (await server.request(PULL_REQUEST, { storyId: 'S-1', title: 'Add a feature, and more' })) as Result;
    expect(again.data!.createPullRequest).toMatchObject({ pullRequest: { number: 1, state: 'open' } });
    expect(git(remote, 'rev-parse', 'story/S-1')).toBe(git(server.root, 'rev-parse', 'story/S-1'));
    expect(github.pulls.find((pull) => pull.number === 1)?.title).toBe('Add a feature, and more');
    expect(github.requests.filter((request) => request.method === 'POST')).toHaveLength(1);

    github.setState(1, 'merged');
    const merged = (await server.request(PULL_REQUEST, { storyId: 'S-1' })) as Result;
    expect(merged.data!.createPullRequest).toMatchObject({ mergedAt: expect.any(String), pullRequest: { number: 1, state: 'merged' } });
    // What was pushed has landed: nothing is ahead, and the branch counts as merged.
    expect(await landing(server, 'S-1')).toMatchObject({ aheadBy: 0 });
    expect(((await server.request(ARCHIVE, { storyId: 'S-1', deleteBranch: true })) as Result).errors).toBeUndefined();

    // Started again on a new branch: it is pushed over the old one (agent-pool's last push is the lease), in a new pull request.
    await runStory(server, 'S-1', `${commitFile('again.txt', 'again')}; result`);
    const renewed = (await server.request(PULL_REQUEST, { storyId: 'S-1' })) as Result;
    expect(renewed.data?.createPullRequest).toMatchObject({ mergedAt: null, pullRequest: { number: 2, state: 'open' } });
    expect(git(remote, 'rev-parse', 'story/S-1')).toBe(git(server.root, 'rev-parse', 'story/S-1'));
    expect(server.logs.join('\n')).not.toContain('ghp_test-token');
  });

  it('GitHub: a closed pull request gives way to a new one; an open one made elsewhere (422) is adopted', async () => {
    const github = await startFakeGitHub({ token: 'ghp_test-token', repo: 'owner/app' });
    onTestFinished(() => github.close());
    const server = await landingServer({ toml: forgeToml('github', github.apiUrl, 'owner/app'), env: { ...process.env, AGENT_POOL_TEST_FORGE_TOKEN: 'ghp_test-token' } });
    const remote = await addRemote(server.root);
    await runStory(server, 'S-1', `${commitFile('feature.txt', 'a feature')}; result`);
    await server.request(PULL_REQUEST, { storyId: 'S-1' });
    github.setState(1, 'closed');
    const reopened = (await server.request(PULL_REQUEST, { storyId: 'S-1' })) as Result;
    expect(reopened.data!.createPullRequest).toMatchObject({ pullRequest: { number: 2, state: 'open' } });

    // A story whose pull request failed to open (the branch was pushed), then was opened by hand: adopted.
    await runStory(server, 'S-2', `${commitFile('b.txt', 'b')}; result`);
    github.answerNext({ status: 502, body: { message: 'Server Error' } });
    const failed = errorOf((await server.request(PULL_REQUEST, { storyId: 'S-2' })) as Result);
    expect(failed.extensions).toMatchObject({ code: 'FORGE_ERROR', status: 502 });
    const byHand = await fetch(`${github.apiUrl}/repos/owner/app/pulls`, {
      method: 'POST',
      headers: { authorization: 'Bearer ghp_test-token', 'user-agent': 'someone' },
      body: JSON.stringify({ head: 'story/S-2', base: 'main', title: 'opened by hand' }),
    });
    const made = (await byHand.json()) as { number: number };
    const adopted = (await server.request(PULL_REQUEST, { storyId: 'S-2' })) as Result;
    expect(adopted.data?.createPullRequest).toMatchObject({ pullRequest: { number: made.number, state: 'open' } });

    // A branch on the remote that agent-pool did not push is never overwritten: the lease fails.
    await runStory(server, 'S-3', `${commitFile('c.txt', 'c')}; result`);
    await remote.git(server.root, 'push', '--quiet', 'origin', 'main:story/S-3');
    const refused = errorOf((await server.request(PULL_REQUEST, { storyId: 'S-3' })) as Result);
    expect(refused.extensions).toMatchObject({ code: 'PUSH_FAILED', remote: 'origin', branch: 'story/S-3' });
    expect(refused.message).toMatch(/stale info|rejected/);
  });

  it('GitLab: a draft merge request with its real fields; a forge that is not configured is FORGE_NOT_CONFIGURED', async () => {
    const gitlab = await startFakeGitLab({ token: 'glpat-test', repo: 'group/sub/app' });
    onTestFinished(() => gitlab.close());
    const server = await landingServer({ toml: forgeToml('gitlab', gitlab.apiUrl, 'group/sub/app'), env: { ...process.env, AGENT_POOL_TEST_FORGE_TOKEN: 'glpat-test' } });
    await addRemote(server.root);
    await runStory(server, 'S-1', `${commitFile('feature.txt', 'a feature')}; result`, 'Add a feature');
    const opened = (await server.request(PULL_REQUEST, { storyId: 'S-1', draft: true })) as Result;
    expect(opened.errors).toBeUndefined();
    expect(opened.data!.createPullRequest).toMatchObject({ pullRequest: { number: 1, state: 'open' } });
    const post = gitlab.requests.find((request) => request.method === 'POST')!;
    expect(post.path).toBe('/api/v4/projects/group%2Fsub%2Fapp/merge_requests');
    expect(post.headers['private-token']).toBe('glpat-test');
    expect(post.body).toMatchObject({ source_branch: 'story/S-1', target_branch: 'main', title: 'Draft: Add a feature' });

    const plain = await landingServer();
    await runStory(plain, 'S-1', `${commitFile('feature.txt', 'a feature')}; result`);
    const error = errorOf((await plain.request(PULL_REQUEST, { storyId: 'S-1' })) as Result);
    expect(error.extensions.code).toBe('FORGE_NOT_CONFIGURED');
    expect(error.message).toMatch(/\[forge\] kind/);
  });
});

describe('pushing, as an outside review attacked it', () => {
  it('a remote on this machine is refused (its configuration would run programs here), one push URL among others too; git:// as well; the honest twin over HTTP pushes', async () => {
    const github = await startFakeGitHub({ token: 'ghp_test-token', repo: 'owner/app' });
    onTestFinished(() => github.close());
    const server = await landingServer({ toml: forgeToml('github', github.apiUrl, 'owner/app'), env: { ...process.env, AGENT_POOL_TEST_FORGE_TOKEN: 'ghp_test-token' } });
    const { dir: origin, url: originUrl } = await addRemote(server.root);
    const evil = path.join(tempDir(), 'evil.git');
    const ran = path.join(tempDir(), 'ran');
    execFileSync('git', ['init', '--quiet', '--bare', evil]);
    writeFileSync(path.join(evil, 'hooks', 'pre-receive'), `#!/bin/sh\nenv > ${ran}\n`, { mode: 0o755 });
    for (const [storyId, setUp] of [
      ['S-1', `git remote set-url origin ${evil}`],
      ['S-4', `git config --add remote.origin.pushurl "$(git remote get-url origin)" && git config --add remote.origin.pushurl ${evil}`],
      ['S-5', `git config url.${evil}.pushInsteadOf "$(git remote get-url origin)"`],
    ] as const) {
      await runStory(server, storyId, `${commitFile('feature.txt', 'a feature')}; run ${setUp}; result`);
      const refused = errorOf((await server.request(PULL_REQUEST, { storyId })) as Result);
      expect(refused.extensions.code, setUp).toBe('PUSH_FAILED');
      expect(refused.message).toMatch(/not https, http or ssh/);
      expect(existsSync(ran)).toBe(false);
      expect(git(origin, 'branch', '--list', `story/${storyId}`)).toBe('');
      // Agents share .git/config: the next story starts from the honest remote.
      git(server.root, 'remote', 'set-url', 'origin', originUrl);
      for (const key of ['remote.origin.pushurl', `url.${evil}.pushinsteadof`]) {
        try {
          git(server.root, 'config', '--unset-all', key);
        } catch {
          // not set by this case
        }
      }
    }
    await runStory(server, 'S-6', `${commitFile('feature.txt', 'a feature')}; result`);
    expect(((await server.request(PULL_REQUEST, { storyId: 'S-6' })) as Result).errors).toBeUndefined();
    expect(git(origin, 'rev-parse', 'story/S-6')).toBe(git(server.root, 'rev-parse', 'story/S-6'));

    const proxy = path.join(tempDir(), 'proxy.sh');
    writeFileSync(proxy, `#!/bin/sh\nenv > ${ran}\n`, { mode: 0o755 });
    await runStory(server, 'S-2', `${commitFile('b.txt', 'b')}; run git config core.gitProxy ${proxy} && git remote set-url origin git://127.0.0.1/owner/app.git; result`);
    const gitProtocol = errorOf((await server.request(PULL_REQUEST, { storyId: 'S-2' })) as Result);
    expect(gitProtocol.extensions.code).toBe('PUSH_FAILED');
    expect(existsSync(ran)).toBe(false);
  });
});

describe('archiveStory', () => {
  it('removes the worktree (work saved), keeps the branch, leaves the list; startAgent brings it back', async () => {
    const server = await landingServer();
    const story = await runStory(server, 'S-1', `${commitFile('feature.txt', 'a feature')}; run printf 'wip\\n' > wip.txt; result`);
    const archived = (await server.request(ARCHIVE, { storyId: 'S-1' })) as Result;
    expect(archived.data).toEqual({ archiveStory: { archived: true, worktreePath: null } });
    expect(existsSync(story.worktreePath)).toBe(false);
    expect(git(server.root, 'show', 'story/S-1:wip.txt')).toBe('wip');
    const list = (await server.request('{ agents { storyId } all: agents(includeArchived: true) { storyId archived } }')) as Result;
    expect(list.data).toEqual({ agents: [], all: [{ storyId: 'S-1', archived: true }] });

    await runStory(server, 'S-1', 'result');
    expect(await landing(server, 'S-1')).toMatchObject({ archived: false, aheadBy: 2 });
    expect(readFileSync(path.join(story.worktreePath, 'wip.txt'), 'utf8')).toBe('wip\n');
  });

  it('deleteBranch on an unmerged branch is BRANCH_NOT_MERGED and changes nothing; once merged, the branch goes', async () => {
    const server = await landingServer();
    const story = await runStory(server, 'S-1', `${commitFile('feature.txt', 'a feature')}; result`);
    const before = snapshot(server, story.worktreePath);
    const refused = errorOf((await server.request(ARCHIVE, { storyId: 'S-1', deleteBranch: true })) as Result);
    expect(refused.extensions).toMatchObject({ code: 'BRANCH_NOT_MERGED', branch: 'story/S-1' });
    expect(snapshot(server, story.worktreePath)).toEqual(before);
    expect(await landing(server, 'S-1')).toMatchObject({ archived: false });

    await server.request(MERGE, { storyId: 'S-1' });
    const archived = (await server.request(ARCHIVE, { storyId: 'S-1', deleteBranch: true })) as Result;
    expect(archived.errors).toBeUndefined();
    expect(git(server.root, 'branch', '--list', 'story/S-1')).toBe('');
    const gone = (await server.request('query { agent(storyId: "S-1") { branch worktreePath changes { filesChanged } commits { hash } aheadBy } }')) as Result;
    expect(gone).toEqual({ data: { agent: { branch: null, worktreePath: null, changes: null, commits: [], aheadBy: 0 } } });
    // Started again: a new branch from main, a new history.
    await runStory(server, 'S-1', 'result');
    expect(await landing(server, 'S-1')).toMatchObject({ branch: 'story/S-1', baseBranch: 'main', mergedAt: null, archived: false, aheadBy: 0, behindBy: 0 });

    // A landing the target lost (the user reset it) is not merged any more.
    await runStory(server, 'S-3', `${commitFile('c.txt', 'c')}; result`);
    const mainBefore = git(server.root, 'rev-parse', 'main');
    expect(((await server.request(MERGE, { storyId: 'S-3' })) as Result).errors).toBeUndefined();
    git(server.root, 'reset', '--quiet', '--hard', mainBefore);
    expect(errorOf((await server.request(ARCHIVE, { storyId: 'S-3', deleteBranch: true })) as Result).extensions.code).toBe('BRANCH_NOT_MERGED');

    // Nor one whose REBASE landing the user undid (the story's own branch has the commits, main not).
    await runStory(server, 'S-4', `${commitFile('d.txt', 'd')}; result`);
    const beforeRebase = git(server.root, 'rev-parse', 'main');
    expect(((await server.request(MERGE, { storyId: 'S-4', strategy: 'REBASE' })) as Result).errors).toBeUndefined();
    git(server.root, 'reset', '--quiet', '--hard', beforeRebase);
    expect(errorOf((await server.request(ARCHIVE, { storyId: 'S-4', deleteBranch: true })) as Result).extensions.code).toBe('BRANCH_NOT_MERGED');

    // A branch merged into main by hand counts as merged too.
    const other = await runStory(server, 'S-2', `${commitFile('b.txt', 'b')}; result`);
    git(server.root, 'merge', '--quiet', '--no-edit', 'story/S-2');
    expect(((await server.request(ARCHIVE, { storyId: 'S-2', deleteBranch: true })) as Result).errors).toBeUndefined();
    expect(existsSync(other.worktreePath)).toBe(false);
  });
});

describe('landing facts across a restart', () => {
  it('baseBranch, mergedAt, archived and the pull request come back from the database', async () => {
    const root = (await startTestServer()).root;
    writeFakeAgentConfig(root);
    const open = async () => {
      const store = Store.open(path.join(root, '.agent-pool', 'other.db'));
      const pool = await AgentPool.open({ projectRoot: root, store });
      return { store, pool };
    };
    let { store, pool } = await open();
    pool.start('S-1', `${commitFile('feature.txt', 'a feature')}; result`);
    await expect.poll(() => pool.get('S-1')?.status, { timeout: 30_000 }).toBe('COMPLETED');
    await expect.poll(() => pool.get('S-1')?.baseBranch).toBe('main');
    await pool.merge('S-1', { strategy: 'SQUASH' });
    await pool.archive('S-1');
    const before = pool.get('S-1')!;
    await pool.dispose();
    await store.close();

    ({ store, pool } = await open());
    onTestFinished(async () => {
      await pool.dispose();
      await store.close();
    });
    expect(pool.get('S-1')).toMatchObject({ baseBranch: 'main', mergedAt: before.mergedAt, archived: true });
    expect(pool.list()).toEqual([]);
    expect(await pool.landingStatus('S-1')).toEqual({ aheadBy: 0, behindBy: 1, conflicts: [] });
  });
});
