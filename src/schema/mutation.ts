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
          description: 'What the agent is asked to do; `[agent] prompt` of agent-pool.toml when omitted.',
        }),
      },
      resolve: (_root, args, { pool }) => pool.start(String(args.storyId), args.prompt ?? undefined),
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
  }),
});
