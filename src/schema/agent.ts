import type { AgentInfo } from '../pool/agent-pool.js';
import { AgentStatusEnum } from './agent-status.js';
import { builder } from './builder.js';

/** The Agent type: a story's agent. */
export const AgentRef = builder.objectRef<AgentInfo>('Agent').implement({
  description: 'The agent of one story: the state of its latest run and what its runs have added up to.',
  fields: (t) => ({
    storyId: t.exposeID('storyId', { description: 'The story\'s id.' }),
    status: t.expose('status', { type: AgentStatusEnum, description: 'The status of the story\'s latest run.' }),
    sessionId: t.exposeString('sessionId', {
      nullable: true,
      description: 'The agent\'s own session id (Claude\'s system/init event), newest of the story\'s runs.',
    }),
    worktreePath: t.exposeString('worktreePath', {
      nullable: true,
      description: 'The absolute path of the story\'s git worktree, once made.',
    }),
    branch: t.exposeString('branch', { nullable: true, description: 'The story\'s branch, once its worktree is made.' }),
    pid: t.exposeInt('pid', {
      nullable: true,
      description: 'While running: the pid that leads the run\'s process group.',
    }),
    exitCode: t.exposeInt('exitCode', { nullable: true, description: 'The exit code of the latest run\'s agent.' }),
    error: t.exposeString('error', { nullable: true, description: 'Why the latest run FAILED.' }),
    costUsd: t.exposeFloat('costUsd', {
      nullable: true,
      description: 'The sum of Claude\'s result total_cost_usd over the story\'s runs; null when none reported one.',
    }),
    startedAt: t.expose('startedAt', {
      type: 'DateTime',
      nullable: true,
      description: 'When the latest run was started (startAgent).',
    }),
    finishedAt: t.expose('finishedAt', { type: 'DateTime', nullable: true, description: 'When the latest run ended.' }),
    lastSeq: t.exposeInt('lastSeq', { description: 'The seq of the newest event of this story, 0 if none.' }),
  }),
});
