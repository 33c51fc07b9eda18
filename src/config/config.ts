import { isPlainObject } from '../plain-object.js';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseToml, TomlError } from 'smol-toml';
import { ConfigError } from './config-error.js';
import {
  booleanKey,
  checkedStringKey,
  type ConfigKey,
  integerKey,
  KeyProblem,
  numberKey,
  numberListKey,
  stringKey,
  stringListKey,
  stringTableKey,
  variableNameKey,
} from './config-keys.js';
import { webhooksKey } from './notify-config.js';
import { portPlaceholders } from './placeholders.js';
import { readServices, type ServicesConfig } from './services-config.js';
import { parseUrl, urlHasPassword } from '../url.js';

/** The config file's name, at the project root. */
export const CONFIG_FILE_NAME = 'agent-pool.toml';

/** The agent CLIs agent-pool knows how to run and read. */
export const AGENT_KINDS = ['claude', 'codex', 'gemini', 'opencode', 'acp', 'text'] as const;
/**
 * An agent CLI agent-pool knows: Claude Code, Codex, Gemini CLI, opencode, any agent that
 * speaks the Agent Client Protocol (acp), or any program (text).
 */
export type AgentKind = (typeof AGENT_KINDS)[number];

/**
 * Claude Code's permission modes, which ACP agents take too. All but bypassPermissions ask a
 * person through the control channel.
 */
export const PERMISSION_MODES = ['bypassPermissions', 'default', 'acceptEdits', 'plan'] as const;
/** A Claude Code permission mode. */
export type PermissionMode = (typeof PERMISSION_MODES)[number];

/** The old name of `kind`: how an agent's output is read. */
export const AGENT_FORMATS = ['claude-stream-json', 'text'] as const;
/** The old name of `kind`'s values claude and text. */
export type AgentFormat = (typeof AGENT_FORMATS)[number];

/** The executable of each kind when `command` is not set (none for acp: it must be given). */
export const DEFAULT_COMMANDS: Readonly<Record<Exclude<AgentKind, 'acp'>, string>> = {
  claude: 'claude',
  codex: 'codex',
  gemini: 'gemini',
  opencode: 'opencode',
  text: 'claude',
};

/** The keys that only some kinds take: Claude's control channel, which ACP agents share in part. */
const KIND_KEYS: ReadonlyArray<{ key: 'permission_mode' | 'max_budget_usd' | 'max_turns' | 'keep_open_seconds'; kinds: readonly AgentKind[] }> = [
  { key: 'permission_mode', kinds: ['claude', 'acp'] },
  { key: 'keep_open_seconds', kinds: ['claude', 'acp'] },
  { key: 'max_budget_usd', kinds: ['claude'] },
  { key: 'max_turns', kinds: ['claude'] },
];

/** The profile that `[agent]` defines. */
export const DEFAULT_PROFILE = 'default';

/** The forges agent-pool can open pull requests on; "none" opens none. */
export const FORGE_KINDS = ['none', 'github', 'gitlab'] as const;
/** Where createPullRequest opens one: GitHub, GitLab, or nowhere ("none"). */
export type ForgeKind = (typeof FORGE_KINDS)[number];

/** An http(s) URL, or "" for the default. */
function optionalUrlKey(options: { default: string; doc: string }): ConfigKey<string> {
  return checkedStringKey(options, (text) => {
    if (text === '') return;
    const url = parseUrl(text);
    // Checked first, so that a password is never repeated in a message.
    if (url !== undefined && (url.username !== '' || url.password !== '')) {
      throw new KeyProblem('must not hold a user name or password: the token comes from the variable token_env names');
    }
    if (url === undefined || (url.protocol !== 'https:' && url.protocol !== 'http:')) {
      throw new KeyProblem(`must be an http or https URL (or "" for the default), got ${JSON.stringify(text)}`);
    }
    if (url.search !== '' || url.hash !== '') {
      throw new KeyProblem(`must have no query or fragment, got ${JSON.stringify(text)}`);
    }
  });
}

/** A repository path: "owner/name", or on GitLab "group/subgroup/name"; "" for the one the remote's URL names. */
function repoPathKey(options: { default: string; doc: string }): ConfigKey<string> {
  return checkedStringKey(options, (text) => {
    if (text === '') return;
    const segments = text.split('/');
    const valid =
      segments.length >= 2 && segments.every((segment) => segment !== '' && segment !== '.' && segment !== '..' && !/[\s?#%]/.test(segment));
    if (!valid) {
      throw new KeyProblem(
        `must be "owner/name" (on GitLab "group/subgroup/name"), or "" to take it from the remote's URL, got ${JSON.stringify(text)}`,
      );
    }
  });
}

/**
 * Every key of `agent-pool.toml`, by section, with its default and documentation. This
 * table is the single source: validation, the defaults, `agent-pool init` and the typed
 * {@link AgentPoolConfig} all come from it. The keys keep the file's snake_case names in
 * code too, so that what a user writes is what a reader of the code finds.
 */
export const CONFIG_SCHEMA = {
  agent: {
    kind: stringKey<AgentKind>({
      default: 'claude',
      oneOf: AGENT_KINDS,
      doc: 'which agent CLI this is: claude | codex | gemini | opencode | acp (any agent that speaks the Agent Client Protocol) | text (any program, its lines as text)',
    }),
    command: stringKey({
      default: 'claude',
      nonEmpty: true,
      doc: 'executable, looked up on PATH (then in agent-pool\'s own node_modules/.bin); default: the kind\'s own CLI',
    }),
    args: stringListKey({
      default: [],
      placeholders: true,
      doc: 'extra arguments; placeholders allowed',
    }),
    prompt: stringKey({
      default: 'Work on story {{story_id}}.',
      placeholders: true,
      doc: 'used when startAgent gets no prompt; placeholders allowed',
    }),
    format: stringKey<AgentFormat>({
      default: 'claude-stream-json',
      oneOf: AGENT_FORMATS,
      doc: 'the old name of kind: claude-stream-json (= claude) | text; set one of the two',
    }),
    env: stringTableKey({ default: {}, doc: 'extra environment for the agent' }),
    idle_timeout_seconds: numberKey({
      default: 1800,
      min: 0,
      doc: 'a run whose agent prints nothing for this long ends FAILED (0: never); some CLIs retry a failing API for ever',
    }),
    permission_mode: stringKey<PermissionMode>({
      default: 'bypassPermissions',
      oneOf: PERMISSION_MODES,
      doc: '(claude, acp) bypassPermissions | default | acceptEdits | plan: all but the first ask a person to approve tool calls',
    }),
    max_budget_usd: numberKey({
      default: 0,
      min: 0,
      doc: '(claude) a run that costs more ends FAILED (0: no budget)',
    }),
    max_turns: integerKey({
      default: 0,
      min: 0,
      doc: '(claude) a run that takes more turns ends FAILED (0: no limit)',
    }),
    keep_open_seconds: numberKey({
      default: 0,
      min: 0,
      doc: '(claude but bypassPermissions, acp) how long a finished turn waits for sendMessage before the run ends (0: it ends now)',
    }),
    mcp: booleanKey({
      default: false,
      doc: 'give the agent agent-pool\'s MCP tools, with a token scoped to its story: it may start, read and land stories of its own, never answer its own or those above it',
    }),
  },
  worktree: {
    dir: stringKey({
      default: '.agent-pool/worktrees',
      nonEmpty: true,
      doc: 'relative to the project root; never shows in `git status`',
    }),
    branch_prefix: stringKey({ default: 'story/', doc: 'a story\'s branch is <branch_prefix><story id>' }),
    base: stringKey({ default: 'HEAD', nonEmpty: true, doc: 'what a new story branch starts from' }),
    setup: stringListKey({
      default: [],
      placeholders: 'shell',
      doc: 'commands run (sh -c) in a new worktree before the agent starts; a placeholder becomes its "$AGENT_POOL_*" variable (write it without quotes)',
    }),
    remove_on_stop: booleanKey({
      default: false,
      doc: 'remove the worktree when stopAgent is called (uncommitted work is committed first)',
    }),
  },
  pool: {
    default_agent: stringKey({
      default: DEFAULT_PROFILE,
      nonEmpty: true,
      doc: 'the profile startAgent uses when it names none: "default" ([agent]) or a name of [agents.NAME]',
    }),
    max_concurrent: integerKey({
      default: 4,
      min: 1,
      max: 1000,
      doc: 'more starts wait in PENDING, first come first served',
    }),
    stop_grace_seconds: numberKey({
      default: 5,
      min: 0,
      doc: 'after the agent\'s own interrupt, and again after SIGTERM, before SIGKILL',
    }),
  },
  store: {
    path: stringKey({
      default: '.agent-pool/state.db',
      nonEmpty: true,
      doc: 'the SQLite database of agents, runs and events, relative to the project root (read at server start)',
    }),
    url: checkedStringKey({ default: '', doc: 'a Postgres database instead of path: postgresql://user@host:5432/db (read at server start)' }, (url) => {
      // The value is not repeated: it may hold a password.
      if (url !== '' && !/^postgres(ql)?:\/\//.test(url)) throw new KeyProblem('must be a postgresql:// URL, or "" for the SQLite file of path');
      if (urlHasPassword(url)) {
        throw new KeyProblem('holds a password: put the URL in an environment variable and name it with url_env; the file must not hold secrets');
      }
    }),
    url_env: variableNameKey({ default: '', optional: true, doc: 'the environment variable that holds the Postgres URL (with its password), instead of url' }),
    max_events_per_story: integerKey({
      default: 100_000,
      min: 100,
      doc: 'events kept per story; the oldest go first (a replay below them ends with EVENTS_TRUNCATED)',
    }),
  },
  bus: {
    url: checkedStringKey({ default: '', doc: 'a Redis server that tells the servers of a cluster of each other\'s changes: redis://host:6379 (needs [store] url)' }, (url) => {
      if (url !== '' && !/^rediss?:\/\//.test(url)) throw new KeyProblem('must be a redis:// or rediss:// URL, or "" for one server without a bus');
      if (urlHasPassword(url)) {
        throw new KeyProblem('holds a password: put the URL in an environment variable and name it with url_env; the file must not hold secrets');
      }
    }),
    url_env: variableNameKey({ default: '', optional: true, doc: 'the environment variable that holds the Redis URL (with its password), instead of url' }),
  },
  cluster: {
    heartbeat_seconds: numberKey({
      default: 5,
      min: 0.1,
      doc: 'how often each server of a cluster says in Postgres that it is alive (read at server start)',
    }),
    lost_after_seconds: numberKey({
      default: 30,
      min: 1,
      doc: 'a server silent this long is lost: its runs end FAILED elsewhere, and one that cannot renew its heartbeat that long stops its own (read at server start)',
    }),
  },
  forge: {
    kind: stringKey<ForgeKind>({
      default: 'none',
      oneOf: FORGE_KINDS,
      doc: 'where createPullRequest opens one: github | gitlab | none',
    }),
    api_url: optionalUrlKey({
      default: '',
      doc: 'the forge\'s API; default https://api.github.com (github) or https://gitlab.com/api/v4 (gitlab)',
    }),
    repo: repoPathKey({
      default: '',
      doc: '"owner/name" (GitLab: the project\'s path, group/subgroup/name); default: from the remote\'s URL',
    }),
    token_env: variableNameKey({
      default: 'GITHUB_TOKEN',
      doc: 'the environment variable that holds the forge\'s token (never the token itself; agents never get it); for GitLab, name yours, e.g. "GITLAB_TOKEN"',
    }),
    remote: stringKey({
      default: 'origin',
      nonEmpty: true,
      doc: 'the git remote that story branches are pushed to; its URL names the repo when repo is ""',
    }),
  },
  notify: {
    public_url: checkedStringKey(
      { default: '', doc: 'the address people open agent-pool at (e.g. behind a proxy): notifications link to a story\'s page under it ("" for no link)' },
      (text) => {
        if (text === '') return;
        const url = parseUrl(text);
        if (url === undefined || (url.protocol !== 'https:' && url.protocol !== 'http:') || url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '') {
          throw new KeyProblem(`must be an http or https URL with no user, query or fragment (or "" for no link), got ${JSON.stringify(text)}`);
        }
      },
    ),
    webhook: webhooksKey('written as [[notify.webhook]] tables, one per receiver: url or url_env, on, secret_env, format'),
    retry_seconds: numberListKey({
      default: [1, 5, 30, 120, 600],
      min: 0,
      max: 86_400,
      doc: 'how long a delivery that failed (no connection, a timeout, 429 or 5xx) waits before each retry, in turn',
    }),
    retry_every_seconds: numberKey({ default: 1800, min: 0.01, max: 86_400, doc: 'then, how often it is retried' }),
    give_up_after_seconds: numberKey({ default: 86_400, min: 0, max: 30 * 86_400, doc: 'a delivery not made this long after its event is FAILED' }),
    timeout_seconds: numberKey({ default: 10, min: 0.01, max: 600, doc: 'how long one attempt may take, the answer included' }),
  },
} as const satisfies Record<string, Record<string, ConfigKey<unknown>>>;

type SectionValues<S> = { -readonly [K in keyof S]: S[K] extends ConfigKey<infer T> ? T : never };
type Sections = { -readonly [S in keyof typeof CONFIG_SCHEMA]: SectionValues<(typeof CONFIG_SCHEMA)[S]> };

/** An agent profile: `[agent]` (named "default") or one of `[agents.NAME]`. `format` is folded into `kind`. */
export type AgentProfile = Omit<Sections['agent'], 'format'>;

/** The whole configuration, typed, with every default filled in. */
export type AgentPoolConfig = Omit<Sections, 'agent'> & {
  /** `[agent]`: the profile named "default". */
  agent: AgentProfile;
  /** Every profile by name: "default" and each `[agents.NAME]`. */
  agents: Record<string, AgentProfile>;
  /** `[services]`: each story's dev servers, and where their ports come from. */
  services: ServicesConfig;
};
/** The `[agent]` section (the default profile). */
export type AgentConfig = AgentProfile;
/** The `[worktree]` section. */
export type WorktreeConfig = AgentPoolConfig['worktree'];
/** The `[pool]` section. */
export type PoolConfig = AgentPoolConfig['pool'];
/** The `[store]` section. */
export type StoreConfig = AgentPoolConfig['store'];
/** The `[forge]` section: where pull requests are opened, and with which token. */
export type ForgeConfig = AgentPoolConfig['forge'];
/** The `[notify]` section: webhooks, and how their deliveries are retried. */
export type NotifyConfig = AgentPoolConfig['notify'];

type SectionName = keyof typeof CONFIG_SCHEMA;
const SECTION_NAMES = Object.keys(CONFIG_SCHEMA) as SectionName[];
/** The table of named agent profiles, `[agents.NAME]`. */
const PROFILES_TABLE = 'agents';
/** The table of per-story services: `ports`, and `[services.NAME]`. */
const SERVICES_TABLE = 'services';
/** What a profile's name may be. */
const PROFILE_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/;

function isTable(value: unknown): value is Record<string, unknown> {
  return isPlainObject(value) && !(value instanceof Date);
}

function defaultsOf(section: SectionName): Record<string, unknown> {
  const values: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(CONFIG_SCHEMA[section])) values[key] = structuredClone(spec.default);
  return values;
}

/**
 * Reads one section's table: every key must be known and valid; keys it omits keep their
 * defaults. Returns the values and which keys were given.
 */
function readSection(
  section: SectionName,
  table: Record<string, unknown>,
  file: string,
  keyPrefix: string,
): { values: Record<string, unknown>; given: Set<string> } {
  const schema: Record<string, ConfigKey<unknown>> = CONFIG_SCHEMA[section];
  const values = defaultsOf(section);
  for (const [key, value] of Object.entries(table)) {
    const keyPath = `${keyPrefix}.${key}`;
    const spec = schema[key];
    if (spec === undefined) {
      throw new ConfigError(file, `unknown key; the keys of [${keyPrefix}] are ${Object.keys(schema).join(', ')}`, {
        key: keyPath,
      });
    }
    try {
      values[key] = spec.parse(value);
    } catch (error) {
      if (error instanceof KeyProblem) throw new ConfigError(file, error.message, { key: keyPath });
      throw error;
    }
  }
  return { values, given: new Set(Object.keys(table)) };
}

/**
 * A profile from its table: `kind` (or its old name `format`, not both) chooses the CLI,
 * and `command` defaults to that CLI's own executable.
 */
function readProfile(table: Record<string, unknown>, file: string, keyPrefix: string): AgentProfile {
  const { values, given } = readSection('agent', table, file, keyPrefix);
  if (given.has('kind') && given.has('format')) {
    throw new ConfigError(file, 'set kind or its old name format, not both', { key: `${keyPrefix}.format` });
  }
  const { format, ...profile } = values as Sections['agent'];
  if (!given.has('kind') && given.has('format')) profile.kind = format === 'text' ? 'text' : 'claude';
  if (!given.has('command')) {
    if (profile.kind === 'acp') {
      throw new ConfigError(file, 'kind "acp" needs the command that speaks ACP on stdio, e.g. command = "gemini" with args = ["--acp"], or command = "opencode" with args = ["acp"]', {
        key: `${keyPrefix}.command`,
      });
    }
    profile.command = DEFAULT_COMMANDS[profile.kind];
  }
  for (const { key, kinds } of KIND_KEYS) {
    if (given.has(key) && !kinds.includes(profile.kind)) {
      const owners = kinds.map((kind) => `"${kind}"`).join(' and ');
      throw new ConfigError(file, `is for kind ${owners}; this profile is kind "${profile.kind}"`, { key: `${keyPrefix}.${key}` });
    }
  }
  return profile;
}

/** A fresh copy of the configuration used when there is no `agent-pool.toml`. */
export function defaultConfig(): AgentPoolConfig {
  return parseTables({}, '(defaults)');
}

/**
 * Parses the text of a config file. `file` is only used in error messages.
 * @throws ConfigError for a TOML syntax error, an unknown section or key, a wrong type, an
 *   unknown placeholder, or a default_agent that names no profile.
 */
export function parseConfig(text: string, file: string): AgentPoolConfig {
  let raw: Record<string, unknown>;
  try {
    raw = parseToml(text);
  } catch (error) {
    if (error instanceof TomlError) {
      const firstLine = error.message.split('\n')[0] ?? error.message;
      throw new ConfigError(file, `TOML syntax error: ${firstLine}`, {
        line: error.line,
        column: error.column,
        cause: error,
      });
    }
    throw error;
  }
  return parseTables(raw, file);
}

function parseTables(raw: Record<string, unknown>, file: string): AgentPoolConfig {
  const sections: Record<string, unknown> = {};
  for (const section of SECTION_NAMES) sections[section] = defaultsOf(section);
  let agent = readProfile({}, file, 'agent');
  const agents: Record<string, AgentProfile> = {};
  let services = readServices({}, file);
  for (const [name, value] of Object.entries(raw)) {
    if (name !== PROFILES_TABLE && name !== SERVICES_TABLE && !(SECTION_NAMES as string[]).includes(name)) {
      throw new ConfigError(
        file,
        `unknown section; the sections are ${[...SECTION_NAMES, `${PROFILES_TABLE}.NAME`, SERVICES_TABLE].map((s) => `[${s}]`).join(', ')}`,
        { key: name },
      );
    }
    if (!isTable(value)) throw new ConfigError(file, `must be a table ([${name}])`, { key: name });
    if (name === SERVICES_TABLE) {
      services = readServices(value, file);
    } else if (name === 'agent') {
      agent = readProfile(value, file, 'agent');
    } else if (name === PROFILES_TABLE) {
      for (const [profileName, profileTable] of Object.entries(value)) {
        const keyPath = `${PROFILES_TABLE}.${profileName}`;
        if (!PROFILE_NAME.test(profileName) || profileName === DEFAULT_PROFILE) {
          throw new ConfigError(
            file,
            `a profile name is 1 to 32 of A-Z a-z 0-9 _ - (starting with a letter or digit), and "default" is [agent]`,
            { key: keyPath },
          );
        }
        if (!isTable(profileTable)) throw new ConfigError(file, `must be a table ([${keyPath}])`, { key: keyPath });
        agents[profileName] = readProfile(profileTable, file, keyPath);
      }
    } else {
      sections[name] = readSection(name as SectionName, value, file, name).values;
    }
  }
  const config = { ...(sections as Omit<Sections, 'agent'>), agent, agents: { [DEFAULT_PROFILE]: agent, ...agents }, services };
  checkPortPlaceholders(config, file);
  if (!Object.hasOwn(config.agents, config.pool.default_agent)) {
    throw new ConfigError(
      file,
      `names no profile; the profiles are ${Object.keys(config.agents).join(', ')}`,
      { key: 'pool.default_agent' },
    );
  }
  return config;
}

/**
 * `{{port:NAME}}` must name a service of `[services]`, and `{{port}}` (a service's own port)
 * stands only in a service's command and env.
 * @throws ConfigError naming the key.
 */
function checkPortPlaceholders(config: AgentPoolConfig, file: string): void {
  const names = Object.keys(config.services.defined);
  const places: Array<[key: string, text: string, own: boolean]> = [];
  for (const [profileName, profile] of Object.entries(config.agents)) {
    const prefix = profileName === DEFAULT_PROFILE ? 'agent' : `${PROFILES_TABLE}.${profileName}`;
    places.push([`${prefix}.prompt`, profile.prompt, false], ...profile.args.map((arg): [string, string, boolean] => [`${prefix}.args`, arg, false]));
  }
  for (const command of config.worktree.setup) places.push(['worktree.setup', command, false]);
  for (const [name, service] of Object.entries(config.services.defined)) {
    places.push([`services.${name}.command`, service.command, true]);
    for (const [variable, value] of Object.entries(service.env)) places.push([`services.${name}.env.${variable}`, value, true]);
  }
  for (const [key, text, ownAllowed] of places) {
    const { own, services } = portPlaceholders(text);
    if (own && !ownAllowed) {
      throw new ConfigError(file, '{{port}} is a service\'s own port, in its command and env; here, name the service: {{port:NAME}}', { key });
    }
    const unknown = services.find((name) => !names.includes(name));
    if (unknown !== undefined) {
      const known = names.length === 0 ? 'none is configured' : `the services are ${names.join(', ')}`;
      throw new ConfigError(file, `{{port:${unknown}}} names no service of [services]; ${known}`, { key });
    }
  }
}

/** The path of the config file of a project. */
export function configPath(projectRoot: string): string {
  return path.join(projectRoot, CONFIG_FILE_NAME);
}

/**
 * Reads `agent-pool.toml` at the project root; no file means every default. Cheap and
 * synchronous, because the pool reads it again at each start so that edits apply without
 * a restart.
 * @throws ConfigError when the file is invalid or cannot be read.
 */
export function loadConfig(projectRoot: string): AgentPoolConfig {
  const file = configPath(projectRoot);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return defaultConfig();
    throw new ConfigError(file, `cannot be read: ${(error as Error).message}`, { cause: error });
  }
  return parseConfig(text, file);
}
