import type { PendingApproval } from '../pool/control-session.js';
import type { ApprovalOption } from '../pool/events.js';
import { builder } from './builder.js';

/** The ApprovalOption type: one answer an approval request offers. */
export const ApprovalOptionRef = builder.objectRef<ApprovalOption>('ApprovalOption').implement({
  description: 'One answer an approval request offers; respondToApproval(optionId:) chooses it.',
  fields: (t) => ({
    id: t.exposeID('id', { description: 'What respondToApproval\'s optionId names.' }),
    name: t.exposeString('name', { description: 'Its label, as the agent gives it.' }),
    kind: t.exposeString('kind', {
      description: 'allow_once, allow_always, reject_once or reject_always (ACP\'s kinds, which Claude\'s approvals use too).',
    }),
  }),
});

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
    options: t.field({
      type: [ApprovalOptionRef],
      description:
        'The answers it offers. Claude\'s: allow_once, reject_once, and allow_always when it made suggestions; an ACP ' +
        'agent\'s: its own.',
      resolve: (approval) => approval.options,
    }),
    requestedAt: t.expose('requestedAt', { type: 'DateTime', description: 'When the agent asked.' }),
  }),
});
