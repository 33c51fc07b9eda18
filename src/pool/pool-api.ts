import type { AgentPool } from './agent-pool.js';

/**
 * The operations that need a story's run or worktree: in a cluster they run on the server
 * that holds the story (see src/cluster/cluster-pool.ts), so their answer may come later.
 */
export const STORY_OPERATIONS = [
  'start',
  'continue',
  'sendInput',
  'respondToApproval',
  'sendMessage',
  'interrupt',
  'resizeTerminal',
  'stop',
  'changes',
  'diff',
  'commits',
  'landingStatus',
  'merge',
  'rebase',
  'createPullRequest',
  'archive',
  'services',
  'startService',
  'stopService',
] as const satisfies ReadonlyArray<keyof AgentPool>;

export type StoryOperation = (typeof STORY_OPERATIONS)[number];

/**
 * The pool as the server's API (GraphQL, MCP) uses it: an {@link AgentPool}, or in a cluster
 * one whose story operations may be answered by another server.
 */
export type PoolApi = Omit<AgentPool, StoryOperation> & {
  [K in StoryOperation]: (...args: Parameters<AgentPool[K]>) => Awaited<ReturnType<AgentPool[K]>> | Promise<Awaited<ReturnType<AgentPool[K]>>>;
};
