import { AgentRef } from './agent.js';
import { AgentProfileRef } from './agent-profile.js';
import { AgentStatusEnum } from './agent-status.js';
import { builder } from './builder.js';
import { DeliveryStatusEnum, WebhookDeliveryRef } from './webhook-delivery.js';

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
    webhookDeliveries: t.field({
      type: [WebhookDeliveryRef],
      description:
        'The newest webhook deliveries ([[notify.webhook]]), newest first: for a person who wonders why nothing arrived. ' +
        'Made or given-up ones are kept for 7 days.',
      args: {
        first: t.arg.int({ defaultValue: 50, description: 'How many at most (0 to 1000; clamped).' }),
        status: t.arg({ type: DeliveryStatusEnum, description: 'Only those with this status.' }),
      },
      complexity: (args) => ({ field: 1, multiplier: Math.min(Math.max(args.first ?? 50, 1), 1000) }),
      resolve: (_root, args, { pool }) => pool.webhookDeliveries(args.first ?? 50, args.status ?? undefined),
    }),
  }),
});
