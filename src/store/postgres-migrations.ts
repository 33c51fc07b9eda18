/**
 * The Postgres schema, as numbered migrations: the same tables and columns as SQLite's
 * (src/store/migrations.ts), numbered alike, in Postgres's types (times in milliseconds as
 * BIGINT, booleans as 0 and 1, as the shared rows hold them: src/store/rows.ts). The table
 * `agent_pool_schema` holds the number of the last one applied. A later issue that appends
 * a migration there appends its twin here; test/store/state-stores.test.ts checks that both
 * end with the same tables and columns.
 */
export const POSTGRES_MIGRATIONS: readonly string[] = [
  // 1: stories, their runs, and their events.
  `
  CREATE TABLE stories (
    story_id   TEXT PRIMARY KEY,
    position   BIGINT NOT NULL,
    created_at BIGINT NOT NULL
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
    cost_usd      DOUBLE PRECISION,
    started_at    BIGINT NOT NULL,
    finished_at   BIGINT,
    first_seq     BIGINT,
    last_seq      BIGINT,
    worktree_path TEXT,
    branch        TEXT,
    marker        TEXT NOT NULL,
    PRIMARY KEY (story_id, number)
  );
  CREATE TABLE events (
    story_id TEXT NOT NULL,
    seq      BIGINT NOT NULL,
    run      INTEGER NOT NULL,
    at       BIGINT NOT NULL,
    type     TEXT NOT NULL,
    payload  TEXT NOT NULL,
    PRIMARY KEY (story_id, seq)
  );
  `,
  // 2: agent profiles, and token usage per run.
  `
  ALTER TABLE stories ADD COLUMN agent TEXT;
  ALTER TABLE runs ADD COLUMN agent TEXT NOT NULL DEFAULT 'default';
  ALTER TABLE runs ADD COLUMN input_tokens BIGINT;
  ALTER TABLE runs ADD COLUMN output_tokens BIGINT;
  ALTER TABLE runs ADD COLUMN cached_input_tokens BIGINT;
  `,
  // 3: a story's title, and the prompt each run's agent got.
  `
  ALTER TABLE stories ADD COLUMN title TEXT;
  ALTER TABLE runs ADD COLUMN rendered_prompt TEXT;
  UPDATE runs SET rendered_prompt = prompt WHERE prompt IS NOT NULL;
  `,
  // 4: landing a story's work.
  `
  ALTER TABLE stories ADD COLUMN base_branch TEXT;
  ALTER TABLE stories ADD COLUMN landed_commit TEXT;
  ALTER TABLE stories ADD COLUMN landed_as TEXT;
  ALTER TABLE stories ADD COLUMN merged_at BIGINT;
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
    position        BIGSERIAL PRIMARY KEY,
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
    created_at      BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    delivered_at    BIGINT
  );
  CREATE INDEX webhook_deliveries_by_status ON webhook_deliveries (status, position);
  `,
  // 6: each story's services.
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
  );
  `,
  // 7: the story whose agent started a story through agent-pool's MCP tools.
  `
  ALTER TABLE stories ADD COLUMN started_by TEXT;
  `,
  // 8: the server that ran each run (a cluster's servers share the database), and the
  // cluster's id, which keeps its messages apart from other clusters' on a shared bus.
  `
  ALTER TABLE runs ADD COLUMN runner TEXT;
  CREATE TABLE agent_pool_cluster (id TEXT NOT NULL);
  INSERT INTO agent_pool_cluster (id) VALUES (md5(random()::text || clock_timestamp()::text));
  `,
  // 9: a cluster's runners (their heartbeats), its queue of runs that wait for a runner,
  // and which server sends each webhook delivery.
  `
  CREATE TABLE runners (
    name         TEXT PRIMARY KEY,
    role         TEXT NOT NULL,
    incarnation  BIGINT NOT NULL,
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    lost_at      BIGINT,
    left_at      BIGINT
  );
  CREATE TABLE run_queue (
    story_id          TEXT NOT NULL,
    number            INTEGER NOT NULL,
    queued_at         BIGINT NOT NULL,
    resume_session_id TEXT,
    affinity          TEXT,
    claimed_by        TEXT,
    claimed_at        BIGINT,
    PRIMARY KEY (story_id, number)
  );
  ALTER TABLE webhook_deliveries ADD COLUMN claimed_by TEXT;
  ALTER TABLE webhook_deliveries ADD COLUMN claimed_until BIGINT;
  `,
];
