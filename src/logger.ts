/** Where agent-pool's components report what happened. The server logs to stderr. */
export interface Logger {
  info(message: string): void;
  warn(message: string, error?: unknown): void;
  error(message: string, error?: unknown): void;
}

/** A logger that drops everything (the default of library use and tests). */
export const silentLogger: Logger = {
  info() {},
  warn() {},
  error() {},
};

function detail(error: unknown): string {
  if (error === undefined) return '';
  if (error instanceof Error) return `\n${error.stack ?? error.message}`;
  return `\n${String(error)}`;
}

/** Writes one line per message to stderr, with the time and the level. */
export function stderrLogger(): Logger {
  const write = (level: string, message: string, error?: unknown): void => {
    process.stderr.write(`${new Date().toISOString()} ${level} ${message}${detail(error)}\n`);
  };
  return {
    info: (message) => write('info', message),
    warn: (message, error) => write('warn', message, error),
    error: (message, error) => write('error', message, error),
  };
}
