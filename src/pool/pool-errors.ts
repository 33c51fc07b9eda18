import { AgentPoolError } from '../errors.js';

/** The story already has a run that is PENDING or RUNNING. */
export class AgentAlreadyRunningError extends AgentPoolError {
  constructor(storyId: string, status: string) {
    super(
      'AGENT_ALREADY_RUNNING',
      `story ${storyId} is already ${status}: wait for it to finish or stop it (stopAgent) before starting it again`,
      { extensions: { storyId, status } },
    );
  }
}

/** No story with this id was ever started. */
export class AgentNotFoundError extends AgentPoolError {
  constructor(storyId: string) {
    super('AGENT_NOT_FOUND', `story ${storyId} has never been started: start it with startAgent first`, {
      extensions: { storyId },
    });
  }
}

/** The pool is shutting down and takes no new work. */
export class PoolClosedError extends Error {
  constructor() {
    super('agent-pool is shutting down and starts no more agents');
    this.name = 'PoolClosedError';
  }
}
