/**
 * The error codes of the public contract. Every error a client can act on carries one of
 * them as its GraphQL `extensions.code`; the server turns an {@link AgentPoolError} into a
 * GraphQL error with that code and masks everything else.
 */
export type ErrorCode =
  | 'INVALID_STORY_ID'
  | 'AGENT_ALREADY_RUNNING'
  | 'AGENT_NOT_FOUND'
  | 'CONFIG_ERROR'
  | 'UNAUTHENTICATED'
  | 'EVENTS_TRUNCATED'
  | 'NO_SESSION_TO_RESUME'
  | 'AGENT_NOT_RUNNING'
  | 'PATH_NOT_CHANGED'
  | 'INVALID_ARGUMENT'
  | 'UNKNOWN_AGENT'
  | 'AGENT_NOT_INTERACTIVE'
  | 'APPROVAL_NOT_FOUND'
  | 'APPROVAL_ALREADY_ANSWERED'
  | 'GIT_READ_TIMEOUT'
  | 'GIT_READ_CANCELLED'
  | 'TOO_MANY_GIT_READS'
  | 'POOL_CLOSED'
  | 'INPUT_BACKLOG_FULL'
  | 'NO_TARGET_BRANCH'
  | 'MERGE_CONFLICT'
  | 'TARGET_DIRTY'
  | 'NOTHING_TO_MERGE'
  | 'BRANCH_NOT_MERGED'
  | 'FORGE_NOT_CONFIGURED'
  | 'FORGE_ERROR'
  | 'PUSH_FAILED'
  | 'LANDING_RACE'
  | 'STORY_WORKTREE_BUSY'
  | 'UNSAFE_GIT_CONFIG'
  | 'UNKNOWN_SERVICE'
  | 'NO_FREE_PORT'
  | 'FORBIDDEN'
  | 'SERVER_UNAVAILABLE';

/**
 * The base of every error that agent-pool reports to its callers on purpose. The layers
 * below GraphQL (config, worktree, pool) throw subclasses of it; they know nothing of
 * GraphQL, only the code that the contract gives the error.
 */
export class AgentPoolError extends Error {
  /** The contract's `extensions.code`. */
  readonly code: ErrorCode;
  /** More facts for `extensions` (for example `firstSeq` of `EVENTS_TRUNCATED`). */
  readonly extensions: Readonly<Record<string, unknown>>;

  constructor(
    code: ErrorCode,
    message: string,
    options: { cause?: unknown; extensions?: Record<string, unknown> } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.extensions = options.extensions ?? {};
  }
}

/** Turns anything thrown into a one-line message, for logs and agents' error events. */
export function describeError(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
