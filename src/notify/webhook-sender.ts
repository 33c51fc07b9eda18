import { setTimeout as sleep } from 'node:timers/promises';
import type { NotifyConfig } from '../config/config.js';
import { type WebhookConfig, webhookKey, webhookUrlProblem } from '../config/notify-config.js';
import { type Logger, oneLine } from '../logger.js';
import type { DeliveryRecord, StateStore } from '../store/state-store.js';
import { parseUrl } from '../url.js';
import { packageVersion } from '../version.js';
import { redactedUrl, webhookSignature } from './webhook-message.js';

/** How many deliveries are sent at once, to all receivers together. */
export const MAX_DELIVERIES_IN_FLIGHT = 16;

/**
 * How many deliveries are sent at once to one webhook: a slow receiver holds at most this
 * many requests open. A webhook with none in flight may always send one, beyond
 * {@link MAX_DELIVERIES_IN_FLIGHT}: slow receivers never hold up the others.
 */
export const MAX_IN_FLIGHT_PER_WEBHOOK = 4;

/** How long the server's stop waits for the deliveries due then (the runs it stopped: "stopped"), before it abandons them. */
const DRAIN_ON_CLOSE_MS = 3000;

/** How long a delivery waits after something went wrong on agent-pool's side (its outcome could not be stored). */
const WAIT_AFTER_ERROR_MS = 5000;

/** How long the start of a receiver's answer is read, for the last error. */
const ANSWER_READ_MS = 1000;

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
  /** The receiver's URL, redacted, as the attempt found it (a variable's may have changed). */
  url?: string;
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
  /** Called when nothing is due or being sent (the server's stop waits for it). */
  #idle: (() => void) | undefined;
  /** In a cluster: whether this server is to send a delivery now (see {@link claimWith}). */
  #claim: ((delivery: DeliveryRecord, attemptMs: number) => Promise<boolean>) | undefined;

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

  /**
   * In a cluster, each attempt first claims its delivery (`claim`): one that another
   * server holds is left to it, and leaves this server's queue.
   */
  claimWith(claim: (delivery: DeliveryRecord, attemptMs: number) => Promise<boolean>): void {
    this.#claim = claim;
  }

  /** Queues deliveries just stored, behind their story and webhook's earlier ones (one queued already stays where it is). */
  add(deliveries: readonly DeliveryRecord[]): void {
    if (this.#closing.signal.aborted) return;
    for (const delivery of deliveries) {
      const key = `${delivery.hook}\u0000${delivery.storyId}`;
      const queue = this.#queues.get(key);
      if (queue?.some((queued) => queued.id === delivery.id)) continue;
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

  /**
   * Stops: what is due now (the ends of the runs the server's stop ended) is given
   * {@link DRAIN_ON_CLOSE_MS} to go; then the attempts on their way are abandoned (their
   * deliveries stay PENDING for the next start), and nothing more is sent.
   */
  async close(): Promise<void> {
    if (!this.#closing.signal.aborted && (this.#sending.size > 0 || this.#due.size > 0)) {
      const drained = new Promise<void>((resolve) => {
        this.#idle = resolve;
      });
      const deadline = new AbortController();
      await Promise.race([drained, sleep(DRAIN_ON_CLOSE_MS, undefined, { signal: deadline.signal }).catch(() => undefined)]);
      deadline.abort();
    }
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

  /**
   * Sends the due queues' first deliveries, as many as the slots allow: each webhook within
   * its share, and one at least, whatever the others hold.
   */
  #fillSlots(): void {
    for (const key of this.#due) {
      if (this.#closing.signal.aborted) return;
      const head = this.#queues.get(key)![0]!;
      const hook = head.hook;
      const toHook = this.#sendingTo.get(hook) ?? 0;
      if (toHook >= MAX_IN_FLIGHT_PER_WEBHOOK || (toHook > 0 && this.#sending.size >= MAX_DELIVERIES_IN_FLIGHT)) continue;
      this.#due.delete(key);
      this.#sendingTo.set(hook, toHook + 1);
      const sending = this.#send(key)
        .catch((error: unknown) => {
          // Not the receiver's doing (the database refused the outcome): the delivery waits, never retried at once.
          this.#options.logger.error(`webhook delivery ${head.id}: its attempt could not be recorded; it is tried again in ${WAIT_AFTER_ERROR_MS / 1000} s`, error);
          const queue = this.#queues.get(key);
          if (queue?.[0]?.id === head.id) queue[0] = { ...queue[0], nextAttemptAt: new Date(Date.now() + WAIT_AFTER_ERROR_MS) };
        })
        .finally(() => {
          this.#sending.delete(key);
          const left = this.#sendingTo.get(hook)! - 1;
          if (left === 0) this.#sendingTo.delete(hook);
          else this.#sendingTo.set(hook, left);
          if (this.#closing.signal.aborted) return;
          this.#schedule(key);
          this.#fillSlots();
          if (this.#sending.size === 0 && this.#due.size === 0) this.#idle?.();
        });
      this.#sending.set(key, sending);
    }
  }

  /** One attempt at a queue's first delivery; its outcome is stored before the next goes. */
  async #send(key: string): Promise<void> {
    const queue = this.#queues.get(key)!;
    const delivery = queue[0]!;
    const config = this.#options.config();
    if (this.#claim && !(await this.#claim(delivery, config.timeout_seconds * 1000))) {
      this.#options.logger.debug(`webhook delivery ${delivery.id} is sent by another server of the cluster (or was sent)`);
      queue.shift();
      return;
    }
    const hook = config.webhook.find((candidate) => webhookKey(candidate) === delivery.hook);
    // A webhook missing from the file (being edited, or its url being fixed) is waited for, on the schedule.
    const attempt: Attempt = hook
      ? await this.#attempt(delivery, hook, config.timeout_seconds * 1000)
      : { error: 'its [[notify.webhook]] is not in agent-pool.toml (any more): put it back to have it sent', retry: true };
    if (this.#closing.signal.aborted) return; // the server stops: sent again at the next start
    const now = new Date();
    const attempts = delivery.attempts + 1;
    let next: DeliveryRecord;
    const url = attempt.url ?? delivery.url;
    if (attempt.error === undefined) {
      next = { ...delivery, url, status: 'DELIVERED', attempts, lastStatus: attempt.status, lastError: undefined, deliveredAt: now };
    } else {
      const delaySeconds = config.retry_seconds[attempts - 1] ?? config.retry_every_seconds;
      const nextAttemptAt = new Date(now.getTime() + delaySeconds * 1000);
      const givenUp = attempt.retry && nextAttemptAt.getTime() > delivery.createdAt.getTime() + config.give_up_after_seconds * 1000;
      const failed = !attempt.retry || givenUp;
      const lastError = givenUp ? `${attempt.error} (given up after ${attempts} attempts)` : attempt.error;
      next = { ...delivery, url, status: failed ? 'FAILED' : 'PENDING', attempts, lastStatus: attempt.status, lastError, nextAttemptAt: failed ? now : nextAttemptAt };
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
    const urlProblem = urlText ? webhookUrlProblem(urlText, { credentials: true }) : `is not set in the server's environment`;
    if (urlProblem || !urlText) {
      this.#checkVariables(hook);
      return { error: `the variable ${hook.url_env} that url_env names ${urlProblem}`, retry: true };
    }
    const secret = hook.secret_env === '' ? undefined : env[hook.secret_env];
    if (hook.secret_env !== '' && !secret) {
      this.#checkVariables(hook);
      return { error: `the variable ${hook.secret_env} that secret_env names is not set in the server's environment: the body cannot be signed`, retry: true };
    }
    let url = new URL(urlText);
    const redacted = redactedUrl(url.href);
    // fetch takes no credentials in a URL: a user:password@ of url_env's URL goes as Basic authentication.
    const authorization =
      url.username === '' && url.password === ''
        ? undefined
        : `Basic ${Buffer.from(`${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`).toString('base64')}`;
    url.username = '';
    url.password = '';
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'user-agent': this.#userAgent,
      'x-agent-pool-event': delivery.event,
      'x-agent-pool-delivery': delivery.id,
      ...(secret === undefined ? {} : { 'x-agent-pool-signature': webhookSignature(delivery.body, secret) }),
      ...(authorization === undefined ? {} : { authorization }),
    };
    let status: number | undefined;
    try {
      const signal = AbortSignal.any([this.#closing.signal, AbortSignal.timeout(Math.ceil(timeoutMs))]);
      for (let redirects = 0; ; redirects++) {
        const response = await fetch(url, { method: 'POST', headers, body: delivery.body, redirect: 'manual', signal });
        status = response.status;
        if (status === 307 || status === 308) {
          await response.body?.cancel();
          const location = response.headers.get('location');
          const target = location === null ? undefined : parseUrl(location, url);
          if (target?.origin !== url.origin || redirects === MAX_REDIRECTS) {
            return {
              status,
              url: redacted,
              error: `answered ${status} with a redirect ${target?.origin === url.origin ? `more than ${MAX_REDIRECTS} times` : `to ${target ? redactedUrl(target.href) : 'nowhere'}`}: agent-pool follows redirects only on the same origin; set the webhook's url to the address that takes the POST`,
              retry: false,
            };
          }
          url = target;
          continue;
        }
        if (status >= 200 && status < 300) {
          await response.body?.cancel();
          return { status, url: redacted, retry: false };
        }
        const answer = withoutSecrets(await readStart(response), urlText);
        const said = answer === '' ? '' : `: ${answer}`;
        if (status === 429 || status >= 500) return { status, url: redacted, error: `answered ${status}${said}`, retry: true };
        return { status, url: redacted, error: `answered ${status}${said} (not retried: fix the webhook or the receiver)`, retry: false };
      }
    } catch (error) {
      if (this.#closing.signal.aborted) return { error: 'the server stopped', retry: true };
      const reason =
        error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError')
          ? `no answer within ${timeoutMs / 1000} s`
          : `could not be reached (${networkReason(error)})`;
      // An answer that came, but whose body did not: its status counts.
      if (status !== undefined) return { status, url: redacted, error: `answered ${status}, then ${reason}`, retry: status === 429 || status >= 500 || status === 307 || status === 308 };
      return { url: redacted, error: reason, retry: true };
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

/** The start of a receiver's answer (what came of it within {@link ANSWER_READ_MS}), on one line, for the delivery's last error. */
async function readStart(response: Response): Promise<string> {
  const reader = response.body?.getReader();
  if (!reader) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  const deadline = new AbortController();
  const timedOut = sleep(ANSWER_READ_MS, 'timeout' as const, { signal: deadline.signal }).catch(() => 'timeout' as const);
  try {
    while (size < MAX_ANSWER_BYTES) {
      const read = await Promise.race([reader.read(), timedOut]);
      if (read === 'timeout' || read.done) break;
      chunks.push(read.value);
      size += read.value.byteLength;
    }
  } catch {
    // What came before the error is what there is.
  } finally {
    deadline.abort();
    await reader.cancel().catch(() => undefined);
  }
  return oneLine(Buffer.concat(chunks).subarray(0, MAX_ANSWER_BYTES).toString('utf8')).slice(0, 200);
}

/**
 * A receiver's answer without what could be secret of its URL: a receiver may quote the
 * path it was sent to (a Slack URL's path is its secret), so each part of the URL's path
 * and query longer than a few characters, as sent and decoded, is cut out.
 */
function withoutSecrets(answer: string, urlText: string): string {
  const url = new URL(urlText);
  const parts = [...url.pathname.split('/'), ...[...url.searchParams.entries()].flat(), url.username, url.password];
  let cleaned = answer;
  for (const part of parts) {
    for (const form of new Set([part, safeDecode(part)])) {
      if (form.length >= 6) cleaned = cleaned.split(form).join('…');
    }
  }
  return cleaned;
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** What a failed fetch says of the network: undici puts the reason (ECONNREFUSED…) in the cause. */
function networkReason(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (error as Error).message;
}
