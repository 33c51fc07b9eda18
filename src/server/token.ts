import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { STATE_DIR_NAME } from '../worktree/project.js';

/** Where the token came from. */
export type TokenSource = 'flag' | 'token-file' | 'environment' | 'file' | 'generated';

/** `--token-file` names a file that holds no usable token. */
export class TokenFileError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TokenFileError';
  }
}

/**
 * The token in a file given with `--token-file`: its content without surrounding white
 * space (a trailing newline is usual).
 * @throws TokenFileError when it cannot be read or is empty.
 */
export function readTokenFile(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new TokenFileError(`--token-file ${file} cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)}): give a file that holds the token`, { cause: error });
  }
  const token = text.trim();
  if (token === '') throw new TokenFileError(`--token-file ${file} is empty: write the token into it`);
  if (/\s/.test(token)) throw new TokenFileError(`--token-file ${file} holds more than one word: it must hold the token alone`);
  return token;
}

/** The file, in the project, that keeps the token between starts. */
export function tokenFile(projectRoot: string): string {
  return path.join(projectRoot, STATE_DIR_NAME, 'token');
}

/**
 * The server's token, as the contract orders it: `--token` (or `--token-file`), else `AGENT_POOL_TOKEN`, else
 * `.agent-pool/token`, which is created on the first start with a random 32-byte value and
 * mode 0600, and reused after (its mode is tightened to 0600 if it was looser).
 */
export function resolveToken(options: {
  flag: string | undefined;
  /** The path given with `--token-file`. */
  file?: string | undefined;
  env: NodeJS.ProcessEnv;
  projectRoot: string;
}): { token: string; source: TokenSource } {
  if (options.flag) return { token: options.flag, source: 'flag' };
  if (options.file) return { token: readTokenFile(options.file), source: 'token-file' };
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
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  writeFileSync(file, `${token}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
  return { token, source: 'generated' };
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/**
 * The longest `Authorization` value read: a token is 43 characters; anything far longer is
 * refused before it is looked at.
 */
const MAX_AUTHORIZATION_LENGTH = 4096;

/**
 * The token of an `Authorization` value (`Bearer <token>`), read with plain string
 * operations (no regular expression can be made to backtrack over it); undefined when it
 * is none.
 */
export function bearerToken(authorization: unknown): string | undefined {
  if (typeof authorization !== 'string' || authorization.length > MAX_AUTHORIZATION_LENGTH) return undefined;
  const value = authorization.trim();
  const scheme = 'bearer';
  if (value.slice(0, scheme.length).toLowerCase() !== scheme) return undefined;
  const rest = value.slice(scheme.length);
  if (rest.trimStart() === rest) return undefined; // no space after the scheme
  const presented = rest.trim();
  return presented === '' ? undefined : presented;
}

/**
 * Whether an `Authorization` value (`Bearer <token>`) carries the token, compared in
 * constant time over digests, so that neither the token's content nor its length leaks.
 */
export function isAuthorized(authorization: unknown, token: string): boolean {
  const presented = bearerToken(authorization);
  return presented !== undefined && timingSafeEqual(digest(presented), digest(token));
}
