import pg from 'pg';
import { POSTGRES_MIGRATIONS } from './postgres-migrations.js';
import {
  type DeliveryRow,
  RUN_COLUMNS,
  RUN_UPDATES,
  RunnerLostError,
  RunTakenError,
  STORY_COLUMNS,
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
import { withoutPassword } from '../url.js';
import { STORY_EVENT_LOCKS } from './cluster-store.js';
import { StoreError } from './store-error.js';

/** The schema version this agent-pool writes (the same number as SQLite's). */
export const POSTGRES_SCHEMA_VERSION = POSTGRES_MIGRATIONS.length;

/** Any number: the lock one server holds on its database for as long as it runs. */
const SERVER_LOCK = 4_747_000_002;

/** Any number: held by the transaction that brings the schema up to date. */
const MIGRATION_LOCK = 4_747_000_003;

/** The first key of each server name's lock in a cluster (the second is the name's hash). */
const RUNNER_LOCKS = 4747;

/** Whether the session lock with these keys was taken. */
async function tryLock(client: pg.Client, sql: string, values: unknown[]): Promise<boolean> {
  const { rows } = await client.query<{ ok: boolean }>(`SELECT ${sql} AS ok`, values);
  return rows[0]?.ok === true;
}

/**
 * Takes the locks a server holds for as long as it runs: the database's for itself alone, or,
 * in a cluster, the database's shared and its own name's.
 * @throws StoreError naming who holds what.
 */
async function takeLocks(client: pg.Client, url: string, runner: string | undefined): Promise<void> {
  const where = `the database at ${withoutPassword(url)}`;
  if (runner === undefined) {
    if (!(await tryLock(client, 'pg_try_advisory_lock($1)', [SERVER_LOCK]))) {
      throw new StoreError(
        `${where} is in use by another agent-pool server: stop it, set [store] url to another database, or give every server of it the same [bus] (a cluster)`,
      );
    }
    return;
  }
  if (!(await tryLock(client, 'pg_try_advisory_lock_shared($1)', [SERVER_LOCK]))) {
    throw new StoreError(`${where} is in use by an agent-pool server without a [bus]: stop it, or give it this cluster's [bus] too`);
  }
  if (!(await tryLock(client, 'pg_try_advisory_lock($1, hashtext($2))', [RUNNER_LOCKS, runner]))) {
    throw new StoreError(`a server named ${runner} already serves ${where}: give this one another name with --runner-name`);
  }
}

/** BIGINT columns hold milliseconds and seqs, well within a double's exact integers. */
const TYPES = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === pg.types.builtins.INT8 ? (value: string) => Number(value) : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
};

const DELIVERY_COLUMNS = 'id, hook, url, event, story_id, body, status, attempts, last_status, last_error, created_at, next_attempt_at, delivered_at';

/** `$1, $2, …, $n`. */
function placeholders(count: number, from = 1): string {
  return Array.from({ length: count }, (_, i) => `$${from + i}`).join(', ');
}

/** Postgres's TEXT holds no NUL character: one an agent printed is stored as U+FFFD. */
function storable(value: unknown): unknown {
  return typeof value === 'string' && value.includes('\0') ? value.replaceAll('\0', '\uFFFD') : value;
}

/** A batch of events as INSERTs, in pages within Postgres's 65,535 parameters. */
function eventInserts(events: readonly EventRecord[]): Array<{ text: string; values: unknown[] }> {
  const PAGE = 10_000;
  const statements = [];
  for (let start = 0; start < events.length; start += PAGE) {
    const page = events.slice(start, start + PAGE);
    statements.push({
      text: `INSERT INTO events (story_id, seq, run, at, type, payload) VALUES ${page.map((_, i) => `(${placeholders(6, i * 6 + 1)})`).join(', ')}`,
      values: page.flatMap((event) => [event.storyId, event.seq, event.run, event.at.getTime(), event.type, event.payload]),
    });
  }
  return statements;
}

/**
 * agent-pool's state in Postgres (`[store] url`), with the same semantics as the SQLite
 * {@link Store}: the same tables and records (src/store/rows.ts), and one server per
 * database (or the servers of a cluster, each under its own name). One connection does everything: it holds the server's session locks (taken
 * before anything else, as SQLite locks its file first), and every call runs on it in the
 * order it was made (the pool's writes rely on that, as on SQLite's), queued here, never
 * dropped. A run with its deliveries, and a batch of events, are each one transaction; two
 * writers of one story's seq collide on the events' primary key rather than leave a gap or
 * a duplicate. A connection that is lost is not replaced: the lock went with it, so another
 * server may have the database now; every call from then on fails, saying so.
 */
export class PostgresStore implements StateStore {
  readonly #client: pg.Client;
  /** The calls in order: each starts when the one before it has settled. */
  #queue: Promise<unknown> = Promise.resolve();
  /** Why the connection is gone, once it is. */
  #lost: Error | undefined;
  #closed = false;

  /** This server's name in a cluster: it writes events only for its own runs. */
  readonly #runner: string | undefined;
  /** This server's incarnation in the cluster's runners, once it has joined (see {@link fence}). */
  #incarnation: number | undefined;

  private constructor(client: pg.Client, url: string, runner: string | undefined) {
    this.#client = client;
    this.#runner = runner;
    const lost = (why: string): void => {
      if (this.#closed || this.#lost) return;
      this.#lost = new StoreError(
        `the connection to the database at ${withoutPassword(url)} was lost (${why}), and with it this server's hold on the database: restart agent-pool`,
      );
    };
    client.on('error', (error) => lost(error.message));
    client.on('end', () => lost('the connection ended'));
  }

  /**
   * Connects to the database at `url`, takes its lock and brings its schema up to date. A
   * server alone holds the database's lock for itself; the servers of a cluster (`runner`:
   * the server's name, with a bus) share it, and each holds its name's.
   * @throws StoreError when it cannot connect, another server holds it (or this name), or
   *   a newer agent-pool wrote the schema.
   */
  static async open(url: string, options: { runner?: string } = {}): Promise<PostgresStore> {
    // A server that freezes inside a transaction gives its locks up after a minute (the others' writes wait for them).
    const client = new pg.Client({ connectionString: url, types: TYPES, keepAlive: true, idle_in_transaction_session_timeout: 60_000 });
    // Until the store listens for it, an error of the connection is the open's to report.
    client.on('error', () => {});
    try {
      await client.connect();
      await takeLocks(client, url, options.runner);
      await client.query('BEGIN');
      // The servers of a cluster start together: one migrates at a time (IF NOT EXISTS alone
      // races in Postgres's catalog), and the others find the schema made.
      await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
      await client.query('CREATE TABLE IF NOT EXISTS agent_pool_schema (version INTEGER NOT NULL)');
      const { rows } = await client.query<{ version: number }>('SELECT version FROM agent_pool_schema');
      const version = rows[0]?.version ?? 0;
      if (version > POSTGRES_SCHEMA_VERSION) {
        throw new StoreError(
          `the database at ${withoutPassword(url)} was written by a newer agent-pool (schema version ${version}; this one knows up to ${POSTGRES_SCHEMA_VERSION}): ` +
            'upgrade agent-pool, or set [store] url to another database',
        );
      }
      for (let next = version; next < POSTGRES_SCHEMA_VERSION; next++) await client.query(POSTGRES_MIGRATIONS[next]!);
      if (rows.length === 0) await client.query('INSERT INTO agent_pool_schema (version) VALUES ($1)', [POSTGRES_SCHEMA_VERSION]);
      else await client.query('UPDATE agent_pool_schema SET version = $1', [POSTGRES_SCHEMA_VERSION]);
      await client.query('COMMIT');
      return new PostgresStore(client, url, options.runner);
    } catch (error) {
      await client.end().catch(() => {});
      if (error instanceof StoreError) throw error;
      throw new StoreError(
        `the database at ${withoutPassword(url)} cannot be used (${(error as Error).message}): check [store] url (or url_env) in agent-pool.toml, and that Postgres runs there`,
        { cause: error },
      );
    }
  }

  /** Runs `work` on the connection once every call made before it has settled. */
  #inTurn<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
    const turn = this.#queue.then(() => {
      if (this.#lost) throw this.#lost;
      if (this.#closed) throw new StoreError('the database is closed: agent-pool is shutting down');
      return work(this.#client);
    });
    this.#queue = turn.catch(() => {});
    return turn;
  }

  async #rows<T extends pg.QueryResultRow>(text: string, values: unknown[] = []): Promise<T[]> {
    return this.#inTurn(async (client) => (await client.query<T>(text, values.map(storable))).rows);
  }

  async #run(text: string, values: unknown[] = []): Promise<void> {
    await this.#rows(text, values);
  }

  /** Runs `statements` in one transaction, in turn. */
  async #transaction(statements: ReadonlyArray<{ text: string; values: unknown[] }>): Promise<void> {
    await this.#inTurn(async (client) => {
      await client.query('BEGIN');
      try {
        for (const { text, values } of statements) await client.query(text, values.map(storable));
        await client.query('COMMIT');
      } catch (error) {
        await client.query('ROLLBACK').catch(() => {});
        throw error;
      }
    });
  }

  async stories(): Promise<StoryRecord[]> {
    return (await this.#rows<StoryRow>(`SELECT ${STORY_COLUMNS} FROM stories ORDER BY position`)).map(storyOf);
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

  async story(storyId: string): Promise<{ story: StoryRecord; runs: RunRecord[] } | undefined> {
    const [row] = await this.#rows<StoryRow>(`SELECT ${STORY_COLUMNS} FROM stories WHERE story_id = $1`, [storyId]);
    if (!row) return undefined;
    const runs = await this.#rows<RunRow>(`SELECT ${RUN_COLUMNS} FROM runs WHERE story_id = $1 ORDER BY number`, [storyId]);
    return { story: storyOf(row), runs: runs.map(runOf) };
  }

  async clusterId(): Promise<string> {
    const [row] = await this.#rows<{ id: string }>('SELECT id FROM agent_pool_cluster');
    return row!.id;
  }

  async saveRun(run: RunRecord, deliveries: readonly DeliveryRecord[] = []): Promise<void> {
    const row = runRow(run);
    const columns = RUN_COLUMNS.split(', ');
    await this.#inTurn(async (client) => {
      await client.query('BEGIN');
      try {
        // The runner's row before the run's, as the server that declares it lost locks them.
        if (run.runner !== undefined && run.runner === this.#runner) await this.#assertNotLost(client, run);
        // Another server's run of the same story and number stays: this one gives way.
        const saved = await client.query(
          `INSERT INTO runs (${RUN_COLUMNS}) VALUES (${placeholders(columns.length)}) ON CONFLICT (story_id, number) DO UPDATE SET ${RUN_UPDATES} ` +
            'WHERE runs.runner IS NOT DISTINCT FROM excluded.runner',
          columns.map((column) => storable(row[column as keyof RunRow])),
        );
        if (saved.rowCount === 0) {
          const { rows } = await client.query<{ runner: string | null }>('SELECT runner FROM runs WHERE story_id = $1 AND number = $2', [run.storyId, run.number]);
          throw new RunTakenError(run, rows[0]?.runner ?? undefined);
        }
        for (const delivery of deliveries) {
          const values = Object.values(deliveryRow(delivery));
          await client.query(`INSERT INTO webhook_deliveries (${DELIVERY_COLUMNS}) VALUES (${placeholders(values.length)})`, values.map(storable));
        }
        await client.query('COMMIT');
      } catch (error) {
        await client.query('ROLLBACK').catch(() => {});
        throw error;
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
    if (this.#runner !== undefined) return this.#appendOwnEvents(events);
    await this.#transaction(eventInserts(events));
  }

  /**
   * In a cluster, a batch is stored only while its run is this server's (or a run of a
   * server without a name, which this one ended): two servers that started one story at
   * once never both write its seqs. The run's row is read with a share lock, so that it
   * cannot change hands before the batch commits.
   */
  async #appendOwnEvents(events: readonly EventRecord[]): Promise<void> {
    const { storyId, run } = events[0]!;
    await this.#inTurn(async (client) => {
      await client.query('BEGIN');
      try {
        await this.#assertNotLost(client, { storyId, number: run });
        // The story's events are numbered under its lock, which a run ended by another server takes too.
        await client.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [STORY_EVENT_LOCKS, storyId]);
        const { rows } = await client.query<{ runner: string | null }>('SELECT runner FROM runs WHERE story_id = $1 AND number = $2 FOR SHARE', [storyId, run]);
        const owner = rows[0]?.runner ?? undefined;
        if (owner !== undefined && owner !== this.#runner) throw new RunTakenError({ storyId, number: run }, owner);
        for (const { text, values } of eventInserts(events)) await client.query(text, values.map(storable));
        await client.query('COMMIT');
      } catch (error) {
        await client.query('ROLLBACK').catch(() => {});
        throw error;
      }
    });
  }

  /**
   * From now on, this server writes its runs and their events only while `incarnation` (what
   * it registered as, ClusterStore.register) is the cluster's: not once the others have
   * declared it lost (they ended its runs), nor after it left or registered again.
   */
  fence(incarnation: number): void {
    this.#incarnation = incarnation;
  }

  /**
   * A server the others declared lost writes nothing more of its runs (they were ended
   * there): its row is read with a key-share lock, which the declaration's update waits
   * for (and a heartbeat does not), so that the two never cross.
   * @throws RunnerLostError.
   */
  async #assertNotLost(client: pg.Client, run: Pick<RunRecord, 'storyId' | 'number'>): Promise<void> {
    if (this.#incarnation === undefined) return;
    const { rows } = await client.query(
      'SELECT 1 FROM runners WHERE name = $1 AND incarnation = $2 AND lost_at IS NULL AND left_at IS NULL FOR KEY SHARE',
      [this.#runner, this.#incarnation],
    );
    if (rows.length === 0) throw new RunnerLostError(run, this.#runner!);
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

  /** Closes the connection, once the calls before it have settled, and so gives up the database. */
  async close(): Promise<void> {
    if (this.#closed) return;
    await this.#queue;
    this.#closed = true;
    await this.#client.end().catch(() => {});
  }
}
