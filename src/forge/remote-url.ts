/** A URL with a scheme (`https://`, `ssh://`, `git://`, `git+ssh://`, `file://`). */
const SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//;
/**
 * git's scp-like syntax, `[user@]host:path`: a colon before any slash. A one-letter host
 * would be a Windows drive (`C:/repo`), which git takes as a local path too.
 */
const SCP_LIKE = /^(?:[^@/]+@)?([^:/]{2,}):(.*)$/;

/**
 * The repository's path on its forge from a git remote URL: "owner/name" on GitHub, the
 * project path ("group/subgroup/name") on GitLab. Understands `git@host:owner/name.git`,
 * `https://host/owner/name(.git)`, `ssh://git@host[:port]/owner/name.git` and `git://`;
 * a trailing `/` and the `.git` suffix are dropped, and a user name or password in the URL
 * is ignored. Pure: the caller reads the URL from git.
 * @returns undefined for a local path, a `file://` URL, or a path of fewer than two parts.
 */
export function repoFromRemoteUrl(url: string): string | undefined {
  const text = url.trim();
  let repoPath: string;
  if (SCHEME.test(text)) {
    let parsed: URL;
    try {
      parsed = new URL(text);
    } catch {
      return undefined;
    }
    if (parsed.protocol === 'file:' || parsed.hostname === '') return undefined;
    try {
      repoPath = decodeURIComponent(parsed.pathname);
    } catch {
      return undefined;
    }
  } else {
    const match = SCP_LIKE.exec(text);
    if (match === null) return undefined;
    repoPath = match[2] ?? '';
  }
  repoPath = repoPath.replace(/^\/+/, '').replace(/\/+$/, '').replace(/\.git$/, '').replace(/\/+$/, '');
  const segments = repoPath.split('/');
  const valid =
    segments.length >= 2 &&
    segments.every((segment) => segment !== '' && segment !== '.' && segment !== '..' && !segment.startsWith('~'));
  return valid ? segments.join('/') : undefined;
}
