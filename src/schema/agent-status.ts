import { builder } from './builder.js';

/** The AgentStatus enum. */
export const AgentStatusEnum = builder.enumType('AgentStatus', {
  description: 'Where a story\'s agent is. A run ends in exactly one of COMPLETED, FAILED or STOPPED.',
  values: {
    PENDING: { description: 'Started: waiting for a slot, or preparing its worktree and setup.' },
    RUNNING: { description: 'The agent process is running.' },
    COMPLETED: { description: 'The agent exited 0 and reported success.' },
    FAILED: { description: 'The run failed; `Agent.error` says why.' },
    STOPPED: { description: 'Stopped by stopAgent or by the server shutting down.' },
  } as const,
});
