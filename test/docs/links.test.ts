// The README, the changelog and docs/ link to each other and to the sources: every relative
// link must lead to a file that exists, and every #anchor to a heading of its page.
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../support/temp.js';
import { anchorsOf, brokenLinks, linksOf, slugOf } from './markdown.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DOCS = path.join(ROOT, 'docs');

/** README.md, CHANGELOG.md and every docs/*.md. */
function documentationFiles(): string[] {
  const docs = readdirSync(DOCS)
    .filter((name) => name.endsWith('.md'))
    .map((name) => path.join(DOCS, name));
  return [path.join(ROOT, 'README.md'), path.join(ROOT, 'CHANGELOG.md'), ...docs];
}

describe('the documentation', () => {
  it('has a README under 15,000 characters', () => {
    const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    expect(readme.length).toBeGreaterThan(1000);
    expect(readme.length).toBeLessThan(15_000);
  });

  it('has the reference pages the README links to', () => {
    const pages = readdirSync(DOCS).filter((name) => name.endsWith('.md')).sort();
    expect(pages).toEqual(
      expect.arrayContaining(['agents.md', 'api.md', 'approvals.md', 'benchmarks.md', 'configuration.md', 'internals.md', 'security.md']),
    );
    const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    for (const page of pages) expect(readme, `README links docs/${page}`).toContain(`](docs/${page}`);
    expect(readme).toContain('](CHANGELOG.md)');
  });

  it('links only to files and headings that exist', () => {
    const { problems, checked } = brokenLinks(documentationFiles(), ROOT);
    expect(problems).toEqual([]);
    // Not vacuous: the README alone links a dozen pages, a screenshot and anchors.
    expect(checked).toBeGreaterThan(40);
  });
});

describe('the link checker', () => {
  it('makes anchors as GitHub does', () => {
    expect(slugOf('Storage and crash recovery')).toBe('storage-and-crash-recovery');
    expect(slugOf('`agent-pool.toml`')).toBe('agent-pooltoml');
    expect(slugOf('Any program: `text`')).toBe('any-program-text');
    expect(slugOf('git and agents share `.git/config`')).toBe('git-and-agents-share-gitconfig');
    expect(slugOf('Nothing printed is lost, and the exit code comes out of band')).toBe(
      'nothing-printed-is-lost-and-the-exit-code-comes-out-of-band',
    );
    expect(slugOf('snake_case and **bold**')).toBe('snake_case-and-bold');
    expect([...anchorsOf('# A\n## Notes\n```sh\n# not a heading\n```\n## Notes\n')]).toEqual(['a', 'notes', 'notes-1']);
  });

  it('finds links in prose, not in code', () => {
    const links = linksOf('See [a](a.md) and ![b](b.png).\n`[c](c.md)`\n```md\n[d](d.md)\n```\n[e]: e.md\n');
    expect(links).toEqual([
      { target: 'a.md', line: 1 },
      { target: 'b.png', line: 1 },
      { target: 'e.md', line: 6 },
    ]);
  });

  it('reports a missing file, a missing anchor in another page and in its own (the honest twin)', () => {
    const root = tempDir();
    mkdirSync(path.join(root, 'docs'));
    writeFileSync(path.join(root, 'docs', 'page.md'), '# Page\n\n## Real heading\n');
    writeFileSync(
      path.join(root, 'README.md'),
      [
        '# Readme',
        '',
        '[good](docs/page.md#real-heading) [good too](#readme) [site](https://example.com/x.md#y)',
        '[gone](docs/missing.md)',
        '[wrong anchor](docs/page.md#unreal-heading)',
        '[own page](#nowhere)',
        '`[in code](docs/missing-too.md)`',
        '',
      ].join('\n'),
    );
    const { problems, checked } = brokenLinks([path.join(root, 'README.md')], root);
    expect(problems).toEqual([
      'README.md:4: docs/missing.md: no such file',
      'README.md:5: docs/page.md#unreal-heading: no heading with the anchor #unreal-heading',
      'README.md:6: #nowhere: no heading with the anchor #nowhere',
    ]);
    expect(checked).toBe(5);
  });
});
