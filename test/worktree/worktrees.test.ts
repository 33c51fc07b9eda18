import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { defaultConfig, type WorktreeConfig } from '../../src/config/config.js';
import { NotAGitRepositoryError, resolveProjectRoot } from '../../src/worktree/project.js';
import { silentLogger } from '../../src/logger.js';
import { RunSupervisor, SetupCommandError } from '../../src/pool/run-supervisor.js';
import { InvalidStoryIdError } from '../../src/worktree/story-id.js';
import { WorktreeError, Worktrees } from '../../src/worktree/worktrees.js';
import { git, tempDir, tempRepo } from '../support/temp.js';

function config(overrides: Partial<WorktreeConfig> = {}): WorktreeConfig {
  return { ...defaultConfig().worktree, ...overrides };
}

/** A new repository at `<a temp dir>/<folder>/app`: a project whose path holds what `folder` holds. */
function repoUnder(folder: string): string {
  const parent = path.join(tempDir(), folder);
  mkdirSync(parent);
  const root = path.join(parent, 'app');
  renameSync(tempRepo(), root);
  return root;
}

/** Setup commands run as a run runs them: by its supervisor. */
function setupRunner(env: Record<string, string> = process.env as Record<string, string>) {
  const supervisor = new RunSupervisor({ graceMs: 1000, logger: silentLogger, label: 'test' });
  return {
    runSetup: (command: string, cwd: string, variables: Record<string, string>) => supervisor.runCommand(command, { cwd, env: { ...env, ...variables } }),
  };
}

describe('resolveProjectRoot', () => {
  it('finds the top level from a subfolder', async () => {
    const root = tempRepo();
    mkdirSync(path.join(root, 'src', 'deep'), { recursive: true });
    expect(await resolveProjectRoot(path.join(root, 'src', 'deep'))).toBe(root);
  });

  it('says what to do when the folder is not in a git work tree', async () => {
    const dir = tempDir();
    await expect(resolveProjectRoot(dir)).rejects.toThrow(NotAGitRepositoryError);
    await expect(resolveProjectRoot(dir)).rejects.toThrow(
      `${dir} is not inside a git work tree: run agent-pool in a clone of your project, or pass --project <dir>`,
    );
  });
});

describe('Worktrees.ensure', () => {
  it('records the branch a new story branch lands on: [worktree] base if it is a branch, else the branch HEAD is on, null when detached', async () => {
    const root = tempRepo();
    git(root, 'branch', 'develop');
    git(root, 'tag', 'v1');
    const worktrees = new Worktrees(root);
    const targetOf = async (storyId: string, base: string) => {
      const made = await worktrees.ensure(storyId, config({ base }));
      return made.baseBranch === undefined ? 'none' : await made.baseBranch;
    };
    expect(await targetOf('A', 'develop')).toBe('develop');
    expect(await targetOf('B', 'refs/heads/develop')).toBe('develop');
    expect(await targetOf('C', 'v1')).toBe('main');
    expect(await targetOf('D', 'HEAD')).toBe('main');
    git(root, 'checkout', '--quiet', '--detach');
    expect(await targetOf('E', 'HEAD')).toBeNull();
    // A story whose branch exists already records none.
    expect(await targetOf('A', 'develop')).toBe('none');
    await worktrees.settled();
  });

  it('creates a worktree on the story branch from base, and keeps the main checkout clean', async () => {
    const root = tempRepo();
    const head = git(root, 'rev-parse', 'HEAD');
    const worktrees = new Worktrees(root);
    const { baseBranch, ...worktree } = await worktrees.ensure('S-1', config());
    await worktrees.settled();
    // The branch made from HEAD targets the branch HEAD is on.
    expect(await baseBranch).toBe('main');

    expect(worktree).toEqual({
      storyId: 'S-1',
      path: path.join(root, '.agent-pool', 'worktrees', 'S-1'),
      branch: 'story/S-1',
      created: true,
    });
    expect(await worktrees.baseCommitOf('S-1')).toBe(head);
    expect(git(worktree.path, 'rev-parse', '--abbrev-ref', 'HEAD')).toBe('story/S-1');
    expect(readFileSync(path.join(worktree.path, 'README.md'), 'utf8')).toBe('# test project\n');
    expect(git(root, 'rev-parse', 'refs/agent-pool/base/S-1')).toBe(head);
    expect(git(root, 'status', '--porcelain', '--untracked-files=all')).toBe('');
    expect(readFileSync(path.join(root, '.git', 'info', 'exclude'), 'utf8')).toContain('/.agent-pool/');
  });

  it('starts from the configured base', async () => {
    const root = tempRepo();
    const first = git(root, 'rev-parse', 'HEAD');
    git(root, 'tag', 'v1');
    writeFileSync(path.join(root, 'later.txt'), 'later\n');
    git(root, 'add', 'later.txt');
    git(root, 'commit', '--quiet', '-m', 'later');

    const worktrees = new Worktrees(root);
    const worktree = await worktrees.ensure('S-2', config({ base: 'v1' }));
    expect(await worktrees.baseCommitOf('S-2')).toBe(first);
    expect(existsSync(path.join(worktree.path, 'later.txt'))).toBe(false);
  });

  it('keeps the base commit after HEAD moves on', async () => {
    const root = tempRepo();
    const worktrees = new Worktrees(root);
    const baseCommit = git(root, 'rev-parse', 'HEAD');
    await worktrees.ensure('S-1', config());
    writeFileSync(path.join(root, 'moved.txt'), 'x\n');
    git(root, 'add', 'moved.txt');
    git(root, 'commit', '--quiet', '-m', 'main moves on');

    expect(await worktrees.baseCommitOf('S-1')).toBe(baseCommit);
    await worktrees.ensure('S-1', config());
    expect(await worktrees.baseCommitOf('S-1')).toBe(baseCommit);
  });

  it('reuses an existing worktree without touching the agent\'s committed or uncommitted work', async () => {
    const root = tempRepo();
    const worktrees = new Worktrees(root);
    const first = await worktrees.ensure('S-1', config());
    writeFileSync(path.join(first.path, 'committed.txt'), 'one\n');
    git(first.path, 'add', 'committed.txt');
    git(first.path, 'commit', '--quiet', '-m', 'agent commit');
    const agentCommit = git(first.path, 'rev-parse', 'HEAD');
    writeFileSync(path.join(first.path, 'README.md'), 'edited by the agent\n');
    writeFileSync(path.join(first.path, 'untracked.txt'), 'new\n');

    const again = await worktrees.ensure('S-1', config());
    const { baseBranch: _made, ...firstWithoutBase } = first;
    // Found again, not made: no target is recorded anew.
    expect(again).toEqual({ ...firstWithoutBase, created: false });
    expect(git(again.path, 'rev-parse', 'HEAD')).toBe(agentCommit);
    expect(readFileSync(path.join(again.path, 'README.md'), 'utf8')).toBe('edited by the agent\n');
    expect(readFileSync(path.join(again.path, 'untracked.txt'), 'utf8')).toBe('new\n');
    expect(git(root, 'status', '--porcelain', '--untracked-files=all')).toBe('');
  });

  it('reuses an existing story branch when the worktree is gone', async () => {
    const root = tempRepo();
    const worktrees = new Worktrees(root);
    const first = await worktrees.ensure('S-1', config());
    const baseCommit = await worktrees.baseCommitOf('S-1');
    writeFileSync(path.join(first.path, 'work.txt'), 'work\n');
    git(first.path, 'add', 'work.txt');
    git(first.path, 'commit', '--quiet', '-m', 'work');
    git(root, 'worktree', 'remove', first.path);

    const again = await worktrees.ensure('S-1', config());
    expect(again.created).toBe(true);
    expect(await worktrees.baseCommitOf('S-1')).toBe(baseCommit);
    expect(readFileSync(path.join(again.path, 'work.txt'), 'utf8')).toBe('work\n');
  });

  it('recreates a worktree whose folder was deleted by hand', async () => {
    const root = tempRepo();
    const worktrees = new Worktrees(root);
    const first = await worktrees.ensure('S-1', config());
    rmSync(first.path, { recursive: true, force: true });

    const again = await worktrees.ensure('S-1', config());
    expect(again.created).toBe(true);
    expect(git(again.path, 'rev-parse', '--abbrev-ref', 'HEAD')).toBe('story/S-1');
  });

  it('uses a branch agent-pool did not make, with its merge base as the base commit', async () => {
    const root = tempRepo();
    const head = git(root, 'rev-parse', 'HEAD');
    git(root, 'branch', 'story/S-9');
    const worktrees = new Worktrees(root);
    await worktrees.ensure('S-9', config());
    expect(await worktrees.baseCommitOf('S-9')).toBe(head);
    expect(git(root, 'rev-parse', 'refs/agent-pool/base/S-9')).toBe(head);
  });

  it('makes many worktrees at once (git alone fails when two worktree adds overlap)', async () => {
    const root = tempRepo();
    const worktrees = new Worktrees(root);
    const stories = Array.from({ length: 12 }, (_, i) => `S-${i}`);
    const made = await Promise.all(stories.map((storyId) => worktrees.ensure(storyId, config())));
    expect(made.map((worktree) => worktree.branch)).toEqual(stories.map((storyId) => `story/${storyId}`));
    const listed = git(root, 'worktree', 'list', '--porcelain');
    for (const worktree of made) expect(listed).toContain(`worktree ${worktree.path}`);
  });

  it('keeps a custom worktree folder inside the project out of git status', async () => {
    const root = tempRepo();
    const worktree = await new Worktrees(root).ensure('S-1', config({ dir: 'trees', branch_prefix: 'agents/' }));
    expect(worktree.path).toBe(path.join(root, 'trees', 'S-1'));
    expect(worktree.branch).toBe('agents/S-1');
    expect(git(root, 'status', '--porcelain', '--untracked-files=all')).toBe('');
  });

  it('refuses an invalid story id before git is touched', async () => {
    const root = tempRepo();
    await expect(new Worktrees(root).ensure('../x', config())).rejects.toThrow(InvalidStoryIdError);
    expect(existsSync(path.join(root, '.agent-pool'))).toBe(false);
    expect(git(root, 'branch', '--list')).toBe('* main');
  });

  it('says what to do when base does not resolve', async () => {
    const root = tempRepo();
    const error = await new Worktrees(root).ensure('S-1', config({ base: 'no-such-branch' })).catch((e) => e);
    expect(error).toBeInstanceOf(WorktreeError);
    expect(error.message).toBe(
      '[worktree] base "no-such-branch" does not resolve to a commit: set it in agent-pool.toml to a branch, tag or commit that exists',
    );
    expect(git(root, 'branch', '--list', 'story/*')).toBe('');
  });

  it('says what to do when the repository has no commits yet', async () => {
    const root = tempRepo({ commit: false });
    await expect(new Worktrees(root).ensure('S-1', config())).rejects.toThrow(
      'the repository has no commits yet, so a story branch has nothing to start from: make a first commit',
    );
  });

  it('refuses a worktree path occupied by a folder that is not a worktree, and leaves it alone', async () => {
    const root = tempRepo();
    const occupied = path.join(root, '.agent-pool', 'worktrees', 'S-1');
    mkdirSync(occupied, { recursive: true });
    writeFileSync(path.join(occupied, 'precious.txt'), 'mine\n');

    const error = await new Worktrees(root).ensure('S-1', config()).catch((e) => e);
    expect(error).toBeInstanceOf(WorktreeError);
    expect(error.message).toBe(
      `the worktree path ${occupied} is occupied by a folder that is not a git worktree of this project: ` +
        'move that folder away, or set [worktree] dir in agent-pool.toml to another place',
    );
    expect(readFileSync(path.join(occupied, 'precious.txt'), 'utf8')).toBe('mine\n');
  });
});

describe('setup commands', () => {
  it('run in order in a new worktree with placeholders rendered, once per worktree', async () => {
    const root = tempRepo();
    const worktrees = new Worktrees(root);
    const setup = [
      'echo "first" {{story_id}} {{branch}} >> setup.log',
      'echo "second $(pwd)" {{worktree_path}} {{project_root}} >> setup.log',
    ];
    const worktree = await worktrees.ensure('S-1', config({ setup }), setupRunner());
    const log = path.join(worktree.path, 'setup.log');
    expect(readFileSync(log, 'utf8')).toBe(
      `first S-1 story/S-1\nsecond ${worktree.path} ${worktree.path} ${root}\n`,
    );

    await worktrees.ensure('S-1', config({ setup }), setupRunner());
    expect(readFileSync(log, 'utf8').split('\n').filter(Boolean)).toHaveLength(2);
  });

  it('get each placeholder as one word, quoted for sh: a project under "My Projects" or a path with $( works and runs nothing', async () => {
    const root = repoUnder("My Projects $(touch pwned) 'quoted'");
    const worktrees = new Worktrees(root);
    const worktree = await worktrees.ensure('S-1', config({ setup: ['printf "%s\\n" {{project_root}} {{worktree_path}} > paths.txt; cd {{project_root}} && test -e README.md'] }), setupRunner());
    expect(readFileSync(path.join(worktree.path, 'paths.txt'), 'utf8')).toBe(`${root}\n${worktree.path}\n`);
    expect(existsSync(path.join(worktree.path, 'pwned'))).toBe(false);
    expect(existsSync(path.join(root, 'pwned'))).toBe(false);
  });

  it('never parse a value as shell text, even where the configuration check would refuse the placeholder', async () => {
    const root = repoUnder("x'$(touch pwned)'");
    const setup = ["# it's\necho '{{project_root}}' \"{{project_root}}\" > q.txt"];
    const worktree = await new Worktrees(root).ensure('S-1', config({ setup }), setupRunner());
    expect(readFileSync(path.join(worktree.path, 'q.txt'), 'utf8')).toBe(`"$AGENT_POOL_PROJECT_ROOT" ${root}\n`);
    expect(existsSync(path.join(worktree.path, 'pwned'))).toBe(false);
  });

  it('get each placeholder\'s value in a variable too, for a here-document: nothing in it runs', async () => {
    const root = repoUnder('x$(touch pwned)');
    const setup = ['cat > vars.txt <<EOF\n$AGENT_POOL_STORY_ID $AGENT_POOL_BRANCH\n$AGENT_POOL_WORKTREE_PATH\n$AGENT_POOL_PROJECT_ROOT\nEOF'];
    const worktree = await new Worktrees(root).ensure('S-1', config({ setup }), setupRunner());
    expect(readFileSync(path.join(worktree.path, 'vars.txt'), 'utf8')).toBe(`S-1 story/S-1\n${worktree.path}\n${root}\n`);
    expect(existsSync(path.join(worktree.path, 'pwned'))).toBe(false);
  });

  it('stop at the first failure with the command, its exit code and its output, then run again next time', async () => {
    const root = tempRepo();
    const worktrees = new Worktrees(root);
    const marker = path.join(tempDir(), 'fixed');
    const setup = ['echo ran >> runs.log', `echo "installing"; echo "boom" >&2; test -e ${marker} || exit 3`, 'echo never > third.log'];

    const error = await worktrees.ensure('S-1', config({ setup }), setupRunner()).catch((e) => e);
    expect(error).toBeInstanceOf(SetupCommandError);
    expect(error.message).toBe(`setup command ${JSON.stringify(setup[1])} exited with code 3; its last output:\ninstalling\nboom`);
    const worktreePath = worktrees.pathOf('S-1', config());
    expect(existsSync(path.join(worktreePath, 'third.log'))).toBe(false);

    writeFileSync(marker, '');
    await worktrees.ensure('S-1', config({ setup }), setupRunner());
    expect(readFileSync(path.join(worktreePath, 'runs.log'), 'utf8')).toBe('ran\nran\n');
    expect(existsSync(path.join(worktreePath, 'third.log'))).toBe(true);

    await worktrees.ensure('S-1', config({ setup }), setupRunner());
    expect(readFileSync(path.join(worktreePath, 'runs.log'), 'utf8')).toBe('ran\nran\n');
  });

  it('run after the base commit is recorded, so that a setup commit is part of the story\'s work', async () => {
    const root = tempRepo();
    const head = git(root, 'rev-parse', 'HEAD');
    const worktrees = new Worktrees(root);
    await worktrees.ensure('S-1', config({ setup: ["git -c user.name=x -c user.email=x@x commit --quiet --allow-empty -m 'setup commit'"] }), setupRunner());
    expect(await worktrees.baseCommitOf('S-1')).toBe(head);
    expect(git(root, 'log', '-1', '--format=%s', 'story/S-1')).toBe('setup commit');
  });

  it('get the environment they are given', async () => {
    const root = tempRepo();
    const worktree = await new Worktrees(root).ensure('S-1', config({ setup: ['echo "$GREETING" > env.txt'] }), setupRunner({ ...(process.env as Record<string, string>), GREETING: 'hello' }));
    expect(readFileSync(path.join(worktree.path, 'env.txt'), 'utf8')).toBe('hello\n');
  });

  it('need a runner: the worktree layer starts no process itself', async () => {
    const root = tempRepo();
    await expect(new Worktrees(root).ensure('S-1', config({ setup: ['true'] }))).rejects.toThrow('the worktree has setup commands, and nothing was given to run them');
  });
});

describe('Worktrees.remove', () => {
  const savedEnv = { ...process.env };
  afterEach(() => {
    process.env = { ...savedEnv };
  });

  it('commits uncommitted work to the story branch first, keeps the branch, and prunes the worktree', async () => {
    const root = tempRepo({ files: { 'README.md': 'readme\n', 'gone.txt': 'bye\n' } });
    writeFileSync(path.join(root, '.gitignore'), 'build/\n');
    git(root, 'add', '.gitignore');
    git(root, 'commit', '--quiet', '-m', 'ignore build');
    const worktrees = new Worktrees(root);
    const worktree = await worktrees.ensure('S-1', config());
    writeFileSync(path.join(worktree.path, 'README.md'), 'changed\n');
    writeFileSync(path.join(worktree.path, 'new.txt'), 'new\n');
    rmSync(path.join(worktree.path, 'gone.txt'));
    mkdirSync(path.join(worktree.path, 'build'));
    writeFileSync(path.join(worktree.path, 'build', 'out.js'), 'ignored\n');

    const removed = await worktrees.remove('S-1', config());
    expect(removed.removed).toBe(true);
    expect(existsSync(worktree.path)).toBe(false);
    expect(git(root, 'worktree', 'list', '--porcelain')).not.toContain(worktree.path);
    expect(git(root, 'rev-parse', 'story/S-1')).toBe(removed.savedCommit);
    expect(git(root, 'log', '-1', '--format=%s', 'story/S-1')).toBe(
      'agent-pool: save uncommitted work of story S-1 on worktree removal',
    );
    expect(git(root, 'show', 'story/S-1:README.md')).toBe('changed');
    expect(git(root, 'show', 'story/S-1:new.txt')).toBe('new');
    expect(git(root, 'ls-tree', '--name-only', 'story/S-1')).not.toContain('gone.txt');
    expect(git(root, 'ls-tree', '-r', '--name-only', 'story/S-1')).not.toContain('build/out.js');
    expect(git(root, 'status', '--porcelain', '--untracked-files=all')).toBe('');
  });

  it('makes no commit when there is nothing uncommitted', async () => {
    const root = tempRepo();
    const worktrees = new Worktrees(root);
    const worktree = await worktrees.ensure('S-1', config());
    const head = git(worktree.path, 'rev-parse', 'HEAD');
    expect(await worktrees.remove('S-1', config())).toEqual({ savedCommit: undefined, removed: true });
    expect(git(root, 'rev-parse', 'story/S-1')).toBe(head);
  });

  it('saves work with a fallback author on a machine without a git identity', async () => {
    const root = tempRepo();
    git(root, 'config', '--unset', 'user.name');
    git(root, 'config', '--unset', 'user.email');
    const worktrees = new Worktrees(root);
    const worktree = await worktrees.ensure('S-1', config());
    writeFileSync(path.join(worktree.path, 'work.txt'), 'work\n');

    const home = tempDir();
    process.env.HOME = home;
    process.env.XDG_CONFIG_HOME = home;
    process.env.GIT_CONFIG_NOSYSTEM = '1';
    delete process.env.GIT_CONFIG_GLOBAL;
    for (const name of ['GIT_AUTHOR_NAME', 'GIT_AUTHOR_EMAIL', 'GIT_COMMITTER_NAME', 'GIT_COMMITTER_EMAIL', 'EMAIL']) {
      delete process.env[name];
    }

    const removed = await worktrees.remove('S-1', config());
    expect(removed.savedCommit).toBeDefined();
    expect(git(root, 'log', '-1', '--format=%an <%ae>', 'story/S-1')).toBe('agent-pool <agent-pool@localhost>');
  });

  it('leaves a story without a worktree as it is', async () => {
    const root = tempRepo();
    expect(await new Worktrees(root).remove('S-1', config())).toEqual({ savedCommit: undefined, removed: false });
  });
});
