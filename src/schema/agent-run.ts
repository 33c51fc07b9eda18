import type { RunInfo } from '../pool/stories.js';
import { AgentStatusEnum } from './agent-status.js';
import { builder } from './builder.js';
import { UsageRef } from './usage.js';

/** The AgentRun type: one start of a story's agent. */
export const AgentRunRef = builder.objectRef<RunInfo>('AgentRun').implement({
  description: 'One start of a story\'s agent (startAgent), numbered 1, 2, … per story.',
  fields: (t) => ({
    number: t.exposeInt('number', { description: 'The run\'s number within its story.' }),
    agent: t.exposeString('agent', { nullable: true, description: 'The agent profile the run used.' }),
    usage: t.expose('usage', { type: UsageRef, nullable: true, description: 'What the run used, as its CLI reported it.' }),
    prompt: t.exposeString('prompt', {
      nullable: true,
      description: 'The prompt given to startAgent; null when the configured one was used.',
    }),
    renderedPrompt: t.exposeString('renderedPrompt', {
      nullable: true,
      description:
        'The prompt the agent got: as given (at once), or the configured one with its placeholders rendered once the agent ' +
        'starts (null until then, and for a run that ended before).',
    }),
    status: t.expose('status', { type: AgentStatusEnum, description: 'Where the run is, or how it ended.' }),
    sessionId: t.exposeString('sessionId', { nullable: true, description: 'The agent\'s session id in this run.' }),
    runner: t.exposeString('runner', { nullable: true, description: 'The server of the cluster that ran it (its --runner-name); null for a server alone.' }),
    exitCode: t.exposeInt('exitCode', { nullable: true, description: 'The agent\'s exit code.' }),
    costUsd: t.exposeFloat('costUsd', { nullable: true, description: 'What the agent reported this run cost (Claude\'s total_cost_usd).' }),
    startedAt: t.expose('startedAt', { type: 'DateTime', nullable: true, description: 'When the run was started.' }),
    finishedAt: t.expose('finishedAt', { type: 'DateTime', nullable: true, description: 'When the run ended.' }),
    firstSeq: t.exposeInt('firstSeq', { nullable: true, description: 'The seq of the run\'s first event.' }),
    lastSeq: t.exposeInt('lastSeq', { nullable: true, description: 'The seq of the run\'s newest event.' }),
  }),
});
