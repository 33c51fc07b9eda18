// Pure parsers of git's machine-readable output: no git calls here, so each is tested on
// text alone.

/** How a file changed. */
export type ChangeKind = 'ADDED' | 'MODIFIED' | 'DELETED' | 'RENAMED';

/** One changed file, as `Agent.changes` shows it. */
export interface FileChange {
  path: string;
  /** The path before a rename. */
  oldPath: string | undefined;
  kind: ChangeKind;
  /** 0 for binary files. */
  linesAdded: number;
  linesRemoved: number;
}

/** A commit, as `Agent.commits` shows it. */
export interface CommitInfo {
  hash: string;
  subject: string;
  author: string;
  committedAt: Date;
}

function kindOf(status: string): ChangeKind {
  switch (status[0]) {
    case 'A':
    case 'C':
      return 'ADDED';
    case 'D':
      return 'DELETED';
    case 'R':
      return 'RENAMED';
    default:
      return 'MODIFIED';
  }
}

/**
 * Parses `git diff --raw --numstat -M -z`: first one raw entry per file
 * (`:<modes> <shas> <status>\0<path>\0`, or `\0<old>\0<new>\0` for a rename), then one
 * numstat entry per file (`<added>\t<removed>\t<path>\0`, or `\t\0<old>\0<new>\0`), where
 * a binary file counts `-` lines.
 */
export function parseDiffRawNumstat(output: string): FileChange[] {
  const tokens = output.split('\0');
  const changes: FileChange[] = [];
  const byPath = new Map<string, FileChange>();
  let i = 0;
  while (i < tokens.length) {
    const token = tokens[i]!;
    if (token === '') {
      i++;
      continue;
    }
    if (token.startsWith(':')) {
      const status = token.slice(token.lastIndexOf(' ') + 1);
      const kind = kindOf(status);
      const twoPaths = status.startsWith('R') || status.startsWith('C');
      const change: FileChange = twoPaths
        ? { path: tokens[i + 2]!, oldPath: kind === 'RENAMED' ? tokens[i + 1]! : undefined, kind, linesAdded: 0, linesRemoved: 0 }
        : { path: tokens[i + 1]!, oldPath: undefined, kind, linesAdded: 0, linesRemoved: 0 };
      changes.push(change);
      byPath.set(change.path, change);
      i += twoPaths ? 3 : 2;
      continue;
    }
    const [added = '-', removed = '-', path = ''] = token.split('\t');
    let file = path;
    if (path === '') {
      file = tokens[i + 2] ?? '';
      i += 3;
    } else {
      i += 1;
    }
    const change = byPath.get(file);
    if (change) {
      change.linesAdded = added === '-' ? 0 : Number(added);
      change.linesRemoved = removed === '-' ? 0 : Number(removed);
    }
  }
  return changes;
}

/** The field separator of {@link COMMIT_FORMAT}. */
const FIELD = '\x1f';

/** The `git log --format` that {@link parseCommits} reads (with `-z`). */
export const COMMIT_FORMAT = ['%H', '%s', '%an', '%cI'].join('%x1f');

/** Parses `git log -z --format=<COMMIT_FORMAT>`. */
export function parseCommits(output: string): CommitInfo[] {
  return output
    .split('\0')
    .map((record) => record.replace(/^\n/, ''))
    .filter((record) => record !== '')
    .map((record) => {
      const [hash = '', subject = '', author = '', date = ''] = record.split(FIELD);
      return { hash, subject, author, committedAt: new Date(date) };
    });
}
