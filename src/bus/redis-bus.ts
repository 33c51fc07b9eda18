import { createHmac, timingSafeEqual } from 'node:crypto';
import { Redis } from 'ioredis';
import { type Logger, ThrottledLog } from '../logger.js';
import { withoutPassword } from '../url.js';

/**
 * How old a message may be when it arrives: older, it is dropped (a replay). The servers'
 * clocks must agree within it.
 * @default 30 s
 */
export const MAX_MESSAGE_AGE_MS = 30_000;

/**
 * How long a publish may wait for Redis's answer before it counts as failed.
 * @default 5 s
 */
export const PUBLISH_TIMEOUT_MS = 5_000;

/** A message on the bus: a JSON object (Dates travel as `{ $date: ISO string }`). */
export type BusMessage = Record<string, unknown>;

/** Turns Dates into `{ $date }` on their way into JSON (`toJSON` would make them plain strings first). */
function replacer(this: Record<string, unknown>, key: string, value: unknown): unknown {
  const raw = this[key];
  return raw instanceof Date ? { $date: raw.toISOString() } : value;
}

function reviver(_key: string, value: unknown): unknown {
  if (typeof value === 'object' && value !== null && typeof (value as { $date?: unknown }).$date === 'string' && Object.keys(value).length === 1) {
    return new Date((value as { $date: string }).$date);
  }
  return value;
}

/** A message as sent: JSON, its Dates kept. */
export function encodeMessage(message: BusMessage): string {
  return JSON.stringify(message, replacer);
}

/** A message as received, its Dates back. */
export function decodeMessage(text: string): BusMessage {
  return JSON.parse(text, reviver) as BusMessage;
}

/** Calls `back` each time `connection` is ready again after it was closed. */
function whenBack(connection: Redis, back: () => void): void {
  let ready = true;
  connection.on('close', () => {
    ready = false;
  });
  connection.on('ready', () => {
    if (ready) return;
    ready = true;
    back();
  });
}

/** Where the bus can be reached, and what it is to whom. */
export interface RedisBusOptions {
  /** `redis://` or `rediss://`. */
  url: string;
  /** The cluster's channels begin with it: servers of other clusters on the same Redis never hear them. */
  prefix: string;
  /** This server's name: it hears what is sent to it by that name. */
  name: string;
  /**
   * What signs every message (the cluster's shared token): a message that does not carry
   * its signature is dropped, so that who can reach Redis but has not the token cannot ask
   * a server for anything. Undefined: messages go unsigned (a cluster without auth).
   */
  secret: string | undefined;
  logger: Logger;
}

/** Where a message came in: to every server, or to this one by name. */
export type BusChannel = 'all' | 'direct';

/**
 * The servers of a cluster tell each other through Redis's publish and subscribe: messages
 * to all (`<prefix>:all`, never heard by their sender) and to one server by name
 * (`<prefix>:server:<name>`). Redis keeps nothing: a message sent while a server is not
 * subscribed is lost to it, so every message is only a bell, and whoever hears the bus
 * come back ({@link onReconnect}) reads again what it may have missed. Two connections: one
 * that publishes (a message sent while Redis is away fails at once), one subscribed.
 */
export class RedisBus {
  readonly name: string;
  readonly #publisher: Redis;
  readonly #subscriber: Redis;
  readonly #all: string;
  readonly #prefix: string;
  readonly #handlers = new Set<(message: BusMessage, channel: BusChannel) => void>();
  readonly #key: Buffer | undefined;
  readonly #reconnectHandlers = new Set<(connection: 'subscriber' | 'publisher') => void>();
  readonly #problems: ThrottledLog;
  #closed = false;

  private constructor(options: RedisBusOptions, publisher: Redis, subscriber: Redis) {
    this.name = options.name;
    this.#prefix = options.prefix;
    this.#all = `${options.prefix}:all`;
    this.#publisher = publisher;
    this.#subscriber = subscriber;
    this.#problems = new ThrottledLog(options.logger);
    this.#key = options.secret === undefined ? undefined : createHmac('sha256', 'agent-pool bus').update(options.secret).digest();
    const where = withoutPassword(options.url);
    for (const connection of [publisher, subscriber]) {
      connection.on('error', (error: Error) => this.#problems.warn(`the bus at ${where}: ${error.message} (reconnecting)`));
    }
    subscriber.on('messageBuffer', (channel: Buffer, payload: Buffer) => this.#received(payload.toString('utf8'), channel.toString('utf8')));
    // Resubscribed by hand, then announced: what was sent before the subscription holds is read again by the handlers.
    whenBack(subscriber, () => {
      if (this.#closed) return;
      this.#subscribe().then(
        () => {
          options.logger.info(`the bus at ${where} is back`);
          for (const handler of this.#reconnectHandlers) handler('subscriber');
        },
        (error: unknown) => this.#problems.warn(`the bus at ${where}: could not subscribe again (${(error as Error).message})`),
      );
    });
    // What failed to be published while the publishing connection was away is sent again by the handlers.
    whenBack(publisher, () => {
      if (this.#closed) return;
      for (const handler of this.#reconnectHandlers) handler('publisher');
    });
  }

  /**
   * Connects to Redis and subscribes to this server's channels before it returns.
   * @throws Error when Redis cannot be reached or refuses.
   */
  static async open(options: RedisBusOptions): Promise<RedisBus> {
    const connect = (extra: object): Redis =>
      new Redis(options.url, { lazyConnect: true, autoResubscribe: false, retryStrategy: (times) => Math.min(times * 100, 2000), ...extra });
    // Nothing waits for Redis: a message sent while it is away fails at once (a bell is made
    // good by the reading again that follows its return; a request fails, saying so).
    const publisher = connect({ enableOfflineQueue: false, connectionName: `agent-pool:${options.name}` });
    const subscriber = connect({ maxRetriesPerRequest: 1, connectionName: `agent-pool:${options.name}:subscriber` });
    // ioredis rejects a failed connect with "Connection is closed."; its 'error' said why.
    let why: Error | undefined;
    const opening = [publisher, subscriber].map((connection) => {
      connection.on('error', (error: Error) => (why ??= error));
      return connection.connect();
    });
    try {
      await Promise.all(opening);
      const bus = new RedisBus(options, publisher, subscriber);
      await bus.#subscribe();
      return bus;
    } catch (error) {
      publisher.disconnect();
      subscriber.disconnect();
      throw why ?? error;
    }
  }

  #subscribe(): Promise<unknown> {
    return this.#subscriber.subscribe(this.#all, this.#channelOf(this.name));
  }

  #channelOf(server: string): string {
    return `${this.#prefix}:server:${server}`;
  }

  #sign(text: string): string {
    return this.#key === undefined ? '' : createHmac('sha256', this.#key).update(text).digest('base64url');
  }

  /**
   * A message as published: its text, then its signature on the line after it. What is
   * signed names the channel it goes to and when it was sent, so that a message seen on the
   * bus cannot be sent again elsewhere, or later.
   */
  #envelope(channel: string, message: BusMessage): string {
    const text = encodeMessage({ ...message, from: this.name, to: channel, sentAt: Date.now() });
    return `${text}\n${this.#sign(text)}`;
  }

  #received(envelope: string, channel: string): void {
    const split = envelope.lastIndexOf('\n');
    const text = envelope.slice(0, Math.max(split, 0));
    const given = Buffer.from(envelope.slice(split + 1));
    const expected = Buffer.from(this.#sign(text));
    if (split < 0 || given.length !== expected.length || !timingSafeEqual(given, expected)) {
      this.#problems.warn('the bus: a message without this cluster\'s signature was dropped (is another cluster, or someone else, publishing on it?)');
      return;
    }
    let message: BusMessage;
    try {
      message = decodeMessage(text);
    } catch {
      this.#problems.warn('the bus: a message that is not JSON was ignored');
      return;
    }
    if (message.to !== channel || typeof message.sentAt !== 'number' || Math.abs(Date.now() - message.sentAt) > MAX_MESSAGE_AGE_MS) {
      this.#problems.warn('the bus: a message sent to another channel, or too long ago, was dropped (replayed?)');
      return;
    }
    if (message.from === this.name) return;
    for (const handler of this.#handlers) handler(message, channel === this.#all ? 'all' : 'direct');
  }

  /** Calls `handler` with each message from another server, to all or to this one. */
  onMessage(handler: (message: BusMessage, channel: BusChannel) => void): void {
    this.#handlers.add(handler);
  }

  /**
   * Calls `handler` each time a connection to the bus is back after it was lost: the
   * subscriber once subscribed again (what was sent meanwhile was not heard), the
   * publisher (what this server sent meanwhile failed).
   */
  onReconnect(handler: (connection: 'subscriber' | 'publisher') => void): void {
    this.#reconnectHandlers.add(handler);
  }

  /** Sends `message` to every other server; resolves once Redis has taken it. */
  async publish(message: BusMessage): Promise<void> {
    await this.#taken(this.#publisher.publish(this.#all, this.#envelope(this.#all, message)));
  }

  /** Sends `message` to the server named `server`; resolves with how many heard it (0: none is subscribed by that name). */
  async send(server: string, message: BusMessage): Promise<number> {
    const channel = this.#channelOf(server);
    return this.#taken(this.#publisher.publish(channel, this.#envelope(channel, message)));
  }

  /**
   * A publish's answer, or a failure after {@link PUBLISH_TIMEOUT_MS}: a publish on its way
   * when the connection dropped may never settle (ioredis keeps it to send again), and
   * whoever waits for it must go on (a bell that failed is rung again, see onReconnect).
   */
  async #taken<T>(publishing: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`Redis did not take the message within ${PUBLISH_TIMEOUT_MS / 1000} s`)), PUBLISH_TIMEOUT_MS);
      timer.unref();
    });
    try {
      return await Promise.race([publishing, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Leaves the bus: what was published is sent first. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const connection of [this.#subscriber, this.#publisher]) {
      // Quitting needs Redis; without it the connection is cut.
      await connection.quit().catch(() => connection.disconnect());
    }
  }
}
