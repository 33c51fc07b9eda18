import type { PendingApproval } from '../pool/control-session.js';
import { builder } from './builder.js';

/** The WaitReason enum. */
export const WaitReasonEnum = builder.enumType('WaitReason', {
  description: 'What a running agent waits for from a person.',
  values: {
    APPROVAL: { description: 'An answer to an approval request (respondToApproval).' },
    INPUT: { description: 'A message: its turn is done and it stays open for one (sendMessage, keep_open_seconds).' },
  } as const,
});

/** The Approval type: a tool call that waits for a person's answer. */
export const ApprovalRef = builder.objectRef<PendingApproval>('Approval').implement({
  description: 'A tool call the agent asks a person to allow or deny (respondToApproval); the agent waits for the answer.',
  fields: (t) => ({
    requestId: t.exposeID('requestId', { description: 'The request\'s id, which respondToApproval names.' }),
    tool: t.exposeString('tool', { description: 'The tool\'s name, as the CLI calls it (Write, Bash, …).' }),
    input: t.expose('input', { type: 'JSON', nullable: true, description: 'The call\'s arguments: what runs if allowed as is.' }),
    suggestions: t.expose('suggestions', {
      type: 'JSON',
      nullable: true,
      description: 'The agent\'s own suggested permission rules, which respondToApproval(remember: true) applies.',
    }),
    requestedAt: t.expose('requestedAt', { type: 'DateTime', description: 'When the agent asked.' }),
  }),
});
