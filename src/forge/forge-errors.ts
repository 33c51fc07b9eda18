import { AgentPoolError } from '../errors.js';

/**
 * Pull requests cannot be opened because the forge is not set up: `[forge] kind` is "none",
 * the token's variable is unset or empty, or the repository cannot be worked out from the
 * remote's URL. The message says which, and what to set.
 */
export class ForgeNotConfiguredError extends AgentPoolError {
  constructor(message: string) {
    super('FORGE_NOT_CONFIGURED', message);
  }
}

/**
 * The forge refused a request or could not be reached. `extensions.status` is the HTTP
 * status it answered, or null when there was no answer (a network error or a timeout). The
 * message says what the forge answered and what to do; it never holds the token.
 */
export class ForgeError extends AgentPoolError {
  /** The HTTP status the forge answered, or null when it did not answer. */
  readonly status: number | null;

  constructor(message: string, options: { status: number | null; cause?: unknown }) {
    super('FORGE_ERROR', message, { cause: options.cause, extensions: { status: options.status } });
    this.status = options.status;
  }
}
