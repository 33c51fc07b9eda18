/**
 * The database's schema, as numbered migrations. `PRAGMA user_version` holds the number of
 * the last one applied; each runs once, in order, in its own transaction. Later issues add
 * tables and columns by appending here, never by editing an applied migration.
 */
export const MIGRATIONS: readonly string[] = [
  // 1: stories, their runs, and their events.
  `
  CREATE TABLE stories (
    story_id   TEXT PRIMARY KEY,
    position   INTEGER NOT NULL,
    created_at INTEGER NOT NULL
  );
  CREATE TABLE runs (
    story_id      TEXT NOT NULL REFERENCES stories (story_id),
    number        INTEGER NOT NULL,
    prompt        TEXT,
    status        TEXT NOT NULL,
    session_id    TEXT,
    pid           INTEGER,
    exit_code     INTEGER,
    error         TEXT,
    cost_usd      REAL,
    started_at    INTEGER NOT NULL,
    finished_at   INTEGER,
    first_seq     INTEGER,
    last_seq      INTEGER,
    worktree_path TEXT,
    branch        TEXT,
    marker        TEXT NOT NULL,
    PRIMARY KEY (story_id, number)
  ) WITHOUT ROWID;
  CREATE TABLE events (
    story_id TEXT NOT NULL,
    seq      INTEGER NOT NULL,
    run      INTEGER NOT NULL,
    at       INTEGER NOT NULL,
    type     TEXT NOT NULL,
    payload  TEXT NOT NULL,
    PRIMARY KEY (story_id, seq)
  ) WITHOUT ROWID;
  `,
  // 2: agent profiles (a story keeps its own), and token usage per run.
  `
  ALTER TABLE stories ADD COLUMN agent TEXT;
  ALTER TABLE runs ADD COLUMN agent TEXT NOT NULL DEFAULT 'default';
  ALTER TABLE runs ADD COLUMN input_tokens INTEGER;
  ALTER TABLE runs ADD COLUMN output_tokens INTEGER;
  ALTER TABLE runs ADD COLUMN cached_input_tokens INTEGER;
  `,
  // 3: a story's title, and the prompt each run's agent got (the configured one rendered;
  // a given prompt is the agent's as it is, older runs' too).
  `
  ALTER TABLE stories ADD COLUMN title TEXT;
  ALTER TABLE runs ADD COLUMN rendered_prompt TEXT;
  UPDATE runs SET rendered_prompt = prompt WHERE prompt IS NOT NULL;
  `,
  // 4: landing a story's work: its target branch, its last landing, its pull request, and
  // whether it is archived.
  `
  ALTER TABLE stories ADD COLUMN base_branch TEXT;
  ALTER TABLE stories ADD COLUMN landed_commit TEXT;
  ALTER TABLE stories ADD COLUMN landed_as TEXT;
  ALTER TABLE stories ADD COLUMN merged_at INTEGER;
  ALTER TABLE stories ADD COLUMN archived INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE stories ADD COLUMN branch_deleted INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE stories ADD COLUMN pushed_commit TEXT;
  ALTER TABLE stories ADD COLUMN pr_url TEXT;
  ALTER TABLE stories ADD COLUMN pr_number INTEGER;
  ALTER TABLE stories ADD COLUMN pr_state TEXT;
  `,
  // 5: the outbox of webhook deliveries, in the order they were written.
  `
  CREATE TABLE webhook_deliveries (
    position        INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    hook            TEXT NOT NULL,
    url             TEXT NOT NULL,
    event           TEXT NOT NULL,
    story_id        TEXT NOT NULL,
    body            TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL,
    last_status     INTEGER,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    delivered_at    INTEGER
  );
  CREATE INDEX webhook_deliveries_by_status ON webhook_deliveries (status, position);
  `,
  // 6: each story's services: the port each keeps while the story exists, and its last state
  // (the marker of its processes, so that a restart ends what a crash left).
  `
  CREATE TABLE services (
    story_id TEXT NOT NULL,
    name     TEXT NOT NULL,
    port     INTEGER NOT NULL UNIQUE,
    status   TEXT NOT NULL,
    pid      INTEGER,
    marker   TEXT,
    error    TEXT,
    PRIMARY KEY (story_id, name)
  ) WITHOUT ROWID;
  `,
  // 7: the story whose agent started a story through agent-pool's MCP tools (its scoped token).
  `
  ALTER TABLE stories ADD COLUMN started_by TEXT;
  `,
  // 8: the server that ran each run (a cluster's servers share the database), and the
  // cluster's id, which keeps its messages apart from other clusters' on a shared bus.
  `
  ALTER TABLE runs ADD COLUMN runner TEXT;
  CREATE TABLE agent_pool_cluster (id TEXT NOT NULL);
  INSERT INTO agent_pool_cluster (id) VALUES (lower(hex(randomblob(16))));
  `,
  // 9: a cluster's runners (their heartbeats), its queue of runs that wait for a runner,
  // and which server sends each webhook delivery.
  `
  CREATE TABLE runners (
    name         TEXT PRIMARY KEY,
    role         TEXT NOT NULL,
    incarnation  INTEGER NOT NULL,
    started_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL,
    lost_at      INTEGER,
    left_at      INTEGER
  );
  CREATE TABLE run_queue (
    story_id          TEXT NOT NULL,
    number            INTEGER NOT NULL,
    queued_at         INTEGER NOT NULL,
    resume_session_id TEXT,
    affinity          TEXT,
    claimed_by        TEXT,
    claimed_at        INTEGER,
    PRIMARY KEY (story_id, number)
  ) WITHOUT ROWID;
  ALTER TABLE webhook_deliveries ADD COLUMN claimed_by TEXT;
  ALTER TABLE webhook_deliveries ADD COLUMN claimed_until INTEGER;
  `,
];

/** The schema version this agent-pool writes. */
export const SCHEMA_VERSION = MIGRATIONS.length;
