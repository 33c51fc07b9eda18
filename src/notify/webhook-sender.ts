import type { NotifyConfig } from '../config/config.js';
import { type WebhookConfig, webhookKey, webhookUrlProblem } from '../config/notify-config.js';
import { type Logger, oneLine } from '../logger.js';
import type { DeliveryRecord, StateStore } from '../store/state-store.js';
import { packageVersion } from '../version.js';
import { redactedUrl, webhookSignature } from './webhook-message.js';

/** How many deliveries are sent at once, to all receivers together. */
export const MAX_DELIVERIES_IN_FLIGHT = 16;

/**
 * How many deliveries are sent at once to one webhook: a slow receiver holds at most this
 * many requests open, and leaves the other slots to the other receivers.
 */
export const MAX_IN_FLIGHT_PER_WEBHOOK = 4;

/** How many same-origin redirects (307 and 308, which keep the POST and its body) are followed. */
const MAX_REDIRECTS = 3;

/** The most of a receiver's answer read, for the delivery's last error. */
const MAX_ANSWER_BYTES = 512;

/** How long deliveries made or given up are kept in the database, for webhookDeliveries. */
const KEEP_FINISHED_MS = 7 * 24 * 3600 * 1000;

/** The longest a Node timer can wait. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** What one attempt made of a delivery. */
interface Attempt {
  /** The receiver's HTTP status, when it answered. */
  status?: number;
  /** What went wrong, for people; undefined for a 2xx. */
  error?: string;
  /** Whether another attempt may go through (no connection, a timeout, 429, 5xx). */
  retry: boolean;
}

/** What the sender is built from. */
export interface WebhookSenderOptions {
  store: StateStore;
  /** `[notify]` as it is now: each attempt finds its webhook, secret and timing there. */
  config: () => NotifyConfig;
  /** Where the variables that url_env and secret_env name are read: the server's environment. */
  env: NodeJS.ProcessEnv;
  logger: Logger;
}

/**
 * Sends the outbox: every PENDING delivery, in the order written per story and webhook
 * (one receiver that is down never holds up another, nor another story's deliveries),
 * at most {@link MAX_DELIVERIES_IN_FLIGHT} at once and {@link MAX_IN_FLIGHT_PER_WEBHOOK} to
 * one webhook, each attempt with a deadline. A
 * connection error, a timeout, 429 or 5xx is retried on `[notify] retry_seconds`, then every
 * `retry_every_seconds`, until `give_up_after_seconds` after the event; any other answer
 * but 2xx fails it at once. Each attempt's outcome is stored, so a restart goes on where
 * this one stopped, and sends what is due at once.
 */
export class WebhookSender {
  readonly #options: WebhookSenderOptions;
  /** Each story and webhook's deliveries still to make, oldest first; the first is the one being sent or waited for. */
  readonly #queues = new Map<string, DeliveryRecord[]>();
  /** Queues whose first delivery waits for its time. */
  readonly #timers = new Map<string, NodeJS.Timeout>();
  /** Queues whose first delivery is due, waiting for a slot. */
  readonly #due = new Set<string>();
  /** Queues whose first delivery is being sent. */
  readonly #sending = new Map<string, Promise<void>>();
  /** How many deliveries are being sent to each webhook. */
  readonly #sendingTo = new Map<string, number>();
  readonly #closing = new AbortController();
  readonly #userAgent = `agent-pool/${packageVersion()}`;
  /** Webhooks whose variables were reported unset, so that each is logged once. */
  readonly #reported = new Set<string>();
  #prune: NodeJS.Timeout | undefined;

  constructor(options: WebhookSenderOptions) {
    this.#options = options;
  }

  /** Takes up what the database holds PENDING (due ones go at once), and drops week-old finished ones. */
  async start(): Promise<void> {
    for (const hook of this.#options.config().webhook) this.#checkVariables(hook);
    await this.#pruneFinished();
    this.add(await this.#options.store.pendingDeliveries());
    this.#prune = setInterval(() => void this.#pruneFinished(), 3600 * 1000);
    this.#prune.unref();
  }

  /** Queues deliveries just stored, behind their story and webhook's earlier ones. */
  add(deliveries: readonly DeliveryRecord[]): void {
    if (this.#closing.signal.aborted) return;
    for (const delivery of deliveries) {
      const key = `${delivery.hook}\u0000${delivery.storyId}`;
      const queue = this.#queues.get(key);
      if (queue) queue.push(delivery);
      else {
        this.#queues.set(key, [delivery]);
        this.#schedule(key);
      }
    }
  }

  /** Deliveries not yet made or given up, queued here (for tests and diagnostics). */
  get pending(): number {
    let count = 0;
    for (const queue of this.#queues.values()) count += queue.length;
    return count;
  }

  /** Stops: attempts on their way are abandoned (their deliveries stay PENDING for the next start), nothing more is sent. */
  async close(): Promise<void> {
    this.#closing.abort();
    clearInterval(this.#prune);
    for (const timer of this.#timers.values()) clearTimeout(timer);
    this.#timers.clear();
    this.#due.clear();
    await Promise.all(this.#sending.values());
    this.#queues.clear();
  }

  /** Sends a queue's first delivery now if it is due and a slot is free, else when it is. */
  #schedule(key: string): void {
    const head = this.#queues.get(key)?.[0];
    if (!head) {
      this.#queues.delete(key);
      return;
    }
    const wait = head.nextAttemptAt.getTime() - Date.now();
    if (wait > 0) {
      const timer = setTimeout(() => {
        this.#timers.delete(key);
        this.#schedule(key);
      }, Math.min(wait, MAX_TIMER_MS));
      timer.unref();
      this.#timers.set(key, timer);
      return;
    }
    this.#due.add(key);
    this.#fillSlots();
  }

  /** Sends the due queues' first deliveries, as many as the slots allow, each webhook within its share. */
  #fillSlots(): void {
    for (const key of this.#due) {
      if (this.#sending.size >= MAX_DELIVERIES_IN_FLIGHT || this.#closing.signal.aborted) return;
      const hook = this.#queues.get(key)![0]!.hook;
      const toHook = this.#sendingTo.get(hook) ?? 0;
      if (toHook >= MAX_IN_FLIGHT_PER_WEBHOOK) continue;
      this.#due.delete(key);
      this.#sendingTo.set(hook, toHook + 1);
      const sending = this.#send(key)
        .catch((error: unknown) => this.#options.logger.error('a webhook delivery could not be recorded', error))
        .finally(() => {
          this.#sending.delete(key);
          const left = this.#sendingTo.get(hook)! - 1;
          if (left === 0) this.#sendingTo.delete(hook);
          else this.#sendingTo.set(hook, left);
          if (this.#closing.signal.aborted) return;
          this.#schedule(key);
          this.#fillSlots();
        });
      this.#sending.set(key, sending);
    }
  }

  /** One attempt at a queue's first delivery; its outcome is stored before the next goes. */
  async #send(key: string): Promise<void> {
    const queue = this.#queues.get(key)!;
    const delivery = queue[0]!;
    const config = this.#options.config();
    const hook = config.webhook.find((candidate) => webhookKey(candidate) === delivery.hook);
    const attempt: Attempt = hook
      ? await this.#attempt(delivery, hook, config.timeout_seconds * 1000)
      : { error: 'its [[notify.webhook]] is no longer in agent-pool.toml', retry: false };
    if (this.#closing.signal.aborted) return; // the server stops: sent again at the next start
    const now = new Date();
    const attempts = delivery.attempts + 1;
    let next: DeliveryRecord;
    if (attempt.error === undefined) {
      next = { ...delivery, status: 'DELIVERED', attempts, lastStatus: attempt.status, lastError: undefined, deliveredAt: now };
    } else {
      const delaySeconds = config.retry_seconds[attempts - 1] ?? config.retry_every_seconds;
      const nextAttemptAt = new Date(now.getTime() + delaySeconds * 1000);
      const givenUp = attempt.retry && nextAttemptAt.getTime() > delivery.createdAt.getTime() + config.give_up_after_seconds * 1000;
      const failed = !attempt.retry || givenUp;
      const lastError = givenUp ? `${attempt.error} (given up after ${attempts} attempts)` : attempt.error;
      next = { ...delivery, status: failed ? 'FAILED' : 'PENDING', attempts, lastStatus: attempt.status, lastError, nextAttemptAt: failed ? now : nextAttemptAt };
      const what = `webhook delivery ${delivery.id} (${delivery.event} of story ${delivery.storyId}) to ${delivery.url}`;
      if (failed) this.#options.logger.warn(`${what} FAILED: ${lastError}; see webhookDeliveries`);
      else if (attempts === 1) this.#options.logger.warn(`${what}: ${attempt.error}; retrying in ${delaySeconds} s, then on its schedule`);
      else this.#options.logger.debug(`${what}, attempt ${attempts}: ${attempt.error}`);
    }
    await this.#options.store.updateDelivery(next);
    if (next.status === 'PENDING') queue[0] = next;
    else queue.shift();
  }

  /** POSTs a delivery's body to its webhook once (following same-origin 307 and 308), within `timeoutMs`. */
  async #attempt(delivery: DeliveryRecord, hook: WebhookConfig, timeoutMs: number): Promise<Attempt> {
    const { env } = this.#options;
    const urlText = hook.url !== '' ? hook.url : env[hook.url_env];
    const urlProblem = urlText ? webhookUrlProblem(urlText) : `is not set in the server's environment`;
    if (urlProblem || !urlText) {
      this.#checkVariables(hook);
      return { error: `the variable ${hook.url_env} that url_env names ${urlProblem}`, retry: true };
    }
    const secret = hook.secret_env === '' ? undefined : env[hook.secret_env];
    if (hook.secret_env !== '' && !secret) {
      this.#checkVariables(hook);
      return { error: `the variable ${hook.secret_env} that secret_env names is not set in the server's environment: the body cannot be signed`, retry: true };
    }
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'user-agent': this.#userAgent,
      'x-agent-pool-event': delivery.event,
      'x-agent-pool-delivery': delivery.id,
      ...(secret === undefined ? {} : { 'x-agent-pool-signature': webhookSignature(delivery.body, secret) }),
    };
    const signal = AbortSignal.any([this.#closing.signal, AbortSignal.timeout(timeoutMs)]);
    let url = new URL(urlText);
    try {
      for (let redirects = 0; ; redirects++) {
        const response = await fetch(url, { method: 'POST', headers, body: delivery.body, redirect: 'manual', signal });
        const status = response.status;
        if (status === 307 || status === 308) {
          await response.body?.cancel();
          const location = response.headers.get('location');
          const target = location === null ? undefined : parseUrl(location, url);
          if (target?.origin !== url.origin || redirects === MAX_REDIRECTS) {
            return {
              status,
              error: `answered ${status} with a redirect ${target?.origin === url.origin ? `more than ${MAX_REDIRECTS} times` : `to ${target ? redactedUrl(target.href) : 'nowhere'}`}: agent-pool follows redirects only on the same origin; set the webhook's url to the address that takes the POST`,
              retry: false,
            };
          }
          url = target;
          continue;
        }
        if (status >= 200 && status < 300) {
          await response.body?.cancel();
          return { status, retry: false };
        }
        const answer = await readStart(response);
        const said = answer === '' ? '' : `: ${answer}`;
        if (status === 429 || status >= 500) return { status, error: `answered ${status}${said}`, retry: true };
        return { status, error: `answered ${status}${said} (not retried: fix the webhook or the receiver)`, retry: false };
      }
    } catch (error) {
      if (this.#closing.signal.aborted) return { error: 'the server stopped', retry: true };
      if (signal.aborted) return { error: `no answer within ${timeoutMs / 1000} s`, retry: true };
      return { error: `could not be reached (${networkReason(error)})`, retry: true };
    }
  }

  /** Logs once per webhook a variable it names that is unset: its deliveries wait for it. */
  #checkVariables(hook: WebhookConfig): void {
    const key = webhookKey(hook);
    if (this.#reported.has(key)) return;
    for (const name of [hook.url_env, hook.secret_env]) {
      if (name !== '' && !this.#options.env[name]) {
        this.#reported.add(key);
        this.#options.logger.warn(
          `[[notify.webhook]]: the variable ${name} is not set in the server's environment; its deliveries wait (and are retried) until the server is started with it`,
        );
        return;
      }
    }
  }

  async #pruneFinished(): Promise<void> {
    await this.#options.store
      .deleteDeliveriesBefore(new Date(Date.now() - KEEP_FINISHED_MS))
      .catch((error: unknown) => this.#options.logger.warn('old webhook deliveries could not be dropped', error));
  }
}

/** The start of a receiver's answer, on one line, for the delivery's last error. */
async function readStart(response: Response): Promise<string> {
  const reader = response.body?.getReader();
  if (!reader) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < MAX_ANSWER_BYTES) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      size += value.byteLength;
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
  return oneLine(Buffer.concat(chunks).subarray(0, MAX_ANSWER_BYTES).toString('utf8')).slice(0, 200);
}

/** A Location header's URL against the request's, or undefined (URL.parse is newer than Node 20.0). */
function parseUrl(text: string, base: URL): URL | undefined {
  try {
    return new URL(text, base);
  } catch {
    return undefined;
  }
}

/** What a failed fetch says of the network: undici puts the reason (ECONNREFUSED…) in the cause. */
function networkReason(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (error as Error).message;
}
