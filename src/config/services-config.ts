import { isPlainObject } from '../plain-object.js';
import { ConfigError } from './config-error.js';
import { describe, KeyProblem, stringKey, stringTableKey } from './config-keys.js';
import { SERVICE_NAME, shellPlaceholderProblem } from './placeholders.js';

/** One `[services.NAME]`: a story's dev server (or any long-running command) in its worktree. */
export interface ServiceConfig {
  /** Run with `sh -c` in the story's worktree; `{{port}}` is its own port. */
  command: string;
  /** A regular expression: the service is READY at the first output line it matches (colour codes removed); '' for the first TCP connect to its port. */
  ready: string;
  /** Extra environment (placeholders allowed). */
  env: Record<string, string>;
}

/** `[services]`: where ports come from, and every service by name. */
export interface ServicesConfig {
  /** The range as written, "4800-4999". */
  ports: string;
  /** The range's first and last port. */
  first: number;
  last: number;
  /** Every `[services.NAME]`, in the file's order. */
  defined: Record<string, ServiceConfig>;
}

/** Where service ports come from when `[services] ports` is not set. */
export const DEFAULT_PORTS = '4800-4999';

const commandKey = stringKey({ default: '', doc: '', nonEmpty: true, placeholders: true });
const envKey = stringTableKey({ default: {}, doc: '' });
const readyKey = stringKey({ default: '', doc: '' });
const envValueKey = stringKey({ default: '', doc: '', placeholders: true });
const SERVICE_KEYS = ['command', 'ready', 'env'] as const;

/** The keys `agent-pool init` and the docs describe. */
export const SERVICES_DOC = {
  ports: `the range ports for {{port}} come from, "FIRST-LAST" (default "${DEFAULT_PORTS}")`,
  service: '[services.NAME]: command (sh -c in the story\'s worktree; {{port}} is its port), ready (a regex of its output; default: its port accepts a connection), env',
};

function parsePorts(value: unknown): { ports: string; first: number; last: number } {
  const text = typeof value === 'string' ? value : undefined;
  const match = text === undefined ? null : /^\s*(\d{1,5})\s*-\s*(\d{1,5})\s*$/.exec(text);
  const first = Number(match?.[1]);
  const last = Number(match?.[2]);
  if (!match || first < 1024 || last > 65535 || first > last) {
    throw new KeyProblem(`must be a range of ports "FIRST-LAST" within 1024-65535, e.g. "${DEFAULT_PORTS}", got ${describe(value)}`);
  }
  return { ports: text!, first, last };
}

function parseService(table: Record<string, unknown>): ServiceConfig {
  const service: ServiceConfig = { command: '', ready: '', env: {} };
  for (const [key, value] of Object.entries(table)) {
    try {
      switch (key) {
        case 'command': {
          service.command = commandKey.parse(value);
          const problem = shellPlaceholderProblem(service.command);
          if (problem) throw new KeyProblem(problem);
          break;
        }
        case 'ready': {
          service.ready = readyKey.parse(value);
          try {
            new RegExp(service.ready);
          } catch (error) {
            throw new KeyProblem(`must be a regular expression (JavaScript's): ${(error as Error).message}`);
          }
          break;
        }
        case 'env':
          service.env = envKey.parse(value);
          for (const [variable, text] of Object.entries(service.env)) {
            try {
              envValueKey.parse(text);
            } catch (error) {
              if (error instanceof KeyProblem) throw new KeyProblem(`${variable}: ${error.message}`);
              throw error;
            }
          }
          break;
        default:
          throw new KeyProblem(`unknown key; the keys of [services.NAME] are ${SERVICE_KEYS.join(', ')}`);
      }
    } catch (error) {
      if (error instanceof KeyProblem) throw Object.assign(error, { key });
      throw error;
    }
  }
  if (service.command === '') throw Object.assign(new KeyProblem('is required: the command that runs the service (sh -c, in the story\'s worktree)'), { key: 'command' });
  return service;
}

/**
 * Reads `[services]`: `ports`, and each `[services.NAME]` table.
 * @throws ConfigError naming the key.
 */
export function readServices(table: Record<string, unknown>, file: string): ServicesConfig {
  const services: ServicesConfig = { ...parsePorts(DEFAULT_PORTS), defined: {} };
  for (const [name, value] of Object.entries(table)) {
    if (name === 'ports') {
      try {
        Object.assign(services, parsePorts(value));
      } catch (error) {
        if (error instanceof KeyProblem) throw new ConfigError(file, error.message, { key: 'services.ports' });
        throw error;
      }
      continue;
    }
    if (!isPlainObject(value) || value instanceof Date) {
      throw new ConfigError(file, `unknown key; [services] has ports, and a table [services.NAME] for each service`, { key: `services.${name}` });
    }
    if (!SERVICE_NAME.test(name)) {
      throw new ConfigError(file, 'a service\'s name is 1 to 32 of a-z 0-9 _ -, starting with a letter (it goes into {{port:NAME}})', { key: `services.${name}` });
    }
    try {
      services.defined[name] = parseService(value);
    } catch (error) {
      if (error instanceof KeyProblem) {
        throw new ConfigError(file, error.message, { key: `services.${name}.${(error as KeyProblem & { key: string }).key}` });
      }
      throw error;
    }
  }
  const variables = new Map<string, string>();
  for (const name of Object.keys(services.defined)) {
    const variable = name.replace(/-/g, '_');
    const other = variables.get(variable);
    if (other !== undefined) {
      throw new ConfigError(file, `has the same port variable as [services.${other}] (- and _ are one in a variable's name): rename one`, { key: `services.${name}` });
    }
    variables.set(variable, name);
  }
  return services;
}
