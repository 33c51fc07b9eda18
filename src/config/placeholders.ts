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

/**
 * The placeholders of a shell command (a setup command) that stand inside quotes, where
 * the quoted value agent-pool puts there would be quoted twice.
 */
export function quotedPlaceholders(command: string): string[] {
  const found: string[] = [];
  let quote: "'" | '"' | undefined;
  for (let i = 0; i < command.length; i++) {
    const char = command[i]!;
    if (quote === "'") {
      if (char === "'") quote = undefined;
    } else if (char === '\\') {
      i++; // an escaped character, in double quotes or none
    } else if (char === quote) {
      quote = undefined;
    } else if (quote === undefined && (char === "'" || char === '"')) {
      quote = char;
    }
    if (quote === undefined || char !== '{' || command[i + 1] !== '{') continue;
    const end = command.indexOf('}}', i);
    if (end !== -1) found.push(command.slice(i, end + 2));
  }
  return found;
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
