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
