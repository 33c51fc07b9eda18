import { describe, expect, it } from 'vitest';
import { parseCommits, parseDiffRawNumstat } from '../../src/worktree/git-output.js';

describe('parseDiffRawNumstat', () => {
  it('reads kinds, renames, line counts and binary files', () => {
    const output = [
      ':100644 100644 aaa bbb M',
      'src/edit.ts',
      ':000000 100644 000 ccc A',
      'docs/new file.md',
      ':100644 000000 ddd 000 D',
      'gone.txt',
      ':100644 100644 eee fff R087',
      'old/name.ts',
      'new/name.ts',
      ':000000 100644 000 ggg A',
      'logo.png',
      '3\t1\tsrc/edit.ts',
      '2\t0\tdocs/new file.md',
      '0\t5\tgone.txt',
      '1\t1\t',
      'old/name.ts',
      'new/name.ts',
      '-\t-\tlogo.png',
      '',
    ].join('\0');
    expect(parseDiffRawNumstat(output)).toEqual([
      { path: 'src/edit.ts', oldPath: undefined, kind: 'MODIFIED', linesAdded: 3, linesRemoved: 1 },
      { path: 'docs/new file.md', oldPath: undefined, kind: 'ADDED', linesAdded: 2, linesRemoved: 0 },
      { path: 'gone.txt', oldPath: undefined, kind: 'DELETED', linesAdded: 0, linesRemoved: 5 },
      { path: 'new/name.ts', oldPath: 'old/name.ts', kind: 'RENAMED', linesAdded: 1, linesRemoved: 1 },
      { path: 'logo.png', oldPath: undefined, kind: 'ADDED', linesAdded: 0, linesRemoved: 0 },
    ]);
  });

  it('reads an empty diff as no changes', () => {
    expect(parseDiffRawNumstat('')).toEqual([]);
  });
});

describe('parseCommits', () => {
  it('reads hash, subject, author and time of each commit', () => {
    const output = `abc123\x1fFix the parser\x1fAda Lovelace\x1f2026-11-25T10:00:00+01:00\0\ndef456\x1fAdd tests\x1fAlan Turing\x1f2026-11-24T09:00:00Z\0`;
    expect(parseCommits(output)).toEqual([
      { hash: 'abc123', subject: 'Fix the parser', author: 'Ada Lovelace', committedAt: new Date('2026-11-25T09:00:00Z') },
      { hash: 'def456', subject: 'Add tests', author: 'Alan Turing', committedAt: new Date('2026-11-24T09:00:00Z') },
    ]);
  });
});
