import { AgentPoolError } from '../errors.js';

/** The story already has a run that is PENDING or RUNNING. */
export class AgentAlreadyRunningError extends AgentPoolError {
  /** @param doing what waits for the run to end: "starting it again", "landing its work", … */
  constructor(storyId: string, status: string, doing = 'starting it again') {
    super(
      'AGENT_ALREADY_RUNNING',
      `story ${storyId} is already ${status}: wait for it to finish or stop it (stopAgent) before ${doing}`,
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

/** The pool is shutting down (or shut down) and takes no new work. */
export class PoolClosedError extends AgentPoolError {
  constructor() {
    super('POOL_CLOSED', 'agent-pool is shutting down and starts no more agents');
  }
}

/**
 * continueAgent of a story none of whose runs reported a session of the agent's own, or
 * whose agent said it can take none back (an ACP agent that offers neither resume nor load).
 */
export class NoSessionToResumeError extends AgentPoolError {
  constructor(storyId: string, why = 'no run reported one') {
    super('NO_SESSION_TO_RESUME', `story ${storyId} has no agent session to resume (${why}): start it again with startAgent instead`, {
      extensions: { storyId },
    });
  }
}

/** Input or a resize for a story whose agent is not running. */
export class AgentNotRunningError extends AgentPoolError {
  constructor(storyId: string, status: string, hint = 'its agent has no terminal to write to') {
    super('AGENT_NOT_RUNNING', `story ${storyId} is ${status}, not RUNNING: ${hint}`, {
      extensions: { storyId, status },
    });
  }
}

/** An argument out of its range; the message says which and what is allowed. */
export class InvalidArgumentError extends AgentPoolError {
  constructor(message: string) {
    super('INVALID_ARGUMENT', message);
  }
}

/** Input for an agent that has not read what it was already sent. */
export class InputBacklogFullError extends AgentPoolError {
  constructor(queuedBytes: number, maxBytes: number) {
    super(
      'INPUT_BACKLOG_FULL',
      `the agent has not yet read ${queuedBytes} bytes of input sent to it before (at most ${maxBytes} wait): send more once it reads`,
      { extensions: { queuedBytes, maxBytes } },
    );
  }
}

/** startAgent named an agent profile the config does not have. */
export class UnknownAgentError extends AgentPoolError {
  constructor(agent: string, configured: readonly string[]) {
    super(
      'UNKNOWN_AGENT',
      `there is no agent profile ${JSON.stringify(agent)}: the profiles in agent-pool.toml are ${configured.join(', ')} ` +
        '("default" is [agent]; add others as [agents.NAME])',
      { extensions: { agent, configured } },
    );
  }
}

/** An approval operation or sendMessage for an agent that runs without a control channel. */
export class AgentNotInteractiveError extends AgentPoolError {
  constructor(storyId: string) {
    super(
      'AGENT_NOT_INTERACTIVE',
      `story ${storyId} runs without a control channel (Claude in permission_mode bypassPermissions, or a kind other than ` +
        'claude and acp): it asks no approvals and takes no messages; set permission_mode in agent-pool.toml (or run the ' +
        'agent over ACP, kind "acp"), or use continueAgent after it ends',
      { extensions: { storyId } },
    );
  }
}

/** An answer to an approval request the agent never made (or of another run). */
export class ApprovalNotFoundError extends AgentPoolError {
  constructor(storyId: string, requestId: string) {
    super('APPROVAL_NOT_FOUND', `story ${storyId} has no approval request ${JSON.stringify(requestId)} waiting: see Agent.pendingApprovals`, {
      extensions: { storyId, requestId },
    });
  }
}

/** A second answer to an approval request. */
export class ApprovalAlreadyAnsweredError extends AgentPoolError {
  constructor(storyId: string, requestId: string) {
    super('APPROVAL_ALREADY_ANSWERED', `the approval request ${JSON.stringify(requestId)} of story ${storyId} was already answered`, {
      extensions: { storyId, requestId },
    });
  }
}

/** startService or stopService named a service `[services]` does not have. */
export class UnknownServiceError extends AgentPoolError {
  constructor(name: string, services: readonly string[]) {
    const known = services.length === 0 ? 'agent-pool.toml configures none: add a [services.NAME] table' : `the services are ${services.join(', ')}`;
    super('UNKNOWN_SERVICE', `no service is named ${JSON.stringify(name)}; ${known}`, { extensions: { name, services } });
  }
}

/** Every port of `[services] ports` is another story's. */
export class NoFreePortError extends AgentPoolError {
  constructor(storyId: string, service: string, ports: string) {
    super(
      'NO_FREE_PORT',
      `no port is left in [services] ports (${ports}) for service ${service} of story ${storyId}: every one is kept by another story's service; widen the range in agent-pool.toml`,
      { extensions: { storyId, service, ports } },
    );
  }
}
