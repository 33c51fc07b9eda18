/**
 * The placeholders that `args`, `prompt` and `setup` may contain, written `{{name}}`.
 * Rendering is pure: the same template and values always give the same text, and nothing
 * is ever passed through a shell here.
 */
export const PLACEHOLDERS = ['story_id', 'worktree_path', 'branch', 'project_root'] as const;

/** A placeholder's name. */
export type Placeholder = (typeof PLACEHOLDERS)[number];

/** The values a template is rendered with. */
export type PlaceholderValues = Readonly<Record<Placeholder, string>>;

const PLACEHOLDER_PATTERN = /\{\{\s*([^{}]*?)\s*\}\}/g;

/** The placeholder names in `template` that are not known, in order of appearance. */
export function unknownPlaceholders(template: string): string[] {
  const unknown: string[] = [];
  for (const match of template.matchAll(PLACEHOLDER_PATTERN)) {
    const name = match[1] ?? '';
    if (!(PLACEHOLDERS as readonly string[]).includes(name)) unknown.push(name);
  }
  return unknown;
}

/** `value` as one word for `sh`: single-quoted, its own single quotes escaped. */
export function shellQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

/** The environment variable that holds a placeholder's value for setup commands: `{{worktree_path}}` → `AGENT_POOL_WORKTREE_PATH`. */
export function placeholderVariable(name: Placeholder): string {
  return `AGENT_POOL_${name.toUpperCase()}`;
}

/**
 * What is wrong with where a shell command (a setup command) puts a placeholder, or
 * undefined. agent-pool puts each value in single quotes, which is one word for `sh`
 * anywhere but: inside quotes of the command's own (it would be quoted twice), after a
 * backslash (which would escape the opening quote), and in a here-document (where quotes
 * are text and `$(` in a value would run). There, the value's variable is the way.
 */
export function shellPlaceholderProblem(command: string): string | undefined {
  const heredoc = command.indexOf('<<');
  /** The known placeholder that starts at `at`, as written, and its variable. */
  const placeholderAt = (at: number): { written: string; variable: string } | undefined => {
    if (!command.startsWith('{{', at)) return undefined;
    const end = command.indexOf('}}', at);
    const name = end === -1 ? '' : command.slice(at + 2, end).trim();
    if (!(PLACEHOLDERS as readonly string[]).includes(name)) return undefined;
    return { written: command.slice(at, end + 2), variable: `"$${placeholderVariable(name as Placeholder)}"` };
  };
  const instead = (found: { written: string; variable: string }): string =>
    `write it without quotes (for example cd ${found.written}/sub), or use ${found.variable}`;
  let quote: "'" | '"' | undefined;
  for (let i = 0; i < command.length; i++) {
    const char = command[i]!;
    const found = placeholderAt(i);
    if (found && quote) {
      return `has ${found.written} inside quotes: agent-pool puts each placeholder's value in single quotes itself, so that any path works; ${instead(found)}`;
    }
    if (found && heredoc !== -1 && i > heredoc) return `has ${found.written} in a here-document, where sh does not honour quotes; use ${found.variable} there`;
    if (quote === "'") {
      if (char === "'") quote = undefined;
    } else if (char === '\\') {
      const escaped = placeholderAt(i + 1);
      if (escaped) return `has ${escaped.written} after a backslash, which would escape the quote agent-pool puts around its value; ${instead(escaped)}`;
      i++; // an escaped character, in double quotes or none
    } else if (char === quote) {
      quote = undefined;
    } else if (quote === undefined && (char === "'" || char === '"')) {
      quote = char;
    }
  }
  return undefined;
}

/**
 * Replaces every `{{name}}` of a shell command with its value quoted for `sh` (one word,
 * whatever it holds: a project under "My Projects", a path with `$(`).
 */
export function renderShellTemplate(template: string, values: PlaceholderValues): string {
  const quoted = Object.fromEntries(Object.entries(values).map(([name, value]) => [name, shellQuote(value)]));
  return renderTemplate(template, quoted as PlaceholderValues);
}

/**
 * Replaces every `{{name}}` in `template` with its value. Templates are validated when the
 * config is loaded, so an unknown name here is a programming error and throws.
 */
export function renderTemplate(template: string, values: PlaceholderValues): string {
  return template.replace(PLACEHOLDER_PATTERN, (whole, name: string) => {
    if (!Object.hasOwn(values, name)) throw new Error(`unknown placeholder ${whole}`);
    return values[name as Placeholder];
  });
}
