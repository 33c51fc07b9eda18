import { AgentRef } from './agent.js';
import { builder } from './builder.js';

builder.mutationType({
  description: 'Starting and stopping agents.',
  fields: (t) => ({
    startAgent: t.field({
      type: AgentRef,
      description:
        'Starts a new run of a story: its worktree and branch are made (or reused), `setup` runs, and the agent starts. ' +
        'Returns at once, PENDING. Errors: INVALID_STORY_ID, AGENT_ALREADY_RUNNING (the story is PENDING or RUNNING), ' +
        'CONFIG_ERROR (agent-pool.toml is invalid; nothing changes).',
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
      },
      resolve: (_root, args, { pool }) => pool.start(String(args.storyId), args.prompt ?? undefined, args.agent ?? undefined),
    }),
    stopAgent: t.field({
      type: AgentRef,
      description:
        'Stops a story\'s run, queued or running, and returns once every process of it is gone (STOPPED). ' +
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
    sendInput: t.boolean({
      description:
        'Writes to a running agent\'s terminal, as typing would (end a line with "\\n"). True once written. ' +
        'AGENT_NOT_RUNNING when it is not running.',
      args: {
        storyId: t.arg.id({ required: true, description: 'The story\'s id.' }),
        data: t.arg.string({ required: true, description: 'The text to type.' }),
      },
      resolve: (_root, args, { pool }) => {
        pool.sendInput(String(args.storyId), args.data);
        return true;
      },
    }),
    resizeTerminal: t.boolean({
      description: 'Resizes a running agent\'s terminal (1 to 1000 each). AGENT_NOT_RUNNING when it is not running.',
      args: {
        storyId: t.arg.id({ required: true, description: 'The story\'s id.' }),
        cols: t.arg.int({ required: true, description: 'Columns.' }),
        rows: t.arg.int({ required: true, description: 'Rows.' }),
      },
      resolve: (_root, args, { pool }) => {
        pool.resizeTerminal(String(args.storyId), args.cols, args.rows);
        return true;
      },
    }),
  }),
});
