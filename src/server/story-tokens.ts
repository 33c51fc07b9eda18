import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/** What a story token stands for: one run of one story. */
export interface StoryTokenClaim {
  storyId: string;
  run: number;
}

const PREFIX = 'aps1';
/** The longest token read; anything longer is refused before it is looked at. */
const MAX_TOKEN_LENGTH = 512;

/**
 * Tokens scoped to one run of one story, for the agent of a profile with `mcp = true`:
 * `aps1.<story id, base64url>.<run>.<HMAC-SHA256 of both>`. The key is derived from the
 * server's token (so that every server of a project sharing it can check them), or random
 * per process when auth is off. A token says who; whether it still counts (its run is
 * PENDING or RUNNING) is the caller's to check against the pool, so that it dies with its
 * run and nothing need be stored or revoked.
 */
export class StoryTokens {
  readonly #key: Buffer;

  constructor(serverToken: string | null) {
    this.#key = serverToken === null
      ? randomBytes(32)
      : createHmac('sha256', 'agent-pool story tokens v1').update(serverToken).digest();
  }

  issue(storyId: string, run: number): string {
    const body = `${PREFIX}.${Buffer.from(storyId).toString('base64url')}.${run}`;
    return `${body}.${this.#mac(body).toString('base64url')}`;
  }

  /** The story and run a token was issued for; undefined when it is not one of this server's. */
  verify(token: string): StoryTokenClaim | undefined {
    if (token.length > MAX_TOKEN_LENGTH) return undefined;
    const parts = token.split('.');
    if (parts.length !== 4 || parts[0] !== PREFIX || !/^[1-9]\d{0,8}$/.test(parts[2]!)) return undefined;
    const mac = Buffer.from(parts[3]!, 'base64url');
    const expected = this.#mac(parts.slice(0, 3).join('.'));
    if (mac.length !== expected.length || !timingSafeEqual(mac, expected)) return undefined;
    return { storyId: Buffer.from(parts[1]!, 'base64url').toString(), run: Number(parts[2]) };
  }

  #mac(body: string): Buffer {
    return createHmac('sha256', this.#key).update(body).digest();
  }
}
