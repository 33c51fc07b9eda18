import { StoreError } from './store-error.js';
import type {
  DeliveryRecord,
  DeliveryStatus,
  EventRecord,
  LandingRecord,
  PullRequestRecord,
  RunRecord,
  ServiceRecord,
  StoryRecord,
} from './state-store.js';

/**
 * The rows of agent-pool's tables, as both databases (SQLite, Postgres) hold them (times
 * in milliseconds since the epoch, booleans as 0 and 1), and how each becomes a record and
 * back: one mapping for both stores.
 */

export interface StoryRow {
  story_id: string;
  created_at: number;
  agent: string | null;
  title: string | null;
  started_by: string | null;
  base_branch: string | null;
  landed_commit: string | null;
  landed_as: string | null;
  merged_at: number | null;
  archived: number;
  branch_deleted: number;
  pushed_commit: string | null;
  pr_url: string | null;
  pr_number: number | null;
  pr_state: string | null;
}

export interface RunRow {
  story_id: string;
  number: number;
  agent: string;
  prompt: string | null;
  rendered_prompt: string | null;
  status: string;
  session_id: string | null;
  pid: number | null;
  exit_code: number | null;
  error: string | null;
  cost_usd: number | null;
  input_tokens: number | null;
  output_tokens: number | null;
  cached_input_tokens: number | null;
  started_at: number;
  finished_at: number | null;
  first_seq: number | null;
  last_seq: number | null;
  worktree_path: string | null;
  branch: string | null;
  marker: string;
  runner: string | null;
}

export interface EventRow {
  story_id: string;
  seq: number;
  run: number;
  at: number;
  type: string;
  payload: string;
}

export interface DeliveryRow {
  id: string;
  hook: string;
  url: string;
  event: string;
  story_id: string;
  body: string;
  status: string;
  attempts: number;
  last_status: number | null;
  last_error: string | null;
  created_at: number;
  next_attempt_at: number;
  delivered_at: number | null;
}

export interface ServiceRow {
  story_id: string;
  name: string;
  port: number;
  status: string;
  pid: number | null;
  marker: string | null;
  error: string | null;
}

/** The columns of a run's row, in order. */
export const RUN_COLUMNS =
  'story_id, number, agent, prompt, rendered_prompt, status, session_id, pid, exit_code, error, cost_usd, input_tokens, output_tokens, ' +
  'cached_input_tokens, started_at, finished_at, first_seq, last_seq, worktree_path, branch, marker, runner';

/** `column = excluded.column` for every column of a run but its key: an upsert's update. */
export const RUN_UPDATES = RUN_COLUMNS.split(', ')
  .slice(2)
  .map((column) => `${column} = excluded.${column}`)
  .join(', ');

/** The columns of a story's row. */
export const STORY_COLUMNS =
  'story_id, created_at, agent, title, started_by, base_branch, landed_commit, landed_as, merged_at, archived, branch_deleted, pushed_commit, pr_url, pr_number, pr_state';

/**
 * A run that another server of the cluster recorded first under the same story and number
 * (two servers started the story at the same moment): the later one gives way.
 */
export class RunTakenError extends StoreError {
  readonly storyId: string;
  readonly number: number;

  constructor(
    run: Pick<RunRecord, 'storyId' | 'number'>,
    readonly runner: string | undefined,
  ) {
    super(`run ${run.number} of story ${run.storyId} was started on server ${runner ?? '(unnamed)'} at the same moment: it runs there`);
    this.name = 'RunTakenError';
    this.storyId = run.storyId;
    this.number = run.number;
  }
}

/** A write of a run by a server of a cluster that the others have declared lost: the run was ended there. */
export class RunnerLostError extends RunTakenError {
  constructor(run: Pick<RunRecord, 'storyId' | 'number'>, runner: string) {
    super(run, runner);
    this.name = 'RunnerLostError';
    this.message = `this server (runner ${runner}) was declared lost by the cluster, which ended its run ${run.number} of story ${run.storyId}`;
  }
}

export const orUndefined = <T>(value: T | null): T | undefined => (value === null ? undefined : value);

export function usageOf(row: RunRow): RunRecord['usage'] {
  const usage = {
    inputTokens: orUndefined(row.input_tokens),
    outputTokens: orUndefined(row.output_tokens),
    cachedInputTokens: orUndefined(row.cached_input_tokens),
    costUsd: orUndefined(row.cost_usd),
  };
  return Object.values(usage).every((value) => value === undefined) ? undefined : usage;
}

export function deliveryOf(row: DeliveryRow): DeliveryRecord {
  return {
    id: row.id,
    hook: row.hook,
    url: row.url,
    event: row.event,
    storyId: row.story_id,
    body: row.body,
    status: row.status as DeliveryStatus,
    attempts: row.attempts,
    lastStatus: orUndefined(row.last_status),
    lastError: orUndefined(row.last_error),
    createdAt: new Date(row.created_at),
    nextAttemptAt: new Date(row.next_attempt_at),
    deliveredAt: row.delivered_at === null ? undefined : new Date(row.delivered_at),
  };
}

export function deliveryRow(delivery: DeliveryRecord): DeliveryRow {
  return {
    id: delivery.id,
    hook: delivery.hook,
    url: delivery.url,
    event: delivery.event,
    story_id: delivery.storyId,
    body: delivery.body,
    status: delivery.status,
    attempts: delivery.attempts,
    last_status: delivery.lastStatus ?? null,
    last_error: delivery.lastError ?? null,
    created_at: delivery.createdAt.getTime(),
    next_attempt_at: delivery.nextAttemptAt.getTime(),
    delivered_at: delivery.deliveredAt?.getTime() ?? null,
  };
}

/**
 * A token count as an integer column holds it: an agent can print any number (1.5, 1e308);
 * Postgres's BIGINT would refuse the whole write, run and deliveries with it.
 */
function tokenColumn(count: number | undefined): number | null {
  if (count === undefined) return null;
  return Math.max(0, Math.min(Math.trunc(count), Number.MAX_SAFE_INTEGER));
}

/** A run's row. */
export function runRow(run: RunRecord): RunRow {
  return {
    story_id: run.storyId,
    number: run.number,
    agent: run.agent,
    prompt: run.prompt ?? null,
    rendered_prompt: run.renderedPrompt ?? null,
    status: run.status,
    session_id: run.sessionId ?? null,
    pid: run.pid ?? null,
    exit_code: run.exitCode ?? null,
    error: run.error ?? null,
    cost_usd: run.usage?.costUsd ?? null,
    input_tokens: tokenColumn(run.usage?.inputTokens),
    output_tokens: tokenColumn(run.usage?.outputTokens),
    cached_input_tokens: tokenColumn(run.usage?.cachedInputTokens),
    started_at: run.startedAt.getTime(),
    finished_at: run.finishedAt?.getTime() ?? null,
    first_seq: run.firstSeq ?? null,
    last_seq: run.lastSeq ?? null,
    worktree_path: run.worktreePath ?? null,
    branch: run.branch ?? null,
    marker: run.marker,
    runner: run.runner ?? null,
  };
}

/** A story's row as its record. */
export function storyOf(row: StoryRow): StoryRecord {
  return {
    storyId: row.story_id,
    createdAt: new Date(row.created_at),
    agent: orUndefined(row.agent),
    title: orUndefined(row.title),
    startedBy: orUndefined(row.started_by),
    landing: {
      baseBranch: orUndefined(row.base_branch),
      landedCommit: orUndefined(row.landed_commit),
      landedAs: orUndefined(row.landed_as),
      mergedAt: row.merged_at === null ? undefined : new Date(row.merged_at),
      archived: row.archived !== 0,
      branchDeleted: row.branch_deleted !== 0,
      pushedCommit: orUndefined(row.pushed_commit),
      pullRequest:
        row.pr_url === null || row.pr_number === null || row.pr_state === null
          ? undefined
          : { url: row.pr_url, number: row.pr_number, state: row.pr_state as PullRequestRecord['state'] },
    },
  };
}

/** What a story knows of landing, as the columns of its row. */
export function landingRow(storyId: string, landing: LandingRecord): Omit<StoryRow, 'created_at' | 'agent' | 'title' | 'started_by'> {
  return {
    story_id: storyId,
    base_branch: landing.baseBranch ?? null,
    landed_commit: landing.landedCommit ?? null,
    landed_as: landing.landedAs ?? null,
    merged_at: landing.mergedAt?.getTime() ?? null,
    archived: landing.archived ? 1 : 0,
    branch_deleted: landing.branchDeleted ? 1 : 0,
    pushed_commit: landing.pushedCommit ?? null,
    pr_url: landing.pullRequest?.url ?? null,
    pr_number: landing.pullRequest?.number ?? null,
    pr_state: landing.pullRequest?.state ?? null,
  };
}

/** A run's row as its record. */
export function runOf(row: RunRow): RunRecord {
  return {
    storyId: row.story_id,
    number: row.number,
    agent: row.agent,
    prompt: orUndefined(row.prompt),
    renderedPrompt: orUndefined(row.rendered_prompt),
    status: row.status,
    sessionId: orUndefined(row.session_id),
    pid: orUndefined(row.pid),
    exitCode: orUndefined(row.exit_code),
    error: orUndefined(row.error),
    usage: usageOf(row),
    startedAt: new Date(row.started_at),
    finishedAt: row.finished_at === null ? undefined : new Date(row.finished_at),
    firstSeq: orUndefined(row.first_seq),
    lastSeq: orUndefined(row.last_seq),
    worktreePath: orUndefined(row.worktree_path),
    branch: orUndefined(row.branch),
    marker: row.marker,
    runner: orUndefined(row.runner),
  };
}

/** An event's row as its record. */
export function eventOf(row: EventRow): EventRecord {
  return { storyId: row.story_id, seq: row.seq, run: row.run, at: new Date(row.at), type: row.type, payload: row.payload };
}

/** A service's row as its record. */
export function serviceOf(row: ServiceRow): ServiceRecord {
  return {
    storyId: row.story_id,
    name: row.name,
    port: row.port,
    status: row.status,
    pid: orUndefined(row.pid),
    marker: orUndefined(row.marker),
    error: orUndefined(row.error),
  };
}

/** A service's record as its row. */
export function serviceRow(service: ServiceRecord): ServiceRow {
  return {
    story_id: service.storyId,
    name: service.name,
    port: service.port,
    status: service.status,
    pid: service.pid ?? null,
    marker: service.marker ?? null,
    error: service.error ?? null,
  };
}
