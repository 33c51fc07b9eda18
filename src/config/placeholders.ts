/**
 * The placeholders that `args`, `prompt` and `setup` may contain, written `{{name}}`.
 * Rendering is pure: the same template and values always give the same text, and nothing
 * is ever passed through a shell here.
 */
export const PLACEHOLDERS = ['story_id', 'worktree_path', 'branch', 'project_root'] as const;

/** A placeholder's name. */
export type Placeholder = (typeof PLACEHOLDERS)[number];

/**
 * The values a template is rendered with: each placeholder's, and the story's service ports
 * (`port:NAME`; `port` in a service's own command).
 */
export type PlaceholderValues = Readonly<Record<Placeholder, string>> & Readonly<Record<string, string>>;

/** What a service's name may be: it is part of `{{port:NAME}}` and of a variable's name. */
export const SERVICE_NAME = /^[a-z][a-z0-9_-]{0,31}$/;

/** `{{port:NAME}}`: the port of the story's service NAME. */
const PORT_OF = /^port:(.*)$/;

const PLACEHOLDER_PATTERN = /\{\{\s*([^{}]*?)\s*\}\}/g;

/** Whether `name` is a placeholder's: one of {@link PLACEHOLDERS}, `port`, or `port:NAME` with a service's name. */
function isPlaceholder(name: string): boolean {
  if ((PLACEHOLDERS as readonly string[]).includes(name) || name === 'port') return true;
  const service = PORT_OF.exec(name)?.[1];
  return service !== undefined && SERVICE_NAME.test(service);
}

/** The placeholder names in `template` that are not known, in order of appearance. */
export function unknownPlaceholders(template: string): string[] {
  const unknown: string[] = [];
  for (const match of template.matchAll(PLACEHOLDER_PATTERN)) {
    const name = match[1] ?? '';
    if (!isPlaceholder(name)) unknown.push(name);
  }
  return unknown;
}

/** The ports a template names: `{{port}}` (a service's own) and the services of `{{port:NAME}}`. */
export function portPlaceholders(template: string): { own: boolean; services: string[] } {
  let own = false;
  const services: string[] = [];
  for (const match of template.matchAll(PLACEHOLDER_PATTERN)) {
    const name = match[1] ?? '';
    if (name === 'port') own = true;
    const service = PORT_OF.exec(name)?.[1];
    if (service !== undefined) services.push(service);
  }
  return { own, services };
}

/** The environment variable that holds a service's port for setup, the agent and other services: `web` → `AGENT_POOL_PORT_WEB`. */
export function portVariable(service: string): string {
  return `AGENT_POOL_PORT_${service.toUpperCase().replace(/-/g, '_')}`;
}

/** The variables that tell setup, the agent and services each service's port: `AGENT_POOL_PORT_WEB=4801`. */
export function portEnvironment(ports: Readonly<Record<string, number>>): Record<string, string> {
  return Object.fromEntries(Object.entries(ports).map(([name, port]) => [portVariable(name), String(port)]));
}

/**
 * The environment variable that holds a placeholder's value for shell commands:
 * `{{worktree_path}}` → `AGENT_POOL_WORKTREE_PATH`, `{{port:web}}` → `AGENT_POOL_PORT_WEB`,
 * `{{port}}` → `PORT` (a service's own).
 */
export function placeholderVariable(name: string): string {
  if (name === 'port') return 'PORT';
  const service = PORT_OF.exec(name)?.[1];
  if (service !== undefined) return portVariable(service);
  return `AGENT_POOL_${name.toUpperCase()}`;
}

/**
 * What is wrong with where a shell command (a setup command) puts a placeholder, or
 * undefined. agent-pool writes each placeholder as its variable in double quotes
 * (`"$AGENT_POOL_WORKTREE_PATH"`), one word for `sh` whatever the value holds, which is
 * right anywhere but: inside quotes of the command's own, after a backslash, and in a
 * here-document (where quotes are text). Comments are skipped.
 */
export function shellPlaceholderProblem(command: string): string | undefined {
  /** The known placeholder that starts at `at`, as written, and its variable. */
  const placeholderAt = (at: number): { written: string; variable: string } | undefined => {
    if (!command.startsWith('{{', at)) return undefined;
    const end = command.indexOf('}}', at);
    const name = end === -1 ? '' : command.slice(at + 2, end).trim();
    if (!isPlaceholder(name)) return undefined;
    return { written: command.slice(at, end + 2), variable: `$${placeholderVariable(name)}` };
  };
  let quote: "'" | '"' | undefined;
  let inHeredoc = false;
  for (let i = 0; i < command.length; i++) {
    const char = command[i]!;
    const found = placeholderAt(i);
    if (found && quote) {
      return (
        `has ${found.written} inside quotes: agent-pool quotes a placeholder itself (it becomes "${found.variable}"), ` +
        `so that any path works; write it without quotes (for example cd ${found.written}/sub), or write ${found.variable} inside your quotes`
      );
    }
    if (found && inHeredoc) return `has ${found.written} in a here-document, where sh takes quotes as text; write ${found.variable} there`;
    if (quote === "'") {
      if (char === "'") quote = undefined;
    } else if (char === '\\') {
      const escaped = placeholderAt(i + 1);
      if (escaped) return `has ${escaped.written} after a backslash, which would escape the quote agent-pool puts around it; remove the backslash, or write ${escaped.variable}`;
      i++; // an escaped character, in double quotes or none
    } else if (char === quote) {
      quote = undefined;
    } else if (quote === undefined && (char === "'" || char === '"')) {
      quote = char;
    } else if (quote === undefined && char === '#' && (i === 0 || /\s/.test(command[i - 1]!))) {
      // A comment, to the end of its line.
      const newline = command.indexOf('\n', i);
      i = newline === -1 ? command.length : newline;
    } else if (quote === undefined && char === '<' && command[i + 1] === '<') {
      // A here-document: its text follows (it ends with its delimiter; taken as running to
      // the end of the command, which only refuses more).
      inHeredoc = true;
    }
  }
  return undefined;
}

/**
 * Replaces every `{{name}}` of a shell command with its variable in double quotes
 * (`"$AGENT_POOL_WORKTREE_PATH"`): one word for `sh`, and the value itself is never parsed
 * as shell text, whatever it holds (a project under "My Projects", a path with `$(`). The
 * command runs with those variables set.
 */
export function renderShellTemplate(template: string): string {
  return template.replace(PLACEHOLDER_PATTERN, (whole, name: string) => {
    if (!isPlaceholder(name)) throw new Error(`unknown placeholder ${whole}`);
    return `"$${placeholderVariable(name)}"`;
  });
}

/**
 * Replaces every `{{name}}` in `template` with its value. Templates are validated when the
 * config is loaded, so an unknown name here is a programming error and throws.
 */
export function renderTemplate(template: string, values: PlaceholderValues): string {
  return template.replace(PLACEHOLDER_PATTERN, (whole, name: string) => {
    if (!Object.hasOwn(values, name)) throw new Error(`unknown placeholder ${whole}`);
    return values[name]!;
  });
}
