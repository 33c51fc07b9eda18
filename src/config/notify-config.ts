import { createHash } from 'node:crypto';
import { isPlainObject } from '../plain-object.js';
import { type ConfigKey, describe, KeyProblem, stringKey, variableNameKey } from './config-keys.js';
import { parseUrl } from '../url.js';

/** What a webhook can be told of: a story's agent starts waiting for a person, or its run ends. */
export const NOTIFY_EVENTS = ['waiting', 'completed', 'failed', 'stopped'] as const;
/** One of {@link NOTIFY_EVENTS}. */
export type NotifyEvent = (typeof NOTIFY_EVENTS)[number];

/** How a webhook's body is written: agent-pool's own JSON, or a Slack incoming webhook's `{ text }`. */
export const WEBHOOK_FORMATS = ['json', 'slack'] as const;
/** One of {@link WEBHOOK_FORMATS}. */
export type WebhookFormat = (typeof WEBHOOK_FORMATS)[number];

/** One `[[notify.webhook]]`, validated; `url` or `url_env` is set, never both. */
export interface WebhookConfig {
  /** The receiver's URL, as written ('' when url_env names it). */
  url: string;
  /** The environment variable that holds the URL ('' when url is written). */
  url_env: string;
  /** The events it is sent. */
  on: NotifyEvent[];
  /** The environment variable that holds the signing secret ('' for unsigned bodies). */
  secret_env: string;
  format: WebhookFormat;
}

const WEBHOOK_KEYS = ['url', 'url_env', 'on', 'secret_env', 'format'] as const;

const formatKey = stringKey<WebhookFormat>({ default: 'json', oneOf: WEBHOOK_FORMATS, doc: '' });
const variableKey = variableNameKey({ default: '', doc: '' });

/**
 * Whether `text` is a URL a webhook can be sent to: http or https, with no fragment, and
 * in the file no user name or password (a URL with them belongs in a variable named by
 * url_env, whose `user:password@` is sent as Basic authentication).
 * @returns what is wrong, or undefined. The URL itself is not repeated: it may be a secret.
 */
export function webhookUrlProblem(text: string, options: { credentials?: boolean } = {}): string | undefined {
  const url = parseUrl(text);
  if (!url) return 'is not a URL: write the receiver\'s whole address, e.g. "https://hooks.example.com/agent-pool"';
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return `must be an http or https URL, not ${url.protocol}`;
  if (!options.credentials && (url.username !== '' || url.password !== '')) return 'must not hold a user name or password: put such a URL in an environment variable and name it with url_env';
  if (url.hash !== '') return 'must have no #fragment: it is never sent';
  return undefined;
}

/**
 * Which receiver a delivery is for, as stored with it: the variable's name for `url_env`,
 * a hash of the URL for `url` (so that a Slack URL, a secret of its own, is not stored).
 */
export function webhookKey(hook: Pick<WebhookConfig, 'url' | 'url_env'>): string {
  if (hook.url_env !== '') return `url_env:${hook.url_env}`;
  // As URL parses it: "https://a.example" and "https://a.example/" are one receiver.
  return `url:${createHash('sha256').update(new URL(hook.url).href).digest('hex').slice(0, 32)}`;
}

function parseWebhook(value: unknown, number: number): WebhookConfig {
  const where = `[[notify.webhook]] number ${number}`;
  if (!isPlainObject(value) || value instanceof Date) throw new KeyProblem(`${where} must be a table, got ${describe(value)}`);
  const hook: WebhookConfig = { url: '', url_env: '', on: [...NOTIFY_EVENTS], secret_env: '', format: 'json' };
  for (const [key, item] of Object.entries(value)) {
    const problem = (text: string): KeyProblem => new KeyProblem(`${where}: ${key} ${text}`);
    try {
      switch (key) {
        case 'url':
          if (typeof item !== 'string') throw new KeyProblem(`must be a string, got ${describe(item)}`);
          hook.url = item;
          break;
        case 'url_env':
          hook.url_env = variableKey.parse(item);
          break;
        case 'secret_env':
          hook.secret_env = variableKey.parse(item);
          break;
        case 'format':
          hook.format = formatKey.parse(item);
          break;
        case 'on': {
          if (!Array.isArray(item) || item.length === 0) {
            throw new KeyProblem(`must be a non-empty array of ${NOTIFY_EVENTS.map((e) => `"${e}"`).join(', ')} (leave it out for all four), got ${describe(item)}`);
          }
          const events = new Set<NotifyEvent>();
          for (const event of item) {
            if (!(NOTIFY_EVENTS as readonly unknown[]).includes(event)) {
              throw new KeyProblem(`must hold only ${NOTIFY_EVENTS.map((e) => `"${e}"`).join(', ')}, got ${describe(event)}`);
            }
            events.add(event as NotifyEvent);
          }
          hook.on = NOTIFY_EVENTS.filter((event) => events.has(event));
          break;
        }
        default:
          throw new KeyProblem(`is an unknown key; the keys of [[notify.webhook]] are ${WEBHOOK_KEYS.join(', ')}`);
      }
    } catch (error) {
      if (error instanceof KeyProblem) throw problem(error.message);
      throw error;
    }
  }
  if ((hook.url === '') === (hook.url_env === '')) {
    throw new KeyProblem(`${where} needs url (the receiver's address) or url_env (the variable that holds it), one of the two`);
  }
  const urlProblem = hook.url === '' ? undefined : webhookUrlProblem(hook.url);
  if (urlProblem) throw new KeyProblem(`${where}: url ${urlProblem}`);
  return hook;
}

/** `[[notify.webhook]]`, any number of them, each for another receiver. */
export function webhooksKey(doc: string): ConfigKey<WebhookConfig[]> {
  return {
    default: [],
    doc,
    parse(value) {
      if (!Array.isArray(value)) throw new KeyProblem(`must be written as [[notify.webhook]] tables, got ${describe(value)}`);
      const hooks = value.map((item, index) => parseWebhook(item, index + 1));
      const seen = new Map<string, number>();
      hooks.forEach((hook, index) => {
        const key = webhookKey(hook);
        const earlier = seen.get(key);
        if (earlier !== undefined) {
          throw new KeyProblem(
            `[[notify.webhook]] number ${index + 1} has the same ${hook.url_env === '' ? 'url' : 'url_env'} as number ${earlier}: one webhook per receiver, with every event it wants in its on`,
          );
        }
        seen.set(key, index + 1);
      });
      return hooks;
    },
  };
}
