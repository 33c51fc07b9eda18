import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { writeFakeAgentConfig } from '../support/fake-agent.js';
import {
  AGENT_EVENTS,
  type EventResult,
  isTerminalResult,
  readEvents,
  startTestServer,
  type TestServer,
} from '../support/server.js';
import { git, tempDir } from '../support/temp.js';

const code = (result: { errors?: Array<{ extensions?: Record<string, unknown> }> }) => result.errors?.[0]?.extensions?.code;

/** Starts (or continues) a story and waits for its run to end. */
async function runToEnd(server: TestServer, mutation: string, variables: Record<string, unknown>): Promise<EventResult[]> {
  const storyId = String(variables.storyId);
  const afterSeq = server.pool.get(storyId)?.lastSeq ?? 0;
  const events = server.wsClient().iterate({ query: AGENT_EVENTS, variables: { storyId, afterSeq } });
  const result = await server.request(mutation, variables);
  expect(result.errors).toBeUndefined();
  return readEvents(events, isTerminalResult);
}

const START = 'mutation ($storyId: ID!, $prompt: String) { startAgent(storyId: $storyId, prompt: $prompt) { status } }';
const CONTINUE = 'mutation ($storyId: ID!, $prompt: String!) { continueAgent(storyId: $storyId, prompt: $prompt) { status } }';

describe('continueAgent', () => {
  it('resumes the session of the latest run that reported one, in the same worktree, as a new run', async () => {
    const server = await startTestServer();
    const first = await runToEnd(server, START, { storyId: 'S-1', prompt: 'say first' });
    const sessionId = (first.find((event) => event.__typename === 'AgentDoneEvent')!).sessionId!;
    const record = path.join(tempDir(), 'argv.json');

    const second = await runToEnd(server, CONTINUE, { storyId: 'S-1', prompt: `record ${record}; say second` });
    const seen = JSON.parse(readFileSync(record, 'utf8'));
    expect(seen.argv).toEqual([
      '-p',
      '--output-format',
      'stream-json',
      '--verbose',
      '--permission-mode',
      'bypassPermissions',
      '--resume',
      sessionId,
      '--',
      `record ${record}; say second`,
    ]);
    expect(seen.cwd).toBe(server.pool.get('S-1')!.worktreePath);
    expect(second.every((event) => event.run === 2)).toBe(true);
    expect(second[0]!.seq).toBe(first.at(-1)!.seq + 1);

    const runs = await server.request<{ agent: { costUsd: number; runs: Array<Record<string, unknown>> } }>(
      '{ agent(storyId: "S-1") { costUsd runs { number prompt status sessionId exitCode costUsd startedAt finishedAt firstSeq lastSeq } } }',
    );
    const [run1, run2] = runs.data!.agent.runs;
    expect(run1).toMatchObject({ number: 1, prompt: 'say first', status: 'COMPLETED', exitCode: 0, costUsd: 0.0123, firstSeq: 1, lastSeq: first.at(-1)!.seq });
    expect(run2).toMatchObject({ number: 2, status: 'COMPLETED', costUsd: 0.0123, firstSeq: second[0]!.seq, lastSeq: second.at(-1)!.seq });
    expect(runs.data!.agent.costUsd).toBeCloseTo(0.0246);
  });

  it('refuses a story with no session to resume, one that is running, and one that never existed', async () => {
    const server = await startTestServer();
    writeFakeAgentConfig(server.root, { agent: 'format = "text"' });
    await runToEnd(server, START, { storyId: 'plain', prompt: 'say hi' });
    const noSession = await server.request(CONTINUE, { storyId: 'plain', prompt: 'more' });
    expect(code(noSession)).toBe('NO_SESSION_TO_RESUME');

    writeFakeAgentConfig(server.root);
    await server.request(START, { storyId: 'busy', prompt: 'wait' });
    expect(code(await server.request(CONTINUE, { storyId: 'busy', prompt: 'more' }))).toBe('AGENT_ALREADY_RUNNING');
    expect(code(await server.request(CONTINUE, { storyId: 'ghost', prompt: 'more' }))).toBe('AGENT_NOT_FOUND');
  });
});

describe('sendInput and resizeTerminal', () => {
  it('write to a running agent\'s terminal and resize it', async () => {
    const server = await startTestServer();
    const events = server.wsClient().iterate({ query: AGENT_EVENTS, variables: { storyId: 'S-1' } });
    await server.request(START, { storyId: 'S-1', prompt: 'winch; echo-stdin 2' });
    await readEvents(events, (event) => event.status === 'RUNNING');
    // The agent is running, and says when it listens for the resize.
    await readEvents(events, (event) => (event.data as { subtype?: string } | undefined)?.subtype === 'winch-ready');

    const resized = await server.request('mutation { resizeTerminal(storyId: "S-1", cols: 120, rows: 40) }');
    expect(resized).toEqual({ data: { resizeTerminal: true } });
    const size = await readEvents(events, (event) => (event.data as { subtype?: string } | undefined)?.subtype === 'size');
    expect(size.at(-1)!.data).toMatchObject({ cols: 120, rows: 40 });

    for (const line of ['hello agent\n', 'second line\n']) {
      expect(await server.request('mutation ($data: String!) { sendInput(storyId: "S-1", data: $data) }', { data: line })).toEqual({
        data: { sendInput: true },
      });
    }
    const rest = await readEvents(events, isTerminalResult);
    const texts = rest.flatMap((event) => (event.text === undefined ? [] : [event.text]));
    expect(texts).toContain('echo: hello agent');
    expect(texts).toContain('echo: second line');
    expect(rest.at(-1)!.__typename).toBe('AgentDoneEvent');
  });

  it('refuse a story that is not running, one that never existed, and a size out of range', async () => {
    const server = await startTestServer();
    await runToEnd(server, START, { storyId: 'S-1', prompt: 'say done' });
    const input = await server.request('mutation { sendInput(storyId: "S-1", data: "x") }');
    expect(code(input)).toBe('AGENT_NOT_RUNNING');
    expect(input.errors![0]!.message).toBe('story S-1 is COMPLETED, not RUNNING: its agent has no terminal to write to');
    expect(code(await server.request('mutation { resizeTerminal(storyId: "S-1", cols: 80, rows: 24) }'))).toBe('AGENT_NOT_RUNNING');
    expect(code(await server.request('mutation { sendInput(storyId: "ghost", data: "x") }'))).toBe('AGENT_NOT_FOUND');
    await server.request(START, { storyId: 'S-2', prompt: 'wait' });
    await expect.poll(() => server.pool.get('S-2')!.status).toBe('RUNNING');
    expect(code(await server.request('mutation { resizeTerminal(storyId: "S-2", cols: 0, rows: 24) }'))).toBe('INVALID_ARGUMENT');
  });
});

describe('what changed', () => {
  const CHANGES = `{ agent(storyId: "S-1") {
    changes { filesChanged linesAdded linesRemoved files { path oldPath kind linesAdded linesRemoved } }
    commits { hash subject author committedAt }
  } }`;

  it('shows committed, uncommitted and untracked changes against the base, a diff per file, and the commits', async () => {
    const server = await startTestServer();
    const files = {
      '.gitignore': 'build/\n',
      'keep.txt': 'one\ntwo\nthree\n',
      'edit.txt': 'line 1\nline 2\nline 3\n',
      'gone.txt': 'a\nb\n',
      'move.txt': 'm1\nm2\nm3\nm4\n',
    };
    for (const [name, text] of Object.entries(files)) writeFileSync(path.join(server.root, name), text);
    git(server.root, 'add', '--all');
    git(server.root, 'commit', '--quiet', '-m', 'project files');
    const work = [
      "printf 'line 1\\nline two\\nline 3\\nline 4\\n' > edit.txt",
      'git rm --quiet gone.txt',
      'git mv move.txt moved.txt',
      "git -c user.name='Agent Smith' -c user.email=agent@example.com commit --quiet -am 'agent work'",
      "printf 'four\\n' >> keep.txt",
      "printf 'new 1\\nnew 2\\n' > new.txt",
      'mkdir -p build',
      "printf 'ignored\\n' > build/out.js",
    ].join(' && ');
    await runToEnd(server, START, { storyId: 'S-1', prompt: `run ${work}` });
    // The main checkout moves on; the story's changes stay against its base.
    writeFileSync(path.join(server.root, 'main-only.txt'), 'main\n');
    git(server.root, 'add', 'main-only.txt');
    git(server.root, 'commit', '--quiet', '-m', 'main moves on');
    const worktree = server.pool.get('S-1')!.worktreePath!;
    const statusBefore = git(worktree, 'status', '--porcelain');

    const result = await server.request<{ agent: { changes: Record<string, unknown>; commits: Array<Record<string, unknown>> } }>(CHANGES);
    expect(result.errors).toBeUndefined();
    expect(result.data!.agent.changes).toEqual({
      filesChanged: 5,
      linesAdded: 5,
      linesRemoved: 3,
      files: [
        { path: 'edit.txt', oldPath: null, kind: 'MODIFIED', linesAdded: 2, linesRemoved: 1 },
        { path: 'gone.txt', oldPath: null, kind: 'DELETED', linesAdded: 0, linesRemoved: 2 },
        { path: 'keep.txt', oldPath: null, kind: 'MODIFIED', linesAdded: 1, linesRemoved: 0 },
        { path: 'moved.txt', oldPath: 'move.txt', kind: 'RENAMED', linesAdded: 0, linesRemoved: 0 },
        { path: 'new.txt', oldPath: null, kind: 'ADDED', linesAdded: 2, linesRemoved: 0 },
      ],
    });
    expect(result.data!.agent.commits).toEqual([
      {
        hash: git(worktree, 'rev-parse', 'HEAD'),
        subject: 'agent work',
        author: 'Agent Smith',
        committedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      },
    ]);
    // Reading the changes leaves the agent's own index alone.
    expect(git(worktree, 'status', '--porcelain')).toBe(statusBefore);

    const diff = async (filePath?: string) =>
      server.request<{ agent: { diff: string } }>('query ($path: String) { agent(storyId: "S-1") { diff(path: $path) } }', {
        path: filePath,
      });
    const edit = (await diff('edit.txt')).data!.agent.diff;
    expect(edit).toContain('--- a/edit.txt\n+++ b/edit.txt');
    expect(edit).toContain('-line 2\n+line two\n line 3\n+line 4');
    expect(edit).not.toContain('keep.txt');
    expect((await diff('new.txt')).data!.agent.diff).toContain('+new 1\n+new 2');
    expect((await diff('move.txt')).data!.agent.diff).toContain('rename from move.txt\nrename to moved.txt');
    const all = (await diff()).data!.agent.diff;
    for (const name of ['edit.txt', 'gone.txt', 'keep.txt', 'moved.txt', 'new.txt']) expect(all).toContain(`b/${name}`);
    expect(all).not.toContain('main-only.txt');
    expect(all).not.toContain('build/out.js');

    for (const outside of ['../../../etc/passwd', '/etc/passwd', 'build/out.js', 'README.md']) {
      const refused = await diff(outside);
      expect(code(refused)).toBe('PATH_NOT_CHANGED');
      expect(refused.errors![0]!.message).toContain(`has no change to ${JSON.stringify(outside)}`);
    }
  });

  it('cuts a diff over the cap and says so', async () => {
    const server = await startTestServer();
    await runToEnd(server, START, {
      storyId: 'S-1',
      // A 2 MB file of 20,000 lines.
      prompt: `run node -e "require('fs').writeFileSync('big.txt', ('y'.repeat(99) + '\\n').repeat(20000))"`,
    });
    const result = await server.request<{ agent: { diff: string } }>('{ agent(storyId: "S-1") { diff } }');
    const text = result.data!.agent.diff;
    expect(Buffer.byteLength(text)).toBeLessThan(1024 * 1024 + 200);
    expect(text).toMatch(/\n\[agent-pool: diff cut at 1048576 bytes; \d+ more bytes not shown\]\n$/);
  });

  it('is empty before the story changes anything, and null for a story without a worktree', async () => {
    const server = await startTestServer();
    await runToEnd(server, START, { storyId: 'S-1', prompt: 'say nothing to change' });
    expect((await server.request(CHANGES)).data).toEqual({
      agent: { changes: { filesChanged: 0, linesAdded: 0, linesRemoved: 0, files: [] }, commits: [] },
    });
    writeFileSync(path.join(server.root, 'agent-pool.toml'), '[agent]\ncommand = "no-such-agent"\n[worktree]\nbase = "nope"\n');
    await runToEnd(server, START, { storyId: 'S-2', prompt: 'x' });
    expect((await server.request('{ agent(storyId: "S-2") { changes { filesChanged } diff commits { hash } } }')).data).toEqual({
      agent: { changes: null, diff: null, commits: [] },
    });
  });
});
