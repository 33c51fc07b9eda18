import pg from 'pg';
import { POSTGRES_MIGRATIONS } from './postgres-migrations.js';
import {
  type DeliveryRow,
  deliveryOf,
  deliveryRow,
  type EventRow,
  eventOf,
  landingRow,
  type RunRow,
  runOf,
  runRow,
  type ServiceRow,
  serviceOf,
  serviceRow,
  type StoryRow,
  storyOf,
} from './rows.js';
import type {
  DeliveryRecord,
  DeliveryStatus,
  EventBounds,
  EventRecord,
  LandingRecord,
  RunRecord,
  ServiceRecord,
  StateStore,
  StoryRecord,
} from './state-store.js';
import { StoreError } from './store-error.js';

/** The schema version this agent-pool writes (the same number as SQLite's). */
export const POSTGRES_SCHEMA_VERSION = POSTGRES_MIGRATIONS.length;

/** Any numbers: two servers that migrate at once take turns; the second server on a database is refused. */
const MIGRATION_LOCK = 4_747_000_001;
const SERVER_LOCK = 4_747_000_002;

/** BIGINT columns hold milliseconds and seqs, well within a double's exact integers. */
const TYPES = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === pg.types.builtins.INT8 ? (value: string) => Number(value) : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
};

/** A Postgres URL with its password, if any, replaced: for messages. */
export function redactedUrl(url: string): string {
  // Not through URL: a socket's URL (postgresql://user:pass@/db?host=/dir) has no host for it.
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/@?#]*):[^@/?#]*@/i, '$1:***@');
}

const RUN_COLUMNS =
  'story_id, number, agent, prompt, rendered_prompt, status, session_id, pid, exit_code, error, cost_usd, input_tokens, output_tokens, ' +
  'cached_input_tokens, started_at, finished_at, first_seq, last_seq, worktree_path, branch, marker';
const DELIVERY_COLUMNS = 'id, hook, url, event, story_id, body, status, attempts, last_status, last_error, created_at, next_attempt_at, delivered_at';

/** `$1, $2, …, $n`. */
function placeholders(count: number, from = 1): string {
  return Array.from({ length: count }, (_, i) => `$${from + i}`).join(', ');
}

/**
 * agent-pool's state in Postgres (`[store] url`), with the same semantics as the SQLite
 * {@link Store}: the same tables and records (src/store/rows.ts), and one server per
 * database (a session lock, held while the store is open). One connection, so that
 * every call runs in the order it was made (the pool's writes rely on that, as on SQLite's);
 * a connection that drops is replaced by the next call. A run with its deliveries, and a
 * batch of events, are each one transaction. Two writers of one story's seq collide on the
 * events' primary key rather than leave a gap or a duplicate.
 */
export class PostgresStore implements StateStore {
  readonly #pool: pg.Pool;
  /** The connection that holds the database's lock for as long as the store is open. */
  readonly #holder: pg.Client;

  private constructor(pool: pg.Pool, holder: pg.Client) {
    this.#pool = pool;
    this.#holder = holder;
  }

  /**
   * Connects to the database at `url` and brings its schema up to date (under a lock, so
   * that servers starting together migrate once).
   * @throws StoreError when it cannot connect, or a newer agent-pool wrote the schema.
   */
  static async open(url: string): Promise<PostgresStore> {
    const pool = new pg.Pool({ connectionString: url, max: 1, types: TYPES, connectionTimeoutMillis: 10_000 });
    // A connection that fails while idle must not end the server: the next call reconnects.
    pool.on('error', () => {});
    let client: pg.PoolClient | undefined;
    let holder: pg.Client | undefined;
    try {
      client = await pool.connect();
      await client.query('BEGIN');
      await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
      await client.query('CREATE TABLE IF NOT EXISTS agent_pool_schema (version INTEGER NOT NULL)');
      const { rows } = await client.query<{ version: number }>('SELECT version FROM agent_pool_schema');
      const version = rows[0]?.version ?? 0;
      if (version > POSTGRES_SCHEMA_VERSION) {
        throw new StoreError(
          `the database at ${redactedUrl(url)} was written by a newer agent-pool (schema version ${version}; this one knows up to ${POSTGRES_SCHEMA_VERSION}): ` +
            'upgrade agent-pool, or set [store] url to another database',
        );
      }
      for (let next = version; next < POSTGRES_SCHEMA_VERSION; next++) await client.query(POSTGRES_MIGRATIONS[next]!);
      if (rows.length === 0) await client.query('INSERT INTO agent_pool_schema (version) VALUES ($1)', [POSTGRES_SCHEMA_VERSION]);
      else await client.query('UPDATE agent_pool_schema SET version = $1', [POSTGRES_SCHEMA_VERSION]);
      await client.query('COMMIT');
      client.release();
      client = undefined;
      // One server per database, as with SQLite's file, until servers share one through a bus.
      holder = new pg.Client({ connectionString: url, types: TYPES });
      holder.on('error', () => {});
      await holder.connect();
      const { rows: locked } = await holder.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1) AS ok', [SERVER_LOCK]);
      if (!locked[0]?.ok) {
        throw new StoreError(
          `the database at ${redactedUrl(url)} is in use by another agent-pool server: stop it, or set [store] url to another database`,
        );
      }
      return new PostgresStore(pool, holder);
    } catch (error) {
      if (client) {
        await client.query('ROLLBACK').catch(() => {});
        client.release();
      }
      await pool.end().catch(() => {});
      await holder?.end().catch(() => {});
      if (error instanceof StoreError) throw error;
      throw new StoreError(
        `the database at ${redactedUrl(url)} cannot be used (${(error as Error).message}): check [store] url (or url_env) in agent-pool.toml, and that Postgres runs there`,
        { cause: error },
      );
    }
  }

  async #rows<T extends pg.QueryResultRow>(text: string, values: unknown[] = []): Promise<T[]> {
    return (await this.#pool.query<T>(text, values)).rows;
  }

  async #run(text: string, values: unknown[] = []): Promise<void> {
    await this.#pool.query(text, values);
  }

  /** Runs `work` in one transaction on the connection. */
  async #transaction(work: (client: pg.PoolClient) => Promise<void>): Promise<void> {
    const client = await this.#pool.connect();
    try {
      await client.query('BEGIN');
      await work(client);
      await client.query('COMMIT');
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {});
      throw error;
    } finally {
      client.release();
    }
  }

  async stories(): Promise<StoryRecord[]> {
    const rows = await this.#rows<StoryRow>(
      'SELECT story_id, created_at, agent, title, started_by, base_branch, landed_commit, landed_as, merged_at, archived, branch_deleted, ' +
        'pushed_commit, pr_url, pr_number, pr_state FROM stories ORDER BY position',
    );
    return rows.map(storyOf);
  }

  async addStory(storyId: string, createdAt: Date, agent?: string, title?: string, startedBy?: string): Promise<void> {
    await this.#run(
      'INSERT INTO stories (story_id, position, created_at, agent, title, started_by) ' +
        'VALUES ($1, (SELECT COALESCE(MAX(position), 0) + 1 FROM stories), $2, $3, $4, $5) ON CONFLICT (story_id) DO NOTHING',
      [storyId, createdAt.getTime(), agent ?? null, title ?? null, startedBy ?? null],
    );
  }

  async setStoryAgent(storyId: string, agent: string): Promise<void> {
    await this.#run('UPDATE stories SET agent = $1 WHERE story_id = $2', [agent, storyId]);
  }

  async setStoryTitle(storyId: string, title: string | undefined): Promise<void> {
    await this.#run('UPDATE stories SET title = $1 WHERE story_id = $2', [title ?? null, storyId]);
  }

  async saveLanding(storyId: string, landing: LandingRecord): Promise<void> {
    const row = landingRow(storyId, landing);
    await this.#run(
      'UPDATE stories SET base_branch = $2, landed_commit = $3, landed_as = $4, merged_at = $5, archived = $6, branch_deleted = $7, ' +
        'pushed_commit = $8, pr_url = $9, pr_number = $10, pr_state = $11 WHERE story_id = $1',
      [row.story_id, row.base_branch, row.landed_commit, row.landed_as, row.merged_at, row.archived, row.branch_deleted, row.pushed_commit, row.pr_url, row.pr_number, row.pr_state],
    );
  }

  async runs(): Promise<RunRecord[]> {
    return (await this.#rows<RunRow>(`SELECT ${RUN_COLUMNS} FROM runs ORDER BY story_id, number`)).map(runOf);
  }

  async saveRun(run: RunRecord, deliveries: readonly DeliveryRecord[] = []): Promise<void> {
    const row = runRow(run);
    const columns = RUN_COLUMNS.split(', ');
    await this.#transaction(async (client) => {
      await client.query(
        `INSERT INTO runs (${RUN_COLUMNS}) VALUES (${placeholders(columns.length)}) ON CONFLICT (story_id, number) DO UPDATE SET ` +
          columns.slice(2).map((column) => `${column} = excluded.${column}`).join(', '),
        columns.map((column) => row[column as keyof RunRow]),
      );
      for (const delivery of deliveries) {
        const values = Object.values(deliveryRow(delivery));
        await client.query(`INSERT INTO webhook_deliveries (${DELIVERY_COLUMNS}) VALUES (${placeholders(values.length)})`, values);
      }
    });
  }

  async pendingDeliveries(): Promise<DeliveryRecord[]> {
    return (await this.#rows<DeliveryRow>(`SELECT ${DELIVERY_COLUMNS} FROM webhook_deliveries WHERE status = 'PENDING' ORDER BY position`)).map(deliveryOf);
  }

  async updateDelivery(delivery: DeliveryRecord): Promise<void> {
    const row = deliveryRow(delivery);
    await this.#run(
      'UPDATE webhook_deliveries SET url = $2, status = $3, attempts = $4, last_status = $5, last_error = $6, next_attempt_at = $7, delivered_at = $8 WHERE id = $1',
      [row.id, row.url, row.status, row.attempts, row.last_status, row.last_error, row.next_attempt_at, row.delivered_at],
    );
  }

  async deliveries(limit: number, status?: DeliveryStatus): Promise<DeliveryRecord[]> {
    const rows =
      status === undefined
        ? await this.#rows<DeliveryRow>(`SELECT ${DELIVERY_COLUMNS} FROM webhook_deliveries ORDER BY position DESC LIMIT $1`, [limit])
        : await this.#rows<DeliveryRow>(`SELECT ${DELIVERY_COLUMNS} FROM webhook_deliveries WHERE status = $1 ORDER BY position DESC LIMIT $2`, [status, limit]);
    return rows.map(deliveryOf);
  }

  async deleteDeliveriesBefore(date: Date): Promise<void> {
    await this.#run("DELETE FROM webhook_deliveries WHERE status != 'PENDING' AND COALESCE(delivered_at, next_attempt_at) < $1", [date.getTime()]);
  }

  async services(): Promise<ServiceRecord[]> {
    return (await this.#rows<ServiceRow>('SELECT story_id, name, port, status, pid, marker, error FROM services ORDER BY story_id, name')).map(serviceOf);
  }

  async saveService(service: ServiceRecord): Promise<void> {
    const row = serviceRow(service);
    await this.#run(
      'INSERT INTO services (story_id, name, port, status, pid, marker, error) VALUES ($1, $2, $3, $4, $5, $6, $7) ' +
        'ON CONFLICT (story_id, name) DO UPDATE SET port = excluded.port, status = excluded.status, pid = excluded.pid, marker = excluded.marker, error = excluded.error',
      [row.story_id, row.name, row.port, row.status, row.pid, row.marker, row.error],
    );
  }

  async deleteServices(storyId: string): Promise<void> {
    await this.#run('DELETE FROM services WHERE story_id = $1', [storyId]);
  }

  async appendEvents(events: readonly EventRecord[]): Promise<void> {
    if (events.length === 0) return;
    // One statement for the batch (a transaction by itself), in pages within Postgres's 65,535 parameters.
    const PAGE = 10_000;
    await this.#transaction(async (client) => {
      for (let start = 0; start < events.length; start += PAGE) {
        const page = events.slice(start, start + PAGE);
        const values = page.flatMap((event) => [event.storyId, event.seq, event.run, event.at.getTime(), event.type, event.payload]);
        await client.query(
          `INSERT INTO events (story_id, seq, run, at, type, payload) VALUES ${page.map((_, i) => `(${placeholders(6, i * 6 + 1)})`).join(', ')}`,
          values,
        );
      }
    });
  }

  async readEvents(storyId: string, fromSeq: number, limit: number): Promise<EventRecord[]> {
    const rows = await this.#rows<EventRow>(
      'SELECT story_id, seq, run, at, type, payload FROM events WHERE story_id = $1 AND seq >= $2 ORDER BY seq LIMIT $3',
      [storyId, fromSeq, limit],
    );
    return rows.map(eventOf);
  }

  async eventBounds(storyId: string): Promise<EventBounds | undefined> {
    const [row] = await this.#rows<{ first: number | null; last: number | null; last_at: number | null }>(
      'SELECT MIN(seq) AS first, MAX(seq) AS last, (SELECT at FROM events WHERE story_id = $1 ORDER BY seq DESC LIMIT 1) AS last_at FROM events WHERE story_id = $1',
      [storyId],
    );
    if (!row || row.first === null || row.last === null || row.last_at === null) return undefined;
    return { firstSeq: row.first, lastSeq: row.last, lastAt: new Date(row.last_at) };
  }

  async deleteEventsBefore(storyId: string, seq: number): Promise<void> {
    await this.#run('DELETE FROM events WHERE story_id = $1 AND seq < $2', [storyId, seq]);
  }

  /** Closes its connections and gives up the database's lock. */
  async close(): Promise<void> {
    if (this.#pool.ended || this.#pool.ending) return;
    await this.#pool.end();
    await this.#holder.end().catch(() => {});
  }
}
