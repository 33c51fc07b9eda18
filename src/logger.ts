/** Where agent-pool's components report what happened. The server logs to stderr. */
export interface Logger {
  /** What helps find a problem: a client's refused request, a retry. Off by default. */
  debug(message: string): void;
  info(message: string): void;
  warn(message: string, error?: unknown): void;
  error(message: string, error?: unknown): void;
}

/** A logger that drops everything (the default of library use and tests). */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};

/**
 * What a record's text must not hold as it is: control characters (C0 and C1: a newline, or
 * U+0085, could start a fake record), Unicode's line and paragraph separators, and the
 * bidirectional controls that would reorder what a reader sees.
 */
const UNSAFE_IN_A_RECORD = /[\\\p{Cc}\p{Zl}\p{Zp}\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/gu;

/**
 * Text made unable to pass for more than it is in a log: control characters (newlines
 * above all, which could start a fake record), line separators and bidirectional controls
 * become escapes such as `\n` or `\u0085`, and a backslash becomes `\\`, so that an
 * escape in a record always stands for the character, never for text that looked like it.
 */
export function oneLine(text: string): string {
  return text.replace(UNSAFE_IN_A_RECORD, (char) => {
    if (char === '\\') return '\\\\';
    if (char === '\n') return '\\n';
    if (char === '\r') return '\\r';
    if (char === '\t') return '\\t';
    return `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`;
  });
}

/**
 * An error's detail, each line indented, so that a record always starts with its time at
 * the start of a line and nothing inside an error's message can pass for another record.
 */
function detail(error: unknown): string {
  if (error === undefined) return '';
  const text = error instanceof Error ? (error.stack ?? error.message) : String(error);
  const lines = text.split('\n').map((line) => `    ${oneLine(line.replace(/\t/g, '  '))}`);
  return `\n${lines.join('\n')}`;
}

/**
 * The longest message a record holds; the rest is cut (a client's text can be a megabyte).
 * @default 2000
 */
export const MAX_MESSAGE_LENGTH = 2000;

function bounded(message: string): string {
  if (message.length <= MAX_MESSAGE_LENGTH) return message;
  // Not between the two halves of a surrogate pair (an emoji would become U+FFFD).
  const end = isHighSurrogate(message.charCodeAt(MAX_MESSAGE_LENGTH - 1)) ? MAX_MESSAGE_LENGTH - 1 : MAX_MESSAGE_LENGTH;
  let more = 0;
  for (let i = end; i < message.length; i++) {
    // The second half of a surrogate pair is not a character of its own.
    if (i > end && isHighSurrogate(message.charCodeAt(i - 1))) continue;
    more++;
  }
  return `${message.slice(0, end)}… (${more} more characters)`;
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}

/** The levels of `--log-level`, quietest last. */
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * Writes one record per message to stderr: the time, the level and the message on one
 * line (control characters escaped, at most {@link MAX_MESSAGE_LENGTH} characters), then
 * the error's stack, if any, indented. Records below `level` are dropped.
 * @param level the quietest level written. @default "info"
 */
export function stderrLogger(level: LogLevel = 'info'): Logger {
  const lowest = LOG_LEVELS.indexOf(level);
  const writer = (at: LogLevel) =>
    LOG_LEVELS.indexOf(at) < lowest
      ? () => undefined
      : (message: string, error?: unknown): void => {
          process.stderr.write(`${new Date().toISOString()} ${at} ${oneLine(bounded(message))}${detail(error)}\n`);
        };
  return { debug: writer('debug'), info: writer('info'), warn: writer('warn'), error: writer('error') };
}

/**
 * Reports what clients can cause as often as they like (malformed frames, refused
 * operations) without letting them flood the log: the first report of each window of
 * `intervalMs` is written, the others counted and summed up in the next one written.
 */
export class ThrottledLog {
  #windowEnds = 0;
  #suppressed = 0;

  /** @param intervalMs the window. @default 10_000 */
  constructor(
    private readonly logger: Logger,
    private readonly intervalMs = 10_000,
  ) {}

  /** Logs `message` at warn, unless another report was logged less than a window ago. */
  warn(message: string): void {
    const now = Date.now();
    if (now < this.#windowEnds) {
      this.#suppressed++;
      return;
    }
    const more = this.#suppressed === 0 ? '' : ` (and ${this.#suppressed} more such reports before it, not logged)`;
    this.#suppressed = 0;
    this.#windowEnds = now + this.intervalMs;
    this.logger.warn(`${message}${more}`);
  }
}
