import { AgentRef } from './agent.js';
import { AgentProfileRef } from './agent-profile.js';
import { AgentStatusEnum } from './agent-status.js';
import { builder } from './builder.js';

builder.queryType({
  description: 'Reading the agents of this project.',
  fields: (t) => ({
    agents: t.field({
      type: [AgentRef],
      description: 'Every story\'s agent, in the order the stories were first started; archived ones only with includeArchived.',
      args: {
        status: t.arg({ type: AgentStatusEnum, description: 'Only the agents with this status.' }),
        includeArchived: t.arg.boolean({ defaultValue: false, description: 'Also the archived stories (archiveStory).' }),
      },
      // What is selected under it is counted once per story there is, not as a guess of 10.
      complexity: (args, { pool }) => ({ field: 1, multiplier: Math.max(pool.count(args.status ?? undefined, args.includeArchived ?? false), 1) }),
      resolve: (_root, args, { pool }) => pool.list(args.status ?? undefined, args.includeArchived ?? false),
    }),
    agent: t.field({
      type: AgentRef,
      nullable: true,
      description: 'One story\'s agent; null when the story was never started.',
      args: {
        storyId: t.arg.id({ required: true, description: 'The story\'s id.' }),
      },
      resolve: (_root, args, { pool }) => pool.get(String(args.storyId)) ?? null,
    }),
    agentProfiles: t.field({
      type: [AgentProfileRef],
      description: 'The agent profiles of agent-pool.toml as it is now, "default" first. CONFIG_ERROR when it is invalid.',
      resolve: (_root, _args, { pool }) => pool.profiles(),
    }),
  }),
});
