import { AgentPoolError } from '../errors.js';

/**
 * `agent-pool.toml` is invalid: a TOML syntax error (with its line), an unknown key, a
 * value of the wrong type or an unknown placeholder. The message names the file and the
 * key, and says what is allowed.
 */
export class ConfigError extends AgentPoolError {
  /** The config file's path. */
  readonly file: string;
  /** The dotted key path that is wrong (`agent.command`), when the error is about a key. */
  readonly key: string | undefined;
  /** The 1-based line, for TOML syntax errors. */
  readonly line: number | undefined;

  constructor(
    file: string,
    detail: string,
    options: { key?: string; line?: number; column?: number; cause?: unknown } = {},
  ) {
    const where =
      options.line === undefined
        ? file
        : `${file}:${options.line}${options.column === undefined ? '' : `:${options.column}`}`;
    const key = options.key === undefined ? '' : ` ${options.key}:`;
    super('CONFIG_ERROR', `${where}:${key} ${detail}`, {
      cause: options.cause,
      extensions: { file, key: options.key, line: options.line },
    });
    this.file = file;
    this.key = options.key;
    this.line = options.line;
  }
}
