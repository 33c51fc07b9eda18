import { DEFAULT_PROFILE } from '../config/config.js';
import type { Logger } from '../logger.js';
import type { DeliveryRecord, StateStore } from '../store/state-store.js';
import type { EventLog } from './event-log.js';
import type { AgentEvent, AgentStatus } from './events.js';
import type { RunState } from './run.js';
import { terminateRunProcesses } from './run-processes.js';
import type { Story } from './stories.js';

/** The error of a run that was PENDING or RUNNING when its server stopped without stopping it. */
export const INTERRUPTED_RUN_ERROR = 'server stopped while the agent was running';

const STATUSES: ReadonlySet<string> = new Set<AgentStatus>(['PENDING', 'RUNNING', 'COMPLETED', 'FAILED', 'STOPPED']);

/** A run's kept events, oldest first, read in pages. */
export async function* runEvents(log: EventLog, run: Pick<RunState, 'storyId' | 'firstSeq' | 'lastSeq'>): AsyncGenerator<AgentEvent> {
  if (run.firstSeq === undefined || run.lastSeq === undefined) return;
  let after = Math.max(run.firstSeq, log.bounds(run.storyId).firstSeq) - 1;
  while (after < run.lastSeq) {
    const page = await log.page(run.storyId, after, 1000);
    if (page.length === 0) return;
    for (const event of page) {
      if (event.seq > run.lastSeq) return;
      yield event;
    }
    after = page.at(-1)!.seq;
  }
}

/** The request ids of a run's approval requests that no event answered. */
async function unansweredApprovals(log: EventLog, run: RunState): Promise<string[]> {
  const unanswered = new Set<string>();
  for await (const event of runEvents(log, run)) {
    if (event.type === 'approval_request') unanswered.add(event.requestId);
    else if (event.type === 'approval_resolved') unanswered.delete(event.requestId);
  }
  return [...unanswered];
}

/**
 * Brings back what the store holds after a restart: every story with its runs (the log's
 * storage must have loaded their events' ranges). A run of this server (`runner`; or of a
 * server without a name) that the store shows PENDING or RUNNING was interrupted by the end
 * of the previous server (unless it is in the cluster's `queued` runs): it is
 * ended FAILED, with an event for each approval it left unanswered (and, stored with it,
 * the webhook deliveries `reported` gives for the story as it now is), and its marker is
 * returned so that its surviving processes can be ended ({@link endOrphans}).
 */
export async function recoverStories(
  store: StateStore,
  log: EventLog,
  logger: Logger,
  reported: (story: Story) => DeliveryRecord[] = () => [],
  runner?: string,
  queued: ReadonlySet<string> = new Set(),
): Promise<{ stories: Story[]; orphanMarkers: string[] }> {
  const byId = new Map<string, Story>();
  for (const { storyId, agent, title, startedBy, landing } of await store.stories()) {
    byId.set(storyId, { storyId, agent: agent ?? DEFAULT_PROFILE, title, startedBy, landing, runs: [], current: undefined });
  }
  for (const record of await store.runs()) {
    if (!STATUSES.has(record.status)) throw new Error(`stored run ${record.storyId}#${record.number} has status ${record.status}`);
    byId.get(record.storyId)?.runs.push({ ...record, status: record.status as AgentStatus });
  }
  const orphanMarkers: string[] = [];
  const stories: Story[] = [];
  for (const story of byId.values()) {
    const latest = story.runs.at(-1);
    // A story whose first run was never stored (an older server's crash) is not a story.
    if (!latest) continue;
    stories.push(story);
    if (latest.status !== 'PENDING' && latest.status !== 'RUNNING') continue;
    // In a cluster, another server's run is its own (it runs, or it is that server's to end
    // when it comes back); a server alone ends every run it finds running.
    if (runner !== undefined && latest.runner !== undefined && latest.runner !== runner) continue;
    // A run in the cluster's queue waits for a runner (one this server claimed is given back
    // when it joins), as does one queued by another server since the queue was read.
    if (queued.has(`${story.storyId}:${latest.number}`)) continue;
    if (runner !== undefined && latest.runner === undefined && latest.status === 'PENDING') continue;
    const events = log.append(story.storyId, latest.number, [
      ...(await unansweredApprovals(log, latest)).map((requestId) => ({
        type: 'approval_resolved' as const,
        requestId,
        allowed: false,
        reason: INTERRUPTED_RUN_ERROR,
      })),
      { type: 'status', status: 'FAILED' },
      { type: 'error', message: INTERRUPTED_RUN_ERROR },
    ]);
    latest.status = 'FAILED';
    latest.error = INTERRUPTED_RUN_ERROR;
    latest.pid = undefined;
    latest.finishedAt = new Date();
    latest.firstSeq ??= events[0]!.seq;
    latest.lastSeq = events.at(-1)!.seq;
    await log.settled(story.storyId);
    await store.saveRun(latest, reported(story));
    orphanMarkers.push(latest.marker);
    logger.warn(`story ${story.storyId} run ${latest.number}: ${INTERRUPTED_RUN_ERROR}; it is now FAILED`);
  }
  return { stories, orphanMarkers };
}

/** Ends every process that survived a crash of the previous server, found by its run's marker (a reused pid is never touched). */
export async function endOrphans(markers: readonly string[], graceMs: number): Promise<void> {
  await Promise.all(markers.map((marker) => terminateRunProcesses(marker, graceMs)));
}
