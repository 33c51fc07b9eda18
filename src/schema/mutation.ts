import { AgentRef } from './agent.js';
import { builder } from './builder.js';
import { MergeStrategyEnum } from './landing.js';

/** A text argument: null, omitted or only whitespace count as not given. */
function given(text: string | null | undefined): string | undefined {
  return text === null || text === undefined || text.trim() === '' ? undefined : text;
}

builder.mutationType({
  description: 'Starting and stopping agents.',
  fields: (t) => ({
    startAgent: t.field({
      type: AgentRef,
      description:
        'Starts a new run of a story: its worktree and branch are made (or reused), `setup` runs, and the agent starts. ' +
        'Returns at once, PENDING. Errors: INVALID_STORY_ID, AGENT_ALREADY_RUNNING (the story is PENDING or RUNNING), ' +
        'CONFIG_ERROR (agent-pool.toml is invalid; nothing changes), INVALID_ARGUMENT (a title that is not one line of at most 200 visible characters, a prompt with a NUL).',
      args: {
        storyId: t.arg.id({ required: true, description: 'The story\'s id: 1 to 64 of A-Z a-z 0-9 . _ -.' }),
        prompt: t.arg.string({
          description: 'What the agent is asked to do; the profile\'s `prompt` of agent-pool.toml when omitted.',
        }),
        agent: t.arg.string({
          description:
            'The agent profile: "default" ([agent]) or a name of [agents.NAME]. Omitted: the story\'s own, else ' +
            '[pool] default_agent. UNKNOWN_AGENT lists the configured ones.',
        }),
        title: t.arg.string({
          description:
            'A title people tell the story by (Agent.title): at most 200 characters, one line of visible text (no control ' +
            'characters, line separators, bidirectional controls or invisible tag characters); "" or only spaces removes it. ' +
            'Omitted or null: the story keeps its own.',
        }),
      },
      resolve: (_root, args, { pool }) =>
        pool.start(String(args.storyId), args.prompt ?? undefined, args.agent ?? undefined, args.title ?? undefined),
    }),
    stopAgent: t.field({
      type: AgentRef,
      description:
        'Stops a story\'s run, queued or running, and returns once every process of it is gone (STOPPED): the agent\'s own ' +
        'interrupt first (on its control channel, else SIGINT), then SIGTERM and SIGKILL after stop_grace_seconds each. ' +
        'A story that is not running is returned unchanged. Errors: INVALID_STORY_ID, AGENT_NOT_FOUND.',
      args: {
        storyId: t.arg.id({ required: true, description: 'The story\'s id.' }),
      },
      resolve: (_root, args, { pool }) => pool.stop(String(args.storyId)),
    }),
    continueAgent: t.field({
      type: AgentRef,
      description:
        'A follow-up: starts a new run of a finished story in the same worktree that resumes the agent\'s own session ' +
        '(the session id of the latest run that reported one). Returns at once, PENDING. Errors: AGENT_NOT_FOUND, ' +
        'AGENT_ALREADY_RUNNING, NO_SESSION_TO_RESUME.',
      args: {
        storyId: t.arg.id({ required: true, description: 'The story\'s id.' }),
        prompt: t.arg.string({ required: true, description: 'What to tell the agent next.' }),
      },
      resolve: (_root, args, { pool }) => pool.continue(String(args.storyId), args.prompt),
    }),
    respondToApproval: t.field({
      type: AgentRef,
      description:
        'Answers a tool call the agent asked about (Agent.pendingApprovals), once, with exactly one of allow and optionId. ' +
        'allow: true runs it (its allow_once option; allow_always with remember: true, which for Claude also applies its own ' +
        'suggestions so that the run does not ask again), with updatedInput instead of the requested input if given (Claude ' +
        'only); allow: false denies it (reject_once), and Claude\'s model is told message. optionId chooses one of ' +
        'Approval.options. Errors: APPROVAL_NOT_FOUND, APPROVAL_ALREADY_ANSWERED (a second answer), AGENT_NOT_INTERACTIVE, ' +
        'INVALID_ARGUMENT (both or neither of allow and optionId, an option the request does not offer).',
      args: {
        storyId: t.arg.id({ required: true, description: 'The story\'s id.' }),
        requestId: t.arg.id({ required: true, description: 'The request\'s id (Approval.requestId).' }),
        allow: t.arg.boolean({ description: 'Whether the tool call may run (or give optionId).' }),
        optionId: t.arg.id({ description: 'One of the request\'s options (Approval.options) to answer with (or give allow).' }),
        message: t.arg.string({ description: 'Denied: what the model is told (a default otherwise). Allowed: a note kept in the event.' }),
        updatedInput: t.arg({ type: 'JSON', description: 'Allowed: the tool\'s whole input to run instead (a JSON object).' }),
        remember: t.arg.boolean({
          description: 'Allowed: allow it always (Claude: apply its suggested rules, Approval.suggestions, for the rest of the run).',
        }),
      },
      resolve: (_root, args, { pool }) =>
        pool.respondToApproval(String(args.storyId), String(args.requestId), {
          allow: args.allow ?? undefined,
          optionId: args.optionId == null ? undefined : String(args.optionId),
          message: args.message ?? undefined,
          updatedInput: args.updatedInput ?? undefined,
          remember: args.remember ?? undefined,
        }),
    }),
    sendMessage: t.field({
      type: AgentRef,
      description:
        'A new turn in the running agent\'s live session: sent at once when it waits for input, queued behind the turn that ' +
        'runs otherwise. Errors: AGENT_NOT_RUNNING (use continueAgent), AGENT_NOT_INTERACTIVE, INVALID_ARGUMENT (empty text).',
      args: {
        storyId: t.arg.id({ required: true, description: 'The story\'s id.' }),
        text: t.arg.string({ required: true, description: 'What to tell the agent.' }),
      },
      resolve: (_root, args, { pool }) => pool.sendMessage(String(args.storyId), args.text),
    }),
    interruptAgent: t.field({
      type: AgentRef,
      description:
        'Ends the running turn at once, as Esc would (its commands killed, pending approvals refused); the session stays and ' +
        'the agent takes the next message, or the run ends STOPPED when nothing is queued and keep_open_seconds is 0. ' +
        'Errors: AGENT_NOT_RUNNING, AGENT_NOT_INTERACTIVE.',
      args: {
        storyId: t.arg.id({ required: true, description: 'The story\'s id.' }),
      },
      resolve: (_root, args, { pool }) => pool.interrupt(String(args.storyId)),
    }),
    sendInput: t.boolean({
      description:
        'Writes to a running agent\'s terminal, as typing would (end a line with "\\n"). True once written. ' +
        'AGENT_NOT_RUNNING when it is not running; INVALID_ARGUMENT for an agent on a control channel (use sendMessage).',
      args: {
        storyId: t.arg.id({ required: true, description: 'The story\'s id.' }),
        data: t.arg.string({ required: true, description: 'The text to type.' }),
      },
      resolve: async (_root, args, { pool }) => {
        await pool.sendInput(String(args.storyId), args.data);
        return true;
      },
    }),
    mergeStory: t.field({
      type: AgentRef,
      description:
        'Lands a finished story\'s work (its uncommitted work committed on its branch first) on its target branch ' +
        '(Agent.baseBranch, or into). Everything is checked first on a temporary commit, and a refusal changes nothing: ' +
        'MERGE_CONFLICT (extensions.files), TARGET_DIRTY (the target is checked out with changes to tracked files, a merge in ' +
        'progress, or untracked files where the merge writes; extensions.files), NOTHING_TO_MERGE, NO_TARGET_BRANCH, ' +
        'AGENT_ALREADY_RUNNING, STORY_WORKTREE_BUSY (its worktree is not on its branch, or has a merge or rebase under way), ' +
        'LANDING_RACE (the target moved meanwhile: try again). The target moves by update-ref with its ' +
        'old value, or by a fast-forward in its checkout. Afterwards aheadBy is 0 and mergedAt is set.',
      args: {
        storyId: t.arg.id({ required: true, description: 'The story\'s id.' }),
        strategy: t.arg({ type: MergeStrategyEnum, defaultValue: 'SQUASH', description: 'SQUASH (default), MERGE or REBASE.' }),
        message: t.arg.string({
          description: 'The commit message of SQUASH or MERGE; default "<storyId>: <title, else the first line of the first prompt>".',
        }),
        into: t.arg.string({ description: 'A local branch to land on instead of the story\'s own target.' }),
      },
      resolve: (_root, args, { pool }) =>
        pool.merge(String(args.storyId), { strategy: args.strategy ?? 'SQUASH', message: given(args.message), into: given(args.into) }),
    }),
    rebaseStory: t.field({
      type: AgentRef,
      description:
        'Replays a finished story\'s commits (since it last landed) onto its target branch, in its worktree; its uncommitted ' +
        'work is committed first. MERGE_CONFLICT (extensions.files) when a commit does not replay cleanly: checked first, ' +
        'nothing changes. Also NO_TARGET_BRANCH, AGENT_ALREADY_RUNNING.',
      args: { storyId: t.arg.id({ required: true, description: 'The story\'s id.' }) },
      resolve: (_root, args, { pool }) => pool.rebase(String(args.storyId)),
    }),
    createPullRequest: t.field({
      type: AgentRef,
      description:
        'Pushes the story\'s branch (its uncommitted work committed first) to [forge] remote with a lease, then opens a pull ' +
        'request on GitHub (a merge request on GitLab) into its target branch. Called again: pushes, updates the title or body ' +
        'given, re-reads its state and returns the same one; after it was closed, opens a new one. Errors: ' +
        'FORGE_NOT_CONFIGURED, PUSH_FAILED (git\'s message), FORGE_ERROR (extensions.status), NO_TARGET_BRANCH, AGENT_ALREADY_RUNNING.',
      args: {
        storyId: t.arg.id({ required: true, description: 'The story\'s id.' }),
        title: t.arg.string({ description: 'Its title; default the story\'s title, else the first line of its first prompt.' }),
        body: t.arg.string({ description: 'Its description.' }),
        draft: t.arg.boolean({ defaultValue: false, description: 'Open it as a draft.' }),
      },
      resolve: (_root, args, { pool }) =>
        pool.createPullRequest(String(args.storyId), { title: given(args.title), body: args.body ?? undefined, draft: args.draft ?? false }),
    }),
    startService: t.field({
      type: AgentRef,
      description:
        'Starts a story\'s service (sh -c, its command from agent-pool.toml) in its worktree, on its port; returns at once, ' +
        'STARTING (FAILED with "port N in use" when something else has the port). READY follows its ready line, or the first ' +
        'accepted connection to its port. A service that runs is left as it is. UNKNOWN_SERVICE lists the configured ones; ' +
        'INVALID_ARGUMENT when the story has no worktree (archived, or not yet made).',
      args: {
        storyId: t.arg.id({ required: true, description: 'The story\'s id.' }),
        name: t.arg.string({ required: true, description: 'The service\'s name: [services.NAME].' }),
      },
      resolve: (_root, args, { pool }) => pool.startService(String(args.storyId), args.name),
    }),
    stopService: t.field({
      type: AgentRef,
      description: 'Stops a story\'s service and returns once every process of it is gone (STOPPED). A service that does not run is left as it is.',
      args: {
        storyId: t.arg.id({ required: true, description: 'The story\'s id.' }),
        name: t.arg.string({ required: true, description: 'The service\'s name: [services.NAME].' }),
      },
      resolve: (_root, args, { pool }) => pool.stopService(String(args.storyId), args.name),
    }),
    archiveStory: t.field({
      type: AgentRef,
      description:
        'Archives a finished story: its worktree is removed (uncommitted work committed to its branch first); its branch and ' +
        'history stay, and startAgent brings it back. With deleteBranch its branch is deleted too, if merged (landed by ' +
        'mergeStory, in its target, or its pull request merged); else BRANCH_NOT_MERGED and nothing changes. AGENT_ALREADY_RUNNING while it runs.',
      args: {
        storyId: t.arg.id({ required: true, description: 'The story\'s id.' }),
        deleteBranch: t.arg.boolean({ defaultValue: false, description: 'Also delete its branch, when it is merged.' }),
      },
      resolve: (_root, args, { pool }) => pool.archive(String(args.storyId), args.deleteBranch ?? false),
    }),
    resizeTerminal: t.boolean({
      description: 'Resizes a running agent\'s terminal (1 to 1000 each). AGENT_NOT_RUNNING when it is not running.',
      args: {
        storyId: t.arg.id({ required: true, description: 'The story\'s id.' }),
        cols: t.arg.int({ required: true, description: 'Columns.' }),
        rows: t.arg.int({ required: true, description: 'Rows.' }),
      },
      resolve: async (_root, args, { pool }) => {
        await pool.resizeTerminal(String(args.storyId), args.cols, args.rows);
        return true;
      },
    }),
  }),
});
