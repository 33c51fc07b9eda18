/**
 * What agent-pool keeps of a project, and the interface every database behind it
 * implements (SQLite, the default, in `store.ts`). Every method returns a Promise, so that
 * a database whose driver is asynchronous fits; writes take effect in the order they are
 * called, and events are appended in batches (one transaction each).
 */
/** A story as stored: its id, when it was first started, its agent profile and its title. */
export interface StoryRecord {
  storyId: string;
  createdAt: Date;
  /** The name of the story's agent profile. */
  agent: string | undefined;
  /** The title it was last given. */
  title: string | undefined;
  /** The story whose agent started it, through a token scoped to that story (MCP). */
  startedBy: string | undefined;
  /** Where its work lands. */
  landing: LandingRecord;
}

/** A pull (or merge) request as stored: its web page, its number and its state when last read. */
export interface PullRequestRecord {
  url: string;
  number: number;
  state: 'open' | 'closed' | 'merged';
}

/** What a story knows of landing its work. */
export interface LandingRecord {
  /** The branch its work lands on, recorded when its branch was made (undefined: none). */
  baseBranch: string | undefined;
  /** The story's commit its last landing took in. */
  landedCommit: string | undefined;
  /** The commit its last landing made the target's tip. */
  landedAs: string | undefined;
  /** When it last landed (mergeStory), or its pull request was seen merged. */
  mergedAt: Date | undefined;
  /** Whether it is archived: its worktree removed, left out of the list. */
  archived: boolean;
  /** Whether archiving it deleted its branch (a start makes a new one). */
  branchDeleted: boolean;
  /** The commit agent-pool last pushed of its branch (the lease of the next push). */
  pushedCommit: string | undefined;
  pullRequest: PullRequestRecord | undefined;
}

/** A story that has never landed anything. */
export function newLanding(baseBranch?: string): LandingRecord {
  return { baseBranch, landedCommit: undefined, landedAs: undefined, mergedAt: undefined, archived: false, branchDeleted: false, pushedCommit: undefined, pullRequest: undefined };
}

/** A run as stored: every field of the contract's AgentRun, and what finds its processes. */
export interface RunRecord {
  storyId: string;
  number: number;
  /** The agent profile the run used. */
  agent: string;
  /** The prompt as given to startAgent; undefined for the configured one. */
  prompt: string | undefined;
  /** The prompt the agent got (the configured one rendered); undefined until the agent starts. */
  renderedPrompt: string | undefined;
  status: string;
  sessionId: string | undefined;
  pid: number | undefined;
  exitCode: number | undefined;
  error: string | undefined;
  usage: { inputTokens?: number; outputTokens?: number; cachedInputTokens?: number; costUsd?: number } | undefined;
  startedAt: Date;
  finishedAt: Date | undefined;
  firstSeq: number | undefined;
  lastSeq: number | undefined;
  worktreePath: string | undefined;
  branch: string | undefined;
  /** The `AGENT_POOL_RUN` value every process of the run carries. */
  marker: string;
  /** The server that ran it (`--runner-name`); undefined for a run of a server without one. */
  runner?: string | undefined;
}

/** An event as stored: its place, its run, its time, its type and its fields as JSON. */
export interface EventRecord {
  storyId: string;
  seq: number;
  run: number;
  at: Date;
  type: string;
  /** The type's own fields, as JSON. */
  payload: string;
}

/** A story's stored events: the oldest and newest seq, and when the newest was recorded. */
export interface EventBounds {
  firstSeq: number;
  lastSeq: number;
  lastAt: Date;
}

/** Where a webhook delivery stands: waiting to be sent (or sent again), made, or given up. */
export type DeliveryStatus = 'PENDING' | 'DELIVERED' | 'FAILED';

/**
 * One webhook delivery as stored: an outbox row, written with the change it reports and
 * updated after each attempt to send it.
 */
export interface DeliveryRecord {
  /** Its id, sent in `X-Agent-Pool-Delivery` and the body: receivers dedupe by it. */
  id: string;
  /** Which `[[notify.webhook]]` it goes to (see webhookKey): never the URL, which may be a secret. */
  hook: string;
  /** The receiver's URL with its path and query redacted, for people to read. */
  url: string;
  /** waiting, completed, failed or stopped. */
  event: string;
  storyId: string;
  /** The body as sent, every time. */
  body: string;
  status: DeliveryStatus;
  attempts: number;
  /** The HTTP status of the last answer; undefined when there was none (no connection, a timeout). */
  lastStatus: number | undefined;
  lastError: string | undefined;
  createdAt: Date;
  /** When it is sent (again) while PENDING. */
  nextAttemptAt: Date;
  deliveredAt: Date | undefined;
}

/** A story's service as stored: its port (kept while the story exists) and its last state. */
export interface ServiceRecord {
  storyId: string;
  name: string;
  /** Unique in the project. */
  port: number;
  /** STARTING, READY, STOPPED or FAILED. */
  status: string;
  pid: number | undefined;
  /** The `AGENT_POOL_RUN` value every process of its latest start carries (how a restart finds its orphans). */
  marker: string | undefined;
  /** Why it FAILED. */
  error: string | undefined;
}

/** A project's state: stories, runs, events, webhook deliveries and services. The store knows nothing of what the records mean. */
export interface StateStore {
  /** Every story, in the order they were first started. */
  stories(): Promise<StoryRecord[]>;
  /** Records a story (once), with its agent profile, title, and the story whose agent started it. */
  addStory(storyId: string, createdAt: Date, agent?: string, title?: string, startedBy?: string): Promise<void>;
  /** Records which agent profile a story uses from now on. */
  setStoryAgent(storyId: string, agent: string): Promise<void>;
  /** Records a story's new title (undefined: none). */
  setStoryTitle(storyId: string, title: string | undefined): Promise<void>;
  /** Records what a story knows of landing its work, all of it. */
  saveLanding(storyId: string, landing: LandingRecord): Promise<void>;
  /** Every run, by story and number. */
  runs(): Promise<RunRecord[]>;
  /** One story with its runs by number, as stored now (undefined when it is not). */
  story(storyId: string): Promise<{ story: StoryRecord; runs: RunRecord[] } | undefined>;
  /** The id of the database's cluster, made once with its schema: it keeps a cluster's bus messages apart from another's. */
  clusterId(): Promise<string>;
  /**
   * Writes a run's current state, and in the same transaction the webhook deliveries that
   * report the change (the outbox): both are stored, or neither. A run of the same story
   * and number that another server (`runner`) recorded first is not overwritten: the write
   * fails with {@link RunTakenError}.
   */
  saveRun(run: RunRecord, deliveries?: readonly DeliveryRecord[]): Promise<void>;
  /** The deliveries still PENDING, in the order they were written. */
  pendingDeliveries(): Promise<DeliveryRecord[]>;
  /** Writes what an attempt made of a delivery: its URL (redacted) as found, attempts, status, last status and error, next attempt, delivery time. */
  updateDelivery(delivery: DeliveryRecord): Promise<void>;
  /** The newest `limit` deliveries (only those with `status`, when given), newest first. */
  deliveries(limit: number, status?: DeliveryStatus): Promise<DeliveryRecord[]>;
  /** Drops the deliveries made or given up before `date`. */
  deleteDeliveriesBefore(date: Date): Promise<void>;
  /** Every story's services: their ports and last states. */
  services(): Promise<ServiceRecord[]>;
  /** Writes a service's port and state (a port another story's service has is refused). */
  saveService(service: ServiceRecord): Promise<void>;
  /** Drops a story's services: their ports are free again (the story is archived). */
  deleteServices(storyId: string): Promise<void>;
  /** Stores a batch of events in one transaction. */
  appendEvents(events: readonly EventRecord[]): Promise<void>;
  /** Up to `limit` events of a story with `seq >= fromSeq`, in order. */
  readEvents(storyId: string, fromSeq: number, limit: number): Promise<EventRecord[]>;
  /** A story's stored events' range (undefined when it has none). */
  eventBounds(storyId: string): Promise<EventBounds | undefined>;
  /** Drops a story's events older than `seq`. */
  deleteEventsBefore(storyId: string, seq: number): Promise<void>;
  /** Closes the database and gives up its lock. */
  close(): Promise<void>;
}
