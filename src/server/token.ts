import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { STATE_DIR_NAME } from '../worktree/project.js';

/** Where the token came from. */
export type TokenSource = 'flag' | 'environment' | 'file' | 'generated';

/** The file, in the project, that keeps the token between starts. */
export function tokenFile(projectRoot: string): string {
  return path.join(projectRoot, STATE_DIR_NAME, 'token');
}

/**
 * The server's token, as the contract orders it: `--token`, else `AGENT_POOL_TOKEN`, else
 * `.agent-pool/token`, which is created on the first start with a random 32-byte value and
 * mode 0600, and reused after (its mode is tightened to 0600 if it was looser).
 */
export function resolveToken(options: {
  flag: string | undefined;
  env: NodeJS.ProcessEnv;
  projectRoot: string;
}): { token: string; source: TokenSource } {
  if (options.flag) return { token: options.flag, source: 'flag' };
  if (options.env.AGENT_POOL_TOKEN) return { token: options.env.AGENT_POOL_TOKEN, source: 'environment' };
  const file = tokenFile(options.projectRoot);
  try {
    const token = readFileSync(file, 'utf8').trim();
    if (token !== '') {
      if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
      return { token, source: 'file' };
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const token = randomBytes(32).toString('base64url');
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, `${token}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
  return { token, source: 'generated' };
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/**
 * Whether an `Authorization` value (`Bearer <token>`) carries the token. Compared in
 * constant time over digests, so neither the token's content nor its length leaks.
 */
export function isAuthorized(authorization: unknown, token: string): boolean {
  if (typeof authorization !== 'string') return false;
  const match = /^Bearer\s+(.+)$/i.exec(authorization.trim());
  if (!match) return false;
  return timingSafeEqual(digest(match[1]!), digest(token));
}
