import pg from 'pg';
import { withoutPassword } from '../url.js';
import { StoreError } from './store-error.js';

/** A server's part in a cluster: `api` runs no agents; `runner` and `all` claim queued runs. */
export type ServerRole = 'all' | 'api' | 'runner';

/** A run that waits in the cluster's queue, as a runner claimed it. */
export interface ClaimedRun {
  storyId: string;
  number: number;
  /** The agent's session a continueAgent resumes. */
  resumeSessionId: string | undefined;
}

/** A run ended in the database by another server than its own (its runner was lost, or it never left the queue). */
export interface EndedRun {
  storyId: string;
  number: number;
}

/** What declaring a silent runner lost did. */
export interface LostRunner {
  name: string;
  /** Its runs that were PENDING or RUNNING, now FAILED. */
  ended: EndedRun[];
  /** The runs it had claimed and not started: back in the queue. */
  requeued: EndedRun[];
}

/** The error of every run of a runner declared lost. */
export function lostRunnerError(name: string): string {
  return `runner ${name} lost`;
}

/** Of a `runners` row, with `$1` its name and `$2` an incarnation: that incarnation is the cluster's now. */
const CURRENT_RUNNER = 'name = $1 AND incarnation = $2 AND lost_at IS NULL AND left_at IS NULL';

/** The first key of each story's lock, held by a transaction that numbers its events (the second is the story id's hash). */
export const STORY_EVENT_LOCKS = 4748;

/** Of a `run_queue q` row: its run has not begun. */
const STILL_PENDING = "EXISTS (SELECT 1 FROM runs r WHERE r.story_id = q.story_id AND r.number = q.number AND r.status = 'PENDING')";

/**
 * The longest a statement of the cluster's coordination runs, or waits for a lock, before
 * it fails (and a heartbeat that fails is tried again at the next beat).
 */
const CALL_TIMEOUT_MS = 5000;

/** The database's clock, in milliseconds: every server's heartbeat is measured by one clock. */
const NOW = '(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT';

/** BIGINT columns hold milliseconds, well within a double's exact integers. */
const TYPES = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === pg.types.builtins.INT8 ? (value: string) => Number(value) : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
};

/**
 * The cluster's coordination in Postgres, on a connection of its own (so that a server's
 * heartbeat never waits behind its flood of events): the runners and their heartbeats,
 * the queue of runs that wait for a runner (claimed with `FOR UPDATE SKIP LOCKED`, first
 * come first served), the runs it ends for a runner that is lost or for a stop that came
 * before any runner took the run, and which server sends each webhook delivery. A lost
 * connection is made again at the next call. Every transaction locks rows in one order
 * (a runner's, then the queue's, then a run's), so that two never wait for each other.
 */
export class ClusterStore {
  readonly #url: string;
  #client: pg.Client | undefined;
  #connecting: Promise<pg.Client> | undefined;
  /** The calls in order, one at a time on the connection. */
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;

  constructor(url: string) {
    this.#url = url;
  }

  /** Connects (again, after a loss). */
  async #connection(): Promise<pg.Client> {
    if (this.#client) return this.#client;
    this.#connecting ??= (async () => {
      // Nothing waits for ever: a lock held by a server that froze, or a connection that died
      // half-open, fails the call, and the connection is made again.
      const client = new pg.Client({
        connectionString: this.#url,
        types: TYPES,
        keepAlive: true,
        lock_timeout: CALL_TIMEOUT_MS,
        statement_timeout: CALL_TIMEOUT_MS,
        query_timeout: CALL_TIMEOUT_MS * 2,
        idle_in_transaction_session_timeout: CALL_TIMEOUT_MS * 2,
      });
      const lost = (): void => {
        if (this.#client === client) this.#client = undefined;
        void client.end().catch(() => {});
      };
      client.on('error', lost);
      client.on('end', lost);
      try {
        await client.connect();
      } catch (error) {
        lost();
        throw new StoreError(`the database at ${withoutPassword(this.#url)} cannot be reached (${(error as Error).message})`, { cause: error });
      }
      this.#client = client;
      return client;
    })().finally(() => {
      this.#connecting = undefined;
    });
    return this.#connecting;
  }

  /** Runs `work` in one transaction, after every call made before it. */
  #transaction<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
    const turn = this.#queue.then(async () => {
      if (this.#closed) throw new StoreError('the database is closed: agent-pool is shutting down');
      const client = await this.#connection();
      await client.query('BEGIN');
      try {
        const result = await work(client);
        await client.query('COMMIT');
        return result;
      } catch (error) {
        // An error of Postgres's own has its SQLSTATE; any other (a timeout here, a lost connection) leaves the connection in doubt.
        if ((error as { code?: unknown }).code === undefined) this.#drop(client);
        else await client.query('ROLLBACK').catch(() => this.#drop(client));
        throw error;
      }
    });
    this.#queue = turn.catch(() => {});
    return turn;
  }

  /** Gives up a connection in doubt; the next call makes a new one. */
  #drop(client: pg.Client): void {
    if (this.#client === client) this.#client = undefined;
    void client.end().catch(() => {});
  }

  /**
   * Records this server as one of the cluster's, alive now, as a new incarnation of its
   * name: writes of an earlier one (a server that was declared lost, or that left) are
   * refused from now on (see PostgresStore.fence).
   * @returns its incarnation, and whether another server had declared it lost while it was away (its runs ended there).
   */
  register(name: string, role: ServerRole): Promise<{ incarnation: number; wasLost: boolean }> {
    return this.#transaction(async (client) => {
      const { rows } = await client.query<{ lost_at: number | null; incarnation: number }>('SELECT lost_at, incarnation FROM runners WHERE name = $1 FOR UPDATE', [name]);
      const incarnation = (rows[0]?.incarnation ?? 0) + 1;
      await client.query(
        `INSERT INTO runners (name, role, incarnation, started_at, heartbeat_at, lost_at, left_at) VALUES ($1, $2, $3, ${NOW}, ${NOW}, NULL, NULL) ` +
          'ON CONFLICT (name) DO UPDATE SET role = excluded.role, incarnation = excluded.incarnation, started_at = excluded.started_at, ' +
          'heartbeat_at = excluded.heartbeat_at, lost_at = NULL, left_at = NULL',
        [name, role, incarnation],
      );
      return { incarnation, wasLost: rows[0]?.lost_at != null };
    });
  }

  /**
   * Renews this server's heartbeat.
   * @returns false when this incarnation is no longer the cluster's: declared lost meanwhile
   *   (its runs are ended there: it must stop them), or replaced.
   */
  heartbeat(name: string, incarnation: number): Promise<boolean> {
    return this.#transaction(async (client) => {
      const { rowCount } = await client.query(`UPDATE runners SET heartbeat_at = ${NOW} WHERE ${CURRENT_RUNNER}`, [name, incarnation]);
      return rowCount === 1;
    });
  }

  /** Leaves the cluster (a graceful shutdown): no longer watched, and no write of this incarnation is taken from now on. */
  leave(name: string, incarnation: number): Promise<void> {
    return this.#transaction(async (client) => {
      await client.query(`UPDATE runners SET left_at = ${NOW} WHERE ${CURRENT_RUNNER}`, [name, incarnation]);
    });
  }

  /**
   * Declares lost every server whose heartbeat is older than `lostAfterMs` (by the
   * database's clock), each by one server only: its runs that were PENDING or RUNNING end
   * FAILED ("runner NAME lost", with their events), and the runs it had claimed but not
   * started go back to the queue.
   */
  declareLost(lostAfterMs: number): Promise<LostRunner[]> {
    return this.#transaction(async (client) => {
      const { rows: silent } = await client.query<{ name: string }>(
        `SELECT name FROM runners WHERE lost_at IS NULL AND left_at IS NULL AND heartbeat_at < ${NOW} - $1 ORDER BY name FOR UPDATE SKIP LOCKED`,
        [lostAfterMs],
      );
      const lost: LostRunner[] = [];
      for (const { name } of silent) {
        await client.query(`UPDATE runners SET lost_at = ${NOW} WHERE name = $1`, [name]);
        // Only a claimed run that never began goes back; one that began (its queue row not yet
        // gone) ends with the others below.
        const { rows: requeued } = await client.query<{ story_id: string; number: number }>(
          `UPDATE run_queue q SET claimed_by = NULL, claimed_at = NULL WHERE claimed_by = $1 AND ${STILL_PENDING} RETURNING story_id, number`,
          [name],
        );
        for (const run of requeued) {
          await client.query('UPDATE runs SET runner = NULL WHERE story_id = $1 AND number = $2 AND runner = $3', [run.story_id, run.number, name]);
        }
        await client.query('DELETE FROM run_queue WHERE claimed_by = $1', [name]);
        const { rows: active } = await client.query<{ story_id: string; number: number }>(
          "SELECT story_id, number FROM runs WHERE runner = $1 AND status IN ('PENDING', 'RUNNING') ORDER BY story_id, number FOR UPDATE",
          [name],
        );
        for (const run of active) await endRun(client, run.story_id, run.number, 'FAILED', lostRunnerError(name));
        lost.push({
          name,
          ended: active.map((run) => ({ storyId: run.story_id, number: run.number })),
          requeued: requeued.map((run) => ({ storyId: run.story_id, number: run.number })),
        });
      }
      return lost;
    });
  }

  /**
   * Puts a run (its record stored PENDING, without a runner) in the queue, behind those
   * that wait; one no longer PENDING is not. With `affinity` (the runner that ran the story
   * before, where its worktree is), only that runner claims it while it is the cluster's;
   * once it is lost or has left, any runner does (and fetches the story's pushed work).
   */
  enqueue(storyId: string, number: number, resumeSessionId: string | undefined, affinity?: string): Promise<void> {
    return this.#transaction(async (client) => {
      // A run stopped before it got here is not queued.
      await client.query(
        `INSERT INTO run_queue (story_id, number, queued_at, resume_session_id, affinity) SELECT $1, $2, ${NOW}, $3, $4 ` +
          "WHERE EXISTS (SELECT 1 FROM runs WHERE story_id = $1 AND number = $2 AND status = 'PENDING' AND runner IS NULL) " +
          // Two servers that queued one story's run at the same moment: it is queued once.
          'ON CONFLICT (story_id, number) DO NOTHING',
        [storyId, number, resumeSessionId ?? null, affinity ?? null],
      );
    });
  }

  /**
   * Claims up to `limit` queued runs for runner `name`, oldest first, skipping those another
   * runner is claiming at this moment; each run's record names the runner from now on.
   * Nothing is claimed by an incarnation that is no longer the cluster's. The runs it
   * claimed before and has not begun come first (a claim whose answer was lost with the
   * connection): the caller skips those it has.
   */
  claim(name: string, incarnation: number, limit: number): Promise<ClaimedRun[]> {
    return this.#transaction(async (client) => {
      const { rows: me } = await client.query(`SELECT 1 FROM runners WHERE ${CURRENT_RUNNER} FOR KEY SHARE`, [name, incarnation]);
      if (me.length === 0) return [];
      const { rows: own } = await client.query<{ story_id: string; number: number; resume_session_id: string | null }>(
        `SELECT story_id, number, resume_session_id FROM run_queue q WHERE claimed_by = $1 AND ${STILL_PENDING} ORDER BY queued_at, story_id, number`,
        [name],
      );
      const claimed: ClaimedRun[] = own.map((row) => ({ storyId: row.story_id, number: row.number, resumeSessionId: row.resume_session_id ?? undefined }));
      if (limit <= 0) return claimed;
      const { rows } = await client.query<{ story_id: string; number: number; resume_session_id: string | null }>(
        'SELECT story_id, number, resume_session_id FROM run_queue q WHERE claimed_by IS NULL AND (affinity IS NULL OR affinity = $2 OR NOT EXISTS ' +
          '(SELECT 1 FROM runners WHERE runners.name = q.affinity AND lost_at IS NULL AND left_at IS NULL)) ' +
          'ORDER BY queued_at, story_id, number LIMIT $1 FOR UPDATE SKIP LOCKED',
        [limit, name],
      );
      for (const row of rows) {
        await client.query(`UPDATE run_queue SET claimed_by = $1, claimed_at = ${NOW} WHERE story_id = $2 AND number = $3`, [name, row.story_id, row.number]);
        const taken = await client.query("UPDATE runs SET runner = $1 WHERE story_id = $2 AND number = $3 AND runner IS NULL AND status = 'PENDING'", [
          name,
          row.story_id,
          row.number,
        ]);
        // A queued run whose record is gone, ended or another's is not a run to start: it leaves the queue.
        if (taken.rowCount !== 1) {
          await client.query('DELETE FROM run_queue WHERE story_id = $1 AND number = $2', [row.story_id, row.number]);
          continue;
        }
        claimed.push({ storyId: row.story_id, number: row.number, resumeSessionId: row.resume_session_id ?? undefined });
      }
      return claimed;
    });
  }

  /** A run runner `name` claimed has started (or ended before it could): it leaves the queue (a run no longer its own stays). */
  dequeue(name: string, storyId: string, number: number): Promise<void> {
    return this.#transaction(async (client) => {
      await client.query('DELETE FROM run_queue WHERE story_id = $1 AND number = $2 AND claimed_by = $3', [storyId, number, name]);
    });
  }

  /** Gives back a run this runner claimed and did not start (it shuts down): the next runner takes it. */
  release(name: string, storyId: string, number: number): Promise<void> {
    return this.#transaction(async (client) => {
      const { rowCount } = await client.query('UPDATE run_queue SET claimed_by = NULL, claimed_at = NULL WHERE story_id = $1 AND number = $2 AND claimed_by = $3', [
        storyId,
        number,
        name,
      ]);
      if (rowCount === 1) await client.query('UPDATE runs SET runner = NULL WHERE story_id = $1 AND number = $2 AND runner = $3', [storyId, number, name]);
    });
  }

  /**
   * Gives back every run runner `name` claimed and did not start (it stopped meanwhile): the
   * next runner takes them.
   * @returns those runs, with the markers of their processes, which may have begun (setup).
   */
  releaseAll(name: string): Promise<Array<EndedRun & { marker: string }>> {
    return this.#transaction(async (client) => {
      const { rows } = await client.query<{ story_id: string; number: number }>(
        `UPDATE run_queue q SET claimed_by = NULL, claimed_at = NULL WHERE claimed_by = $1 AND ${STILL_PENDING} RETURNING story_id, number`,
        [name],
      );
      // One that began is no longer the queue's: the server's recovery ends it as its own.
      await client.query('DELETE FROM run_queue WHERE claimed_by = $1', [name]);
      const released: Array<EndedRun & { marker: string }> = [];
      for (const run of rows) {
        const { rows: markers } = await client.query<{ marker: string }>(
          'UPDATE runs SET runner = NULL, pid = NULL WHERE story_id = $1 AND number = $2 AND runner = $3 RETURNING marker',
          [run.story_id, run.number, name],
        );
        for (const { marker } of markers) released.push({ storyId: run.story_id, number: run.number, marker });
      }
      return released;
    });
  }

  /**
   * Stops a run that no runner has claimed (it waits in the queue, or never got there): it
   * leaves the queue and ends STOPPED (FAILED with `error`, when given).
   * @returns false when a runner has claimed it (the stop is that runner's to do), or its
   *   record is not stored yet.
   */
  cancel(storyId: string, number: number, error?: string): Promise<boolean> {
    return this.#transaction(async (client) => {
      // The queue's row before the run's, as a claim locks them.
      const { rows: queued } = await client.query<{ claimed_by: string | null }>('SELECT claimed_by FROM run_queue WHERE story_id = $1 AND number = $2 FOR UPDATE', [
        storyId,
        number,
      ]);
      if (queued[0]?.claimed_by != null) return false;
      const { rows: run } = await client.query<{ status: string; runner: string | null }>('SELECT status, runner FROM runs WHERE story_id = $1 AND number = $2 FOR UPDATE', [
        storyId,
        number,
      ]);
      // Not stored (yet), or claimed: not this call's to stop.
      if (run[0] === undefined || run[0].runner !== null) return false;
      await client.query('DELETE FROM run_queue WHERE story_id = $1 AND number = $2', [storyId, number]);
      if (run[0].status === 'PENDING' || run[0].status === 'RUNNING') await endRun(client, storyId, number, error === undefined ? 'STOPPED' : 'FAILED', error);
      return true;
    });
  }

  /**
   * Ends FAILED, with `error`, a run runner `name` claimed and could not start (it may have
   * left the queue already).
   * @returns false when the run is no longer its own (it was declared lost meanwhile, and the run went back to the queue).
   */
  fail(name: string, storyId: string, number: number, error: string): Promise<boolean> {
    return this.#transaction(async (client) => {
      await client.query('DELETE FROM run_queue WHERE story_id = $1 AND number = $2 AND claimed_by = $3', [storyId, number, name]);
      const { rows } = await client.query<{ status: string }>('SELECT status FROM runs WHERE story_id = $1 AND number = $2 AND runner = $3 FOR UPDATE', [
        storyId,
        number,
        name,
      ]);
      if (rows[0]?.status !== 'PENDING') return false;
      await endRun(client, storyId, number, 'FAILED', error);
      return true;
    });
  }

  /** The runs waiting in the queue, claimed or not, and not begun (a server's recovery leaves them be). */
  async queued(): Promise<EndedRun[]> {
    return this.#transaction(async (client) => {
      const { rows } = await client.query<{ story_id: string; number: number }>(`SELECT story_id, number FROM run_queue q WHERE ${STILL_PENDING} ORDER BY queued_at`);
      return rows.map((row) => ({ storyId: row.story_id, number: row.number }));
    });
  }

  /** The cluster's servers as the database knows them, with how long each has been silent. */
  async runners(): Promise<Array<{ name: string; role: ServerRole; lost: boolean; left: boolean; silentMs: number }>> {
    return this.#transaction(async (client) => {
      const { rows } = await client.query<{ name: string; role: ServerRole; lost_at: number | null; left_at: number | null; silent_ms: number }>(
        `SELECT name, role, lost_at, left_at, ${NOW} - heartbeat_at AS silent_ms FROM runners ORDER BY name`,
      );
      return rows.map((row) => ({ name: row.name, role: row.role, lost: row.lost_at !== null, left: row.left_at !== null, silentMs: row.silent_ms }));
    });
  }

  /**
   * Takes a webhook delivery for this server to send, for `leaseMs`: one PENDING that no
   * other server holds (or whose hold ran out, its server gone).
   * @returns whether this server is to send it.
   */
  claimDelivery(id: string, name: string, leaseMs: number): Promise<boolean> {
    return this.#transaction(async (client) => {
      const { rowCount } = await client.query(
        `UPDATE webhook_deliveries SET claimed_by = $2, claimed_until = ${NOW} + $3 ` +
          `WHERE id = $1 AND status = 'PENDING' AND (claimed_by IS NULL OR claimed_by = $2 OR claimed_until < ${NOW})`,
        [id, name, leaseMs],
      );
      return rowCount === 1;
    });
  }

  async close(): Promise<void> {
    await this.#queue;
    this.#closed = true;
    const client = this.#client ?? (await this.#connecting?.catch(() => undefined));
    this.#client = undefined;
    await client?.end().catch(() => {});
  }
}

/**
 * Ends a run in the database, as its own server would have: its status, its error, and
 * the events that say so, numbered after the story's newest, under the story's lock that
 * every server's batch of its events takes too (its run's row is locked by the caller, so
 * that no one else ends it at once).
 */
async function endRun(client: pg.Client, storyId: string, number: number, status: 'FAILED' | 'STOPPED', error: string | undefined): Promise<void> {
  await client.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [STORY_EVENT_LOCKS, storyId]);
  const { rows } = await client.query<{ last: number | null }>('SELECT MAX(seq) AS last FROM events WHERE story_id = $1', [storyId]);
  const first = (rows[0]?.last ?? 0) + 1;
  const payloads: Array<[string, string]> = [['status', JSON.stringify({ status })]];
  if (error !== undefined) payloads.push(['error', JSON.stringify({ message: error })]);
  const at = Date.now();
  for (const [index, [type, payload]] of payloads.entries()) {
    await client.query('INSERT INTO events (story_id, seq, run, at, type, payload) VALUES ($1, $2, $3, $4, $5, $6)', [storyId, first + index, number, at, type, payload]);
  }
  await client.query(
    'UPDATE runs SET status = $3, error = $4, pid = NULL, finished_at = $5, first_seq = COALESCE(first_seq, $6), last_seq = $7 WHERE story_id = $1 AND number = $2',
    [storyId, number, status, error ?? null, at, first, first + payloads.length - 1],
  );
}
