import { hostname, networkInterfaces } from 'node:os';

/**
 * The largest request body (HTTP) or WebSocket message the server reads; anything bigger
 * is refused before it is parsed.
 * @default 1 MiB
 */
export const MAX_BODY_BYTES = 1024 * 1024;

/** Who may talk to the server from a browser, and by which names. */
export interface GuardOptions {
  /** The address the server is bound to. */
  host: string;
  /** Origins (`scheme://host[:port]`) besides the server's own that may call it. */
  allowOrigins: readonly string[];
  /** Host names besides the defaults that requests may be addressed to. */
  allowHosts: readonly string[];
}

/** A refusal: the HTTP status and why. */
export interface Refusal {
  status: 403 | 411 | 413;
  message: string;
}

const WILDCARD_ADDRESSES = new Set(['0.0.0.0', '::', '']);

function normalizeHostname(name: string): string {
  return name.toLowerCase().replace(/^\[(.*)\]$/, '$1').replace(/\.$/, '');
}

/** The host name of a `Host` header value (`name:port`, `[v6]:port`). */
function hostOf(hostHeader: string): string {
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(hostHeader);
  if (bracketed) return normalizeHostname(bracketed[1]!);
  return normalizeHostname(hostHeader.replace(/:\d+$/, ''));
}

/**
 * Normalizes an origin given on the command line.
 * @throws Error when it is not `scheme://host[:port]`.
 */
export function parseOrigin(origin: string): string {
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    throw new Error(`--allow-origin ${JSON.stringify(origin)} is not an origin such as https://dashboard.example.com`);
  }
  if (url.origin === 'null' || url.pathname !== '/' || url.search || url.hash) {
    throw new Error(`--allow-origin ${JSON.stringify(origin)} is not an origin such as https://dashboard.example.com`);
  }
  return url.origin;
}

/**
 * Checks what browsers and DNS rebinding could abuse, before any other handling:
 * - `Host` must be a name the server answers to: the bound address, `localhost`,
 *   `127.0.0.1`, `::1`, an `--allow-host`, or an allowed origin's host; bound to 0.0.0.0
 *   (or ::), also the machine's own addresses and hostname. A rebound name is refused.
 * - `Origin`, when a browser sends one, must be the server's own (the page came from
 *   this server, under the same `Host`) or an `--allow-origin`. Requests without `Origin`
 *   (scripts, curl) pass: they still need the token.
 * - A body must declare its length (Content-Length) and stay under {@link MAX_BODY_BYTES}.
 */
export class RequestGuard {
  readonly #allowedHosts = new Set<string>();
  readonly #allowedOrigins: Set<string>;

  constructor(options: GuardOptions) {
    this.#allowedOrigins = new Set(options.allowOrigins.map(parseOrigin));
    const names = ['localhost', '127.0.0.1', '::1', ...options.allowHosts];
    if (WILDCARD_ADDRESSES.has(options.host)) {
      names.push(hostname());
      for (const addresses of Object.values(networkInterfaces())) {
        for (const address of addresses ?? []) names.push(address.address);
      }
    } else {
      names.push(options.host);
    }
    for (const origin of this.#allowedOrigins) names.push(new URL(origin).hostname);
    for (const name of names) this.#allowedHosts.add(normalizeHostname(name));
  }

  /** Whether CORS is on (only when origins are allowed), and for which. */
  get corsOrigins(): string[] {
    return [...this.#allowedOrigins];
  }

  /** Checks a request's `Host` and `Origin`; undefined when it may go on. */
  checkOrigin(headers: { host?: string | undefined; origin?: string | undefined }): Refusal | undefined {
    const host = headers.host;
    if (!host || !this.#allowedHosts.has(hostOf(host))) {
      return {
        status: 403,
        message: `requests addressed to host ${JSON.stringify(host ?? '')} are refused: use the address agent-pool printed, or start it with --allow-host <name>`,
      };
    }
    const origin = headers.origin;
    if (origin === undefined) return undefined;
    if (this.#allowedOrigins.has(origin)) return undefined;
    let own = false;
    try {
      const url = new URL(origin);
      own = (url.protocol === 'http:' || url.protocol === 'https:') && url.host.toLowerCase() === host.toLowerCase();
    } catch {
      own = false;
    }
    if (own) return undefined;
    return {
      status: 403,
      message: `requests from the web origin ${JSON.stringify(origin)} are refused: only agent-pool's own pages may call it, or origins given with --allow-origin`,
    };
  }

  /** Checks that a request's body declares a length under the cap; undefined when it may go on. */
  checkBody(method: string | undefined, headers: { 'content-length'?: string | undefined; 'transfer-encoding'?: string | undefined }): Refusal | undefined {
    if (method === 'GET' || method === 'HEAD' || method === 'OPTIONS') return undefined;
    const length = headers['content-length'];
    if (length === undefined) {
      if (headers['transfer-encoding'] === undefined) return undefined;
      return { status: 411, message: 'a request body must come with its Content-Length' };
    }
    if (Number(length) > MAX_BODY_BYTES) {
      return { status: 413, message: `request bodies are limited to ${MAX_BODY_BYTES} bytes; this one has ${length}` };
    }
    return undefined;
  }
}
