import { chmodSync, closeSync, mkdirSync, openSync, statSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { MIGRATIONS, SCHEMA_VERSION } from './migrations.js';
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
import {
  type DeliveryRow,
  orUndefined,
  RUN_COLUMNS,
  RUN_UPDATES,
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
import { StoreError } from './store-error.js';

function sqliteCode(error: unknown): string | undefined {
  return (error as { code?: string } | undefined)?.code;
}

/**
 * Makes the database file, if it is new, readable by its owner alone, and tightens it and
 * SQLite's files beside it (which SQLite creates with the database's mode) when an older
 * version left them readable by others: transcripts hold what agents read and printed.
 */
function keepPrivate(file: string): void {
  closeSync(openSync(file, 'a', 0o600));
  for (const each of [file, `${file}-wal`, `${file}-shm`, `${file}-journal`]) {
    try {
      if ((statSync(each).mode & 0o077) !== 0) chmodSync(each, 0o600);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
  }
}

/**
 * agent-pool's state in an embedded SQLite database (better-sqlite3, WAL): stories, runs and
 * events. Its methods return Promises, as the {@link StateStore} interface asks of every
 * database; SQLite's are done when they return (a write has run, or thrown into the
 * Promise), so their order is the order of the calls. It holds the database's lock for as long as it is open, so a second server on the
 * same project cannot use it; the operating system releases the lock if the server dies.
 * The store knows nothing of what the records mean.
 */
export class Store implements StateStore {
  readonly #db: Database.Database;
  readonly #statements;
  readonly #appendEvents: (events: readonly EventRecord[]) => void;
  readonly #saveRun: (run: RunRecord, deliveries: readonly DeliveryRecord[]) => void;

  private constructor(db: Database.Database) {
    this.#db = db;
    this.#statements = {
      stories: db.prepare<[], StoryRow>(`SELECT ${STORY_COLUMNS} FROM stories ORDER BY position`),
      addStory: db.prepare<[string, number, string | null, string | null, string | null]>(
        'INSERT OR IGNORE INTO stories (story_id, position, created_at, agent, title, started_by) VALUES (?, (SELECT COALESCE(MAX(position), 0) + 1 FROM stories), ?, ?, ?, ?)',
      ),
      setStoryAgent: db.prepare<[string | null, string]>('UPDATE stories SET agent = ? WHERE story_id = ?'),
      setStoryTitle: db.prepare<[string | null, string]>('UPDATE stories SET title = ? WHERE story_id = ?'),
      saveLanding: db.prepare<Omit<StoryRow, 'created_at' | 'agent' | 'title' | 'started_by'>>(
        `UPDATE stories SET base_branch = @base_branch, landed_commit = @landed_commit, landed_as = @landed_as, merged_at = @merged_at, archived = @archived, branch_deleted = @branch_deleted,
           pushed_commit = @pushed_commit, pr_url = @pr_url, pr_number = @pr_number, pr_state = @pr_state WHERE story_id = @story_id`,
      ),
      runs: db.prepare<[], RunRow>('SELECT * FROM runs ORDER BY story_id, number'),
      saveRun: db.prepare<RunRow>(
        `INSERT INTO runs (${RUN_COLUMNS}) VALUES (${RUN_COLUMNS.split(', ').map((column) => `@${column}`).join(', ')})
         ON CONFLICT (story_id, number) DO UPDATE SET ${RUN_UPDATES} WHERE runs.runner IS excluded.runner`,
      ),
      runOwner: db.prepare<[string, number], { runner: string | null }>('SELECT runner FROM runs WHERE story_id = ? AND number = ?'),
      story: db.prepare<[string], StoryRow>(`SELECT ${STORY_COLUMNS} FROM stories WHERE story_id = ?`),
      storyRuns: db.prepare<[string], RunRow>(`SELECT ${RUN_COLUMNS} FROM runs WHERE story_id = ? ORDER BY number`),
      clusterId: db.prepare<[], { id: string }>('SELECT id FROM agent_pool_cluster'),
      appendEvent: db.prepare<[string, number, number, number, string, string]>(
        'INSERT INTO events (story_id, seq, run, at, type, payload) VALUES (?, ?, ?, ?, ?, ?)',
      ),
      readEvents: db.prepare<[string, number, number], EventRow>(
        'SELECT * FROM events WHERE story_id = ? AND seq >= ? ORDER BY seq LIMIT ?',
      ),
      eventBounds: db.prepare<[{ story: string }], { first: number | null; last: number | null; last_at: number | null }>(
        'SELECT MIN(seq) AS first, MAX(seq) AS last, ' +
          '(SELECT at FROM events WHERE story_id = @story ORDER BY seq DESC LIMIT 1) AS last_at FROM events WHERE story_id = @story',
      ),
      deleteEventsBefore: db.prepare<[string, number]>('DELETE FROM events WHERE story_id = ? AND seq < ?'),
      addDelivery: db.prepare<DeliveryRow>(
        `INSERT INTO webhook_deliveries (id, hook, url, event, story_id, body, status, attempts, last_status, last_error, created_at, next_attempt_at, delivered_at)
         VALUES (@id, @hook, @url, @event, @story_id, @body, @status, @attempts, @last_status, @last_error, @created_at, @next_attempt_at, @delivered_at)`,
      ),
      updateDelivery: db.prepare<DeliveryRow>(
        `UPDATE webhook_deliveries SET url = @url, status = @status, attempts = @attempts, last_status = @last_status, last_error = @last_error,
           next_attempt_at = @next_attempt_at, delivered_at = @delivered_at WHERE id = @id`,
      ),
      pendingDeliveries: db.prepare<[], DeliveryRow>("SELECT * FROM webhook_deliveries WHERE status = 'PENDING' ORDER BY position"),
      deliveries: db.prepare<[number], DeliveryRow>('SELECT * FROM webhook_deliveries ORDER BY position DESC LIMIT ?'),
      deliveriesWithStatus: db.prepare<[string, number], DeliveryRow>(
        'SELECT * FROM webhook_deliveries WHERE status = ? ORDER BY position DESC LIMIT ?',
      ),
      services: db.prepare<[], ServiceRow>('SELECT * FROM services ORDER BY story_id, name'),
      saveService: db.prepare<ServiceRow>(
        `INSERT INTO services (story_id, name, port, status, pid, marker, error) VALUES (@story_id, @name, @port, @status, @pid, @marker, @error)
         ON CONFLICT (story_id, name) DO UPDATE SET port = excluded.port, status = excluded.status, pid = excluded.pid, marker = excluded.marker, error = excluded.error`,
      ),
      deleteServices: db.prepare<[string]>('DELETE FROM services WHERE story_id = ?'),
      deleteDeliveriesBefore: db.prepare<[number]>(
        "DELETE FROM webhook_deliveries WHERE status != 'PENDING' AND COALESCE(delivered_at, next_attempt_at) < ?",
      ),
    };
    const appendEvent = this.#statements.appendEvent;
    this.#appendEvents = db.transaction((events: readonly EventRecord[]) => {
      for (const event of events) {
        appendEvent.run(event.storyId, event.seq, event.run, event.at.getTime(), event.type, event.payload);
      }
    });
    const { saveRun, runOwner, addDelivery } = this.#statements;
    this.#saveRun = db.transaction((run: RunRecord, deliveries: readonly DeliveryRecord[]) => {
      if (saveRun.run(runRow(run)).changes === 0) throw new RunTakenError(run, orUndefined(runOwner.get(run.storyId, run.number)?.runner ?? null));
      for (const delivery of deliveries) addDelivery.run(deliveryRow(delivery));
    });
  }

  /**
   * Opens (or creates) the database at `file` (mode 0600: it holds every transcript), takes its lock and brings its schema up to
   * date.
   * @throws StoreError when another process holds it, it cannot be read, or a newer
   *   agent-pool wrote it.
   */
  static open(file: string): Store {
    let db: Database.Database | undefined;
    try {
      mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
      keepPrivate(file);
      db = new Database(file, { timeout: 200 });
      // The lock is taken by the first write and held until close (or the process ends).
      db.pragma('locking_mode = EXCLUSIVE');
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.exec('BEGIN EXCLUSIVE; COMMIT;');
      const version = db.pragma('user_version', { simple: true }) as number;
      if (version > SCHEMA_VERSION) {
        throw new StoreError(
          `${file} was written by a newer agent-pool (schema version ${version}; this one knows up to ${SCHEMA_VERSION}): ` +
            'upgrade agent-pool, or set [store] path in agent-pool.toml to another file',
        );
      }
      for (let next = version; next < SCHEMA_VERSION; next++) {
        db.transaction(() => {
          db!.exec(MIGRATIONS[next]!);
          db!.pragma(`user_version = ${next + 1}`);
        })();
      }
      return new Store(db);
    } catch (error) {
      db?.close();
      if (error instanceof StoreError) throw error;
      const code = sqliteCode(error);
      if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED') {
        throw new StoreError(
          `${file} is in use by another process (another agent-pool server on this project?): stop it, or set [store] path in agent-pool.toml to another file`,
          { cause: error },
        );
      }
      throw new StoreError(
        `${file} cannot be used as agent-pool's database (${(error as Error).message}): move it away to start with an empty history, or set [store] path in agent-pool.toml to another file`,
        { cause: error },
      );
    }
  }

  /** Every story, in the order they were first started. */
  async stories(): Promise<StoryRecord[]> {
    return this.#statements.stories.all().map(storyOf);
  }

  /** Records what a story knows of landing its work, all of it. */
  async saveLanding(storyId: string, landing: LandingRecord): Promise<void> {
    this.#statements.saveLanding.run(landingRow(storyId, landing));
  }

  /** Records a story (once), with its agent profile, title, and the story whose agent started it. */
  async addStory(storyId: string, createdAt: Date, agent?: string, title?: string, startedBy?: string): Promise<void> {
    this.#statements.addStory.run(storyId, createdAt.getTime(), agent ?? null, title ?? null, startedBy ?? null);
  }

  /** Records a story's new title (undefined: none). */
  async setStoryTitle(storyId: string, title: string | undefined): Promise<void> {
    this.#statements.setStoryTitle.run(title ?? null, storyId);
  }

  /** Records which agent profile a story uses from now on. */
  async setStoryAgent(storyId: string, agent: string): Promise<void> {
    this.#statements.setStoryAgent.run(agent, storyId);
  }

  /** Every run, by story and number. */
  async runs(): Promise<RunRecord[]> {
    return this.#statements.runs.all().map(runOf);
  }

  /** One story with its runs by number, as stored now. */
  async story(storyId: string): Promise<{ story: StoryRecord; runs: RunRecord[] } | undefined> {
    const row = this.#statements.story.get(storyId);
    return row && { story: storyOf(row), runs: this.#statements.storyRuns.all(storyId).map(runOf) };
  }

  /** The id made with the schema (migration 8). */
  async clusterId(): Promise<string> {
    return this.#statements.clusterId.get()!.id;
  }

  /** Writes a run's current state, and the deliveries that report the change, in one transaction (see {@link RunTakenError}). */
  async saveRun(run: RunRecord, deliveries: readonly DeliveryRecord[] = []): Promise<void> {
    this.#saveRun(run, deliveries);
  }

  /** The deliveries still PENDING, in the order they were written. */
  async pendingDeliveries(): Promise<DeliveryRecord[]> {
    return this.#statements.pendingDeliveries.all().map(deliveryOf);
  }

  /** Writes what an attempt made of a delivery (and the receiver's URL, redacted, as it found it). */
  async updateDelivery(delivery: DeliveryRecord): Promise<void> {
    this.#statements.updateDelivery.run(deliveryRow(delivery));
  }

  /** The newest `limit` deliveries (only those with `status`, when given), newest first. */
  async deliveries(limit: number, status?: DeliveryStatus): Promise<DeliveryRecord[]> {
    const rows = status === undefined ? this.#statements.deliveries.all(limit) : this.#statements.deliveriesWithStatus.all(status, limit);
    return rows.map(deliveryOf);
  }

  /** Drops the deliveries made or given up before `date`. */
  async deleteDeliveriesBefore(date: Date): Promise<void> {
    this.#statements.deleteDeliveriesBefore.run(date.getTime());
  }

  /** Every story's services: their ports and last states. */
  async services(): Promise<ServiceRecord[]> {
    return this.#statements.services.all().map(serviceOf);
  }

  /** Writes a service's port and state; a port another story's service has is refused (UNIQUE). */
  async saveService(service: ServiceRecord): Promise<void> {
    this.#statements.saveService.run(serviceRow(service));
  }

  /** Drops a story's services: their ports are free again. */
  async deleteServices(storyId: string): Promise<void> {
    this.#statements.deleteServices.run(storyId);
  }

  /** Stores a batch of events in one transaction. */
  async appendEvents(events: readonly EventRecord[]): Promise<void> {
    this.#appendEvents(events);
  }

  /** Up to `limit` events of a story with `seq >= fromSeq`, in order. */
  async readEvents(storyId: string, fromSeq: number, limit: number): Promise<EventRecord[]> {
    return this.#statements.readEvents.all(storyId, fromSeq, limit).map(eventOf);
  }

  /** A story's stored events' range (undefined when it has none). */
  async eventBounds(storyId: string): Promise<EventBounds | undefined> {
    const row = this.#statements.eventBounds.get({ story: storyId });
    if (!row || row.first === null || row.last === null || row.last_at === null) return undefined;
    return { firstSeq: row.first, lastSeq: row.last, lastAt: new Date(row.last_at) };
  }

  /** Drops a story's events older than `seq`. */
  async deleteEventsBefore(storyId: string, seq: number): Promise<void> {
    this.#statements.deleteEventsBefore.run(storyId, seq);
  }

  /** Closes the database and gives up its lock. */
  async close(): Promise<void> {
    if (this.#db.open) this.#db.close();
  }
}
