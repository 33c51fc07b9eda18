import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseToml, TomlError } from 'smol-toml';
import { ConfigError } from './config-error.js';
import {
  booleanKey,
  type ConfigKey,
  integerKey,
  KeyProblem,
  numberKey,
  stringKey,
  stringListKey,
  stringTableKey,
} from './config-keys.js';

/** The config file's name, at the project root. */
export const CONFIG_FILE_NAME = 'agent-pool.toml';

/** How an agent's output is read. */
export const AGENT_FORMATS = ['claude-stream-json', 'text'] as const;
/** How an agent's output is read: Claude's stream-json lines, or plain text. */
export type AgentFormat = (typeof AGENT_FORMATS)[number];

/**
 * Every key of `agent-pool.toml`, by section, with its default and documentation. This
 * table is the single source: validation, the defaults, `agent-pool init` and the typed
 * {@link AgentPoolConfig} all come from it. The keys keep the file's snake_case names in
 * code too, so that what a user writes is what a reader of the code finds.
 */
export const CONFIG_SCHEMA = {
  agent: {
    command: stringKey({
      default: 'claude',
      nonEmpty: true,
      doc: 'executable, looked up on PATH (then in agent-pool\'s own node_modules/.bin)',
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
      doc: 'how output is read: claude-stream-json | text',
    }),
    env: stringTableKey({ default: {}, doc: 'extra environment for the agent' }),
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
      placeholders: true,
      doc: 'commands run (sh -c) in a new worktree before the agent starts; placeholders allowed',
    }),
    remove_on_stop: booleanKey({
      default: false,
      doc: 'remove the worktree when stopAgent is called (uncommitted work is committed first)',
    }),
  },
  pool: {
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
    max_events_per_story: integerKey({
      default: 100_000,
      min: 100,
      doc: 'events kept per story; the oldest go first (a replay below them ends with EVENTS_TRUNCATED)',
    }),
  },
} as const satisfies Record<string, Record<string, ConfigKey<unknown>>>;

type SectionValues<S> = { -readonly [K in keyof S]: S[K] extends ConfigKey<infer T> ? T : never };

/** The whole configuration, typed, with every default filled in. */
export type AgentPoolConfig = {
  -readonly [S in keyof typeof CONFIG_SCHEMA]: SectionValues<(typeof CONFIG_SCHEMA)[S]>;
};
/** The `[agent]` section. */
export type AgentConfig = AgentPoolConfig['agent'];
/** The `[worktree]` section. */
export type WorktreeConfig = AgentPoolConfig['worktree'];
/** The `[pool]` section. */
export type PoolConfig = AgentPoolConfig['pool'];
/** The `[store]` section. */
export type StoreConfig = AgentPoolConfig['store'];

type SectionName = keyof typeof CONFIG_SCHEMA;
const SECTION_NAMES = Object.keys(CONFIG_SCHEMA) as SectionName[];

function isTable(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date);
}

/** A fresh copy of the configuration used when there is no `agent-pool.toml`. */
export function defaultConfig(): AgentPoolConfig {
  const config: Record<string, Record<string, unknown>> = {};
  for (const section of SECTION_NAMES) {
    const values: Record<string, unknown> = {};
    for (const [key, spec] of Object.entries(CONFIG_SCHEMA[section])) values[key] = structuredClone(spec.default);
    config[section] = values;
  }
  return config as AgentPoolConfig;
}

/**
 * Parses the text of a config file. `file` is only used in error messages.
 * @throws ConfigError for a TOML syntax error, an unknown section or key, a wrong type or
 *   an unknown placeholder.
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

  const config = defaultConfig() as unknown as Record<string, Record<string, unknown>>;
  for (const [sectionName, sectionValue] of Object.entries(raw)) {
    if (!(SECTION_NAMES as string[]).includes(sectionName)) {
      throw new ConfigError(
        file,
        `unknown section; the sections are ${SECTION_NAMES.map((s) => `[${s}]`).join(', ')}`,
        { key: sectionName },
      );
    }
    const schema: Record<string, ConfigKey<unknown>> = CONFIG_SCHEMA[sectionName as SectionName];
    if (!isTable(sectionValue)) {
      throw new ConfigError(file, `must be a table ([${sectionName}])`, { key: sectionName });
    }
    for (const [key, value] of Object.entries(sectionValue)) {
      const keyPath = `${sectionName}.${key}`;
      const spec = schema[key];
      if (spec === undefined) {
        throw new ConfigError(
          file,
          `unknown key; the keys of [${sectionName}] are ${Object.keys(schema).join(', ')}`,
          { key: keyPath },
        );
      }
      try {
        config[sectionName]![key] = spec.parse(value);
      } catch (error) {
        if (error instanceof KeyProblem) throw new ConfigError(file, error.message, { key: keyPath });
        throw error;
      }
    }
  }
  return config as unknown as AgentPoolConfig;
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
