import { ForgeError } from './forge-errors.js';

/** How long one request to a forge may take, answer included, unless the settings say otherwise. */
export const DEFAULT_FORGE_TIMEOUT_MS = 30_000;
/** The most of a forge's answer that is read; a pull request, or a page of them, is far smaller. */
const MAX_ANSWER_BYTES = 8 * 1024 * 1024;
/** The most of a forge's own message that goes into an error's message. */
const MAX_MESSAGE_CHARS = 500;

/** What {@link ForgeHttp} needs to talk to one forge's API. */
export interface ForgeHttpOptions {
  /** The forge's name in messages: "GitHub" or "GitLab". */
  forgeName: string;
  /** The API's base URL, without a trailing `/`. */
  apiUrl: string;
  /** The repository, for messages. */
  repo: string;
  /** Headers sent with every request, the token's among them. */
  headers: Record<string, string>;
  /** The token, only so that it can be cut out of anything the forge says back. */
  token: string;
  /** The environment variable that holds the token, for messages. */
  tokenVariable: string;
  /** How long one request may take, answer included. */
  timeoutMs: number;
}

/** One request to a forge's API. */
export interface ForgeRequest {
  method: 'GET' | 'POST' | 'PATCH' | 'PUT';
  /** The path below the API's base URL, its parts already encoded: `/repos/o/n/pulls`. */
  path: string;
  query?: Record<string, string>;
  /** Sent as JSON. */
  body?: unknown;
  /** What the request does, for messages: "opening a pull request of story/a into main". */
  doing: string;
}

/** The forge's answer: its status and its body, parsed when it is JSON. */
export interface ForgeAnswer {
  status: number;
  /** The parsed JSON, or undefined when the body is empty or not JSON. */
  body: unknown;
  /** The body as text. */
  text: string;
}

/**
 * A forge's REST API over the global `fetch`: every request has a deadline, carries the
 * token only to the configured origin (a redirect is an error, never followed), and every
 * failure becomes a {@link ForgeError} whose message says what the forge answered and what
 * to do, without the token.
 */
export class ForgeHttp {
  readonly #options: ForgeHttpOptions;

  constructor(options: ForgeHttpOptions) {
    this.#options = options;
  }

  /**
   * Sends one request and returns the forge's answer, whatever its status.
   * @throws ForgeError (status null) when the forge cannot be reached or does not answer in
   *   time; ForgeError (its status) for a redirect or an answer too large to read.
   */
  async request(request: ForgeRequest): Promise<ForgeAnswer> {
    const { forgeName, apiUrl, timeoutMs } = this.#options;
    const url = new URL(`${apiUrl}${request.path}`);
    for (const [name, value] of Object.entries(request.query ?? {})) url.searchParams.set(name, value);
    const headers: Record<string, string> = { ...this.#options.headers };
    if (request.body !== undefined) headers['Content-Type'] = 'application/json';
    let response: Response;
    let text: string;
    try {
      response = await fetch(url, {
        method: request.method,
        headers,
        body: request.body === undefined ? undefined : JSON.stringify(request.body),
        // A redirect could take the token to another origin: it is reported, never followed.
        redirect: 'manual',
        signal: AbortSignal.timeout(timeoutMs),
      });
      if (response.status >= 300 && response.status < 400) {
        await response.body?.cancel();
        const location = this.#clean(response.headers.get('location') ?? '(none)');
        throw new ForgeError(
          `${forgeName} answered ${response.status} with a redirect to ${location} when ${request.doing}: agent-pool does not follow a redirect with the token; set [forge] api_url to the API's own address`,
          { status: response.status },
        );
      }
      text = await readText(response, () =>
        new ForgeError(
          `${forgeName} answered more than ${MAX_ANSWER_BYTES} bytes when ${request.doing}: check [forge] api_url`,
          { status: response.status },
        ),
      );
    } catch (error) {
      if (error instanceof ForgeError) throw error;
      if (error instanceof Error && error.name === 'TimeoutError') {
        throw new ForgeError(
          `${forgeName} did not answer within ${formatSeconds(timeoutMs)} when ${request.doing}: it is slow or unreachable; try again later, or check [forge] api_url (${apiUrl})`,
          { status: null, cause: error },
        );
      }
      throw new ForgeError(
        `could not reach ${forgeName} at ${apiUrl} when ${request.doing} (${this.#clean(networkReason(error))}): check [forge] api_url and the network, then try again`,
        { status: null, cause: error },
      );
    }
    let body: unknown;
    try {
      body = text === '' ? undefined : JSON.parse(text);
    } catch {
      body = undefined;
    }
    return { status: response.status, body, text };
  }

  /**
   * The error for an answer that is not what the request wanted: the forge's status and
   * message, and what to do about it. `notFound` replaces the advice for a 404.
   */
  refusal(answer: ForgeAnswer, doing: string, options: { notFound?: string } = {}): ForgeError {
    const { forgeName } = this.#options;
    const said = this.#clean(forgeSaid(answer));
    const advice = this.#advice(answer.status, options.notFound);
    return new ForgeError(
      `${forgeName} answered ${answer.status} when ${doing}: ${said}${advice === '' ? '' : `. ${advice}`}`,
      { status: answer.status },
    );
  }

  /** The error for a successful answer that does not hold what the API documents. */
  unexpected(answer: ForgeAnswer, doing: string, expected: string): ForgeError {
    return new ForgeError(
      `${this.#options.forgeName} answered ${answer.status} when ${doing}, but not with ${expected}: check that [forge] api_url is ${this.#options.forgeName}'s API`,
      { status: answer.status },
    );
  }

  #advice(status: number, notFound: string | undefined): string {
    const { tokenVariable, repo, forgeName } = this.#options;
    if (status === 401) {
      return `The token in $${tokenVariable} is wrong or has expired: set the variable to a valid token and restart agent-pool`;
    }
    if (status === 403) {
      return `The token in $${tokenVariable} is missing rights on ${repo} (GitHub: "Pull requests: read and write"; GitLab: the api scope and the Developer role), or ${forgeName} refused for the reason it gives`;
    }
    if (status === 404) {
      return (
        notFound ??
        `Check [forge] repo ("${repo}") and api_url, and that the token in $${tokenVariable} can see the repository`
      );
    }
    if (status === 429) return `${forgeName} limits the rate of requests: try again later`;
    if (status >= 500) return `${forgeName} failed: try again later`;
    return '';
  }

  /** Text from the forge made fit for a message: no token, no control characters, not too long. */
  #clean(text: string): string {
    let clean = text.replaceAll(this.#options.token, '[token]');
    clean = clean.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, ' ').trim();
    return clean.length > MAX_MESSAGE_CHARS ? `${clean.slice(0, MAX_MESSAGE_CHARS)}…` : clean;
  }
}

/** Reads a body up to {@link MAX_ANSWER_BYTES}; `tooLarge` makes the error past that. */
async function readText(response: Response, tooLarge: () => Error): Promise<string> {
  if (response.body === null) return '';
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_ANSWER_BYTES) {
      await reader.cancel();
      throw tooLarge();
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * What a forge says in an error answer: GitHub's `message` and its `errors`, GitLab's
 * `message` (a string, a list, or a table of field errors) or `error`, else the text.
 */
function forgeSaid(answer: ForgeAnswer): string {
  const body = answer.body;
  if (typeof body === 'object' && body !== null && !Array.isArray(body)) {
    const record = body as Record<string, unknown>;
    const parts: string[] = [];
    const message = describeMessage(record.message ?? record.error);
    if (message !== '') parts.push(message);
    if (Array.isArray(record.errors)) {
      for (const item of record.errors) {
        if (typeof item === 'string') parts.push(item);
        else if (typeof item === 'object' && item !== null) {
          const detail = item as Record<string, unknown>;
          if (typeof detail.message === 'string') parts.push(detail.message);
          else {
            const where = [detail.resource, detail.field].filter((part) => typeof part === 'string').join('.');
            parts.push(`${where} ${typeof detail.code === 'string' ? detail.code : 'invalid'}`.trim());
          }
        }
      }
    }
    if (parts.length > 0) return parts.join(': ');
  }
  const text = answer.text.trim();
  if (text === '') return '(no message)';
  if (text.startsWith('<')) return '(an HTML page)';
  return text;
}

function describeMessage(message: unknown): string {
  if (typeof message === 'string') return message;
  if (Array.isArray(message)) return message.map((item) => String(item)).join('; ');
  if (typeof message === 'object' && message !== null) {
    return Object.entries(message)
      .map(([field, problems]) => `${field} ${Array.isArray(problems) ? problems.join(', ') : String(problems)}`)
      .join('; ');
  }
  return '';
}

/** Why fetch failed, from undici's "fetch failed" and its cause (ECONNREFUSED, ENOTFOUND, …). */
function networkReason(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause;
  if (cause instanceof Error) {
    const code = (cause as NodeJS.ErrnoException).code;
    return code === undefined ? `${error.message}: ${cause.message}` : `${error.message}: ${code}`;
  }
  return error.message;
}

function formatSeconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(3))} s`;
}
