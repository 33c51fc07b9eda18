// What the documentation tests read in markdown: headings as GitHub anchors them, relative
// links, and the README's marked examples.
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

/** The lines of `markdown` outside fenced code blocks (others become empty, so line numbers hold). */
function proseLines(markdown: string): string[] {
  let fence: string | undefined;
  return markdown.split('\n').map((line) => {
    const opening = /^ {0,3}(`{3,}|~{3,})/.exec(line);
    if (fence === undefined) {
      if (opening) {
        fence = opening[1]!;
        return '';
      }
      return line;
    }
    if (opening && opening[1]!.startsWith(fence[0]!) && opening[1]!.length >= fence.length && line.trim() === opening[1]) {
      fence = undefined;
    }
    return '';
  });
}

/**
 * The anchor GitHub gives a heading: its text as rendered (no code backticks, link
 * targets or emphasis marks), lower case, with every character that is not a letter, a
 * digit, a space, `-` or `_` dropped, and each space turned into `-`.
 */
export function slugOf(heading: string): string {
  const text = heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/`/g, '')
    .replace(/(\*\*|__|\*)/g, '');
  return text
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N} _-]/gu, '')
    .replace(/ /g, '-');
}

/** The anchors of every heading of `markdown`; a repeated one gets `-1`, `-2`, … as on GitHub. */
export function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const line of proseLines(markdown)) {
    const match = /^ {0,3}#{1,6}[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$/.exec(line);
    if (!match) continue;
    const slug = slugOf(match[1]!);
    const count = seen.get(slug) ?? 0;
    seen.set(slug, count + 1);
    anchors.add(count === 0 ? slug : `${slug}-${count}`);
  }
  return anchors;
}

/** A link or image target in a markdown file, and the line it is on (1-based). */
export interface Link {
  target: string;
  line: number;
}

/** Every inline link and image target, and every reference definition, outside code. */
export function linksOf(markdown: string): Link[] {
  const links: Link[] = [];
  proseLines(markdown).forEach((raw, index) => {
    const line = raw.replace(/`[^`]*`/g, (code) => ' '.repeat(code.length));
    for (const match of line.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) {
      links.push({ target: match[1]!, line: index + 1 });
    }
    const definition = /^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+"[^"]*")?\s*$/.exec(line);
    if (definition) links.push({ target: definition[1]!, line: index + 1 });
  });
  return links;
}

/**
 * Checks every relative link of the markdown `files`: its file must exist, and its
 * `#anchor` (in the same page or in another markdown file) must be one of that file's
 * headings. Links with a scheme (`https:`, `mailto:`) are not followed.
 * @returns one line per broken link, `file:line: target: what is wrong`; and how many
 *   relative links were checked.
 */
export function brokenLinks(files: string[], root: string): { problems: string[]; checked: number } {
  const problems: string[] = [];
  let checked = 0;
  const anchorsByFile = new Map<string, Set<string>>();
  const anchors = (file: string): Set<string> => {
    let found = anchorsByFile.get(file);
    if (!found) {
      found = anchorsOf(readFileSync(file, 'utf8'));
      anchorsByFile.set(file, found);
    }
    return found;
  };
  for (const file of files) {
    for (const { target, line } of linksOf(readFileSync(file, 'utf8'))) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith('//')) continue;
      checked++;
      const where = `${path.relative(root, file)}:${line}: ${target}`;
      const hash = target.indexOf('#');
      const filePart = decodeURIComponent(hash === -1 ? target : target.slice(0, hash));
      const anchor = hash === -1 ? undefined : decodeURIComponent(target.slice(hash + 1));
      const resolved =
        filePart === '' ? file : filePart.startsWith('/') ? path.join(root, filePart) : path.resolve(path.dirname(file), filePart);
      if (!existsSync(resolved)) {
        problems.push(`${where}: no such file`);
        continue;
      }
      if (anchor === undefined) continue;
      if (!resolved.endsWith('.md') || !statSync(resolved).isFile()) {
        problems.push(`${where}: an anchor into a file that is not markdown`);
      } else if (!anchors(resolved).has(anchor)) {
        problems.push(`${where}: no heading with the anchor #${anchor}`);
      }
    }
  }
  return { problems, checked };
}

/**
 * The README's examples: each fenced block right after a `<!-- example: NAME -->` comment,
 * by name, as a reader would copy it.
 */
export function examplesOf(markdown: string): Map<string, string> {
  const examples = new Map<string, string>();
  for (const match of markdown.matchAll(/^<!-- example: ([\w.-]+) -->\n(`{3,})[^\n]*\n([\s\S]*?)\n\2[ \t]*$/gm)) {
    if (examples.has(match[1]!)) throw new Error(`two examples are named ${match[1]}`);
    examples.set(match[1]!, `${match[3]!}\n`);
  }
  return examples;
}
