import { PLACEHOLDERS, shellPlaceholderProblem, unknownPlaceholders } from './placeholders.js';

/**
 * One key of `agent-pool.toml`: its default, its documentation (printed by
 * `agent-pool init` and the README) and how a raw TOML value becomes a typed one.
 * `parse` throws a {@link KeyProblem} whose text says what is allowed; the loader adds the
 * file and the key path.
 */
export interface ConfigKey<T> {
  readonly default: T;
  readonly doc: string;
  parse(value: unknown): T;
}

/** What is wrong with one value, without the file and key (the loader adds those). */
export class KeyProblem extends Error {}

/** A TOML value as an error message names it: its type, and a scalar's value. */
export function describe(value: unknown): string {
  if (Array.isArray(value)) return 'an array';
  if (value === null) return 'null';
  if (typeof value === 'object') return value instanceof Date ? 'a date' : 'a table';
  return typeof value === 'number' ? `number ${String(value)}` : `${typeof value} ${JSON.stringify(value)}`;
}

function checkPlaceholders(text: string): void {
  const unknown = unknownPlaceholders(text);
  if (unknown.length > 0) {
    throw new KeyProblem(
      `unknown placeholder {{${unknown[0]}}}; the placeholders are ${PLACEHOLDERS.map((p) => `{{${p}}}`).join(', ')}, {{port:NAME}} (a service's port) and, in a service, {{port}}`,
    );
  }
}

/** A string; optionally non-empty, one of a set, or a template with placeholders. */
export function stringKey<const T extends string = string>(options: {
  default: NoInfer<T>;
  doc: string;
  nonEmpty?: boolean;
  oneOf?: readonly T[];
  placeholders?: boolean;
}): ConfigKey<T> {
  return {
    default: options.default,
    doc: options.doc,
    parse(value) {
      if (typeof value !== 'string') throw new KeyProblem(`must be a string, got ${describe(value)}`);
      if (options.nonEmpty && value.trim() === '') throw new KeyProblem('must not be empty');
      if (options.oneOf && !(options.oneOf as readonly string[]).includes(value)) {
        throw new KeyProblem(
          `must be one of ${options.oneOf.map((v) => JSON.stringify(v)).join(', ')}, got ${JSON.stringify(value)}`,
        );
      }
      if (options.placeholders) checkPlaceholders(value);
      return value as T;
    },
  };
}

/**
 * An array of strings, optionally templates with placeholders: `"shell"` for shell
 * commands, whose placeholders agent-pool quotes itself and so must not stand in quotes.
 */
export function stringListKey(options: {
  default: string[];
  doc: string;
  placeholders?: boolean | 'shell';
}): ConfigKey<string[]> {
  return {
    default: options.default,
    doc: options.doc,
    parse(value) {
      if (!Array.isArray(value)) throw new KeyProblem(`must be an array of strings, got ${describe(value)}`);
      return value.map((item, index) => {
        if (typeof item !== 'string') {
          throw new KeyProblem(`must be an array of strings, but item ${index} is ${describe(item)}`);
        }
        if (options.placeholders) checkPlaceholders(item);
        const problem = options.placeholders === 'shell' ? shellPlaceholderProblem(item) : undefined;
        if (problem) throw new KeyProblem(`item ${index} ${problem}`);
        return item;
      });
    },
  };
}

/** A table of string values (an environment). */
export function stringTableKey(options: {
  default: Record<string, string>;
  doc: string;
}): ConfigKey<Record<string, string>> {
  return {
    default: options.default,
    doc: options.doc,
    parse(value) {
      if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Date) {
        throw new KeyProblem(`must be a table of strings, got ${describe(value)}`);
      }
      const table: Record<string, string> = {};
      for (const [name, item] of Object.entries(value)) {
        if (typeof item !== 'string') {
          throw new KeyProblem(`must be a table of strings, but ${JSON.stringify(name)} is ${describe(item)}`);
        }
        table[name] = item;
      }
      return table;
    },
  };
}

/** `true` or `false`. */
export function booleanKey(options: { default: boolean; doc: string }): ConfigKey<boolean> {
  return {
    default: options.default,
    doc: options.doc,
    parse(value) {
      if (typeof value !== 'boolean') throw new KeyProblem(`must be true or false, got ${describe(value)}`);
      return value;
    },
  };
}

/** A whole number within bounds. */
export function integerKey(options: {
  default: number;
  doc: string;
  min: number;
  max?: number;
}): ConfigKey<number> {
  const max = options.max ?? Number.MAX_SAFE_INTEGER;
  return {
    default: options.default,
    doc: options.doc,
    parse(value) {
      const number = typeof value === 'bigint' ? Number(value) : value;
      if (typeof number !== 'number' || !Number.isInteger(number)) {
        throw new KeyProblem(`must be a whole number, got ${describe(value)}`);
      }
      if (number < options.min || number > max) {
        throw new KeyProblem(`must be between ${options.min} and ${max}, got ${number}`);
      }
      return number;
    },
  };
}

/** A finite number (integer or float) from `min` to `max`. */
export function numberKey(options: { default: number; doc: string; min: number; max?: number }): ConfigKey<number> {
  return {
    default: options.default,
    doc: options.doc,
    parse(value) {
      return checkedNumber(value, options.min, options.max);
    },
  };
}

/** A finite number within bounds, or a KeyProblem saying what is allowed (`item` names its place in an array). */
function checkedNumber(value: unknown, min: number, max = Number.MAX_SAFE_INTEGER, item?: number): number {
  const number = typeof value === 'bigint' ? Number(value) : value;
  const what = item === undefined ? '' : `item ${item} `;
  if (typeof number !== 'number' || !Number.isFinite(number)) {
    throw new KeyProblem(item === undefined ? `must be a number, got ${describe(value)}` : `must be an array of numbers, but item ${item} is ${describe(value)}`);
  }
  if (number < min) throw new KeyProblem(`${what}must be at least ${min}, got ${number}`);
  if (number > max) throw new KeyProblem(`${what}must be at most ${max}, got ${number}`);
  return number;
}

/** A non-empty array of finite numbers, each from `min` to `max`. */
export function numberListKey(options: { default: number[]; doc: string; min: number; max?: number }): ConfigKey<number[]> {
  return {
    default: options.default,
    doc: options.doc,
    parse(value) {
      if (!Array.isArray(value) || value.length === 0) throw new KeyProblem(`must be a non-empty array of numbers, got ${describe(value)}`);
      return value.map((item, index) => checkedNumber(item, options.min, options.max, index));
    },
  };
}

/** What an environment variable's name may be: what a POSIX shell can export. */
const VARIABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** How the tokens of GitHub and GitLab begin, to catch a token written where its variable's name goes. */
const TOKEN_PREFIX = /^(gh[pousr]_|github_pat_|glpat-)/;

/** A string key whose value `check` validates too (throwing a KeyProblem); the value is kept as given. */
export function checkedStringKey(options: { default: string; doc: string; nonEmpty?: boolean }, check: (text: string) => void): ConfigKey<string> {
  const key = stringKey(options);
  return {
    ...key,
    parse(value) {
      const text = key.parse(value);
      check(text);
      return text;
    },
  };
}

/** The name of an environment variable that holds a secret; never the secret itself, which is never echoed. */
export function variableNameKey(options: { default: string; doc: string; optional?: boolean }): ConfigKey<string> {
  return checkedStringKey({ default: options.default, doc: options.doc, nonEmpty: !options.optional }, (name) => {
    if (options.optional && name === '') return;
    // The value is not repeated in these messages: it may be the token itself.
    if (TOKEN_PREFIX.test(name)) {
      throw new KeyProblem(
        'looks like a token, not the name of a variable: put the token in an environment variable and write that variable\'s name here; the file must never hold the token',
      );
    }
    if (!VARIABLE_NAME.test(name)) {
      throw new KeyProblem('must be the name of an environment variable (letters, digits and _, not starting with a digit)');
    }
  });
}

