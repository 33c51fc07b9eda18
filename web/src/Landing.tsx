import { useCallback, useId, useState } from 'react';
import { type OperationResult, useMutation, useQuery } from 'urql';
import type { Agents } from './agents.js';
import {
  type Agent,
  ARCHIVE_STORY,
  CREATE_PULL_REQUEST,
  errorMessage,
  formatMoment,
  isActive,
  MERGE_STORY,
  type MergeStrategy,
  type PullRequest,
  REBASE_STORY,
  STORY_LANDING,
} from './api.js';
import { Field } from './Field.js';
import { type LandingAction, type LandingError, landingError } from './landing-error.js';
import { useRefreshWhenMoved } from './refresh-when-moved.js';

/** The ways a story can land, as the Strategy choice offers them; SQUASH first, the server's default. */
const STRATEGIES: ReadonlyArray<{ strategy: MergeStrategy; label: string; help: string; done: string }> = [
  { strategy: 'SQUASH', label: 'Squash', help: "One new commit on the target with all of the story's work", done: 'squashed' },
  { strategy: 'MERGE', label: 'Merge commit', help: "A merge commit of the target and the story's branch", done: 'with a merge commit' },
  {
    strategy: 'REBASE',
    label: 'Rebase',
    help: "The story's commits replayed onto the target in its worktree, and the target moved on to them",
    done: 'rebased',
  },
];

/** What the last action of the section came to: done (in words), or refused. */
type Outcome = { done: string } | { error: LandingError };

/**
 * The Land section of a story's page: where its work stands against its target branch
 * (commits ahead and behind, the files a merge would conflict in) and what lands it:
 * Merge (Squash, Merge commit or Rebase), Rebase, a pull request, and Archive. Shown for a
 * story with a branch; while it runs it only says why it waits. The git facts are read
 * when the section shows, again after each of its actions, and when the story moves.
 */
export function Landing({ agent, agents, onLanded }: { agent: Agent; agents: Agents; onLanded: () => void }) {
  const { storyId } = agent;
  const active = isActive(agent.status);
  const landable = !active && !agent.archived && agent.branch !== null;
  const [status, refresh] = useQuery({ query: STORY_LANDING, variables: { storyId }, requestPolicy: 'network-only', pause: !landable });
  // A paused query still runs when asked to by name: only a section that shows reads.
  const refreshIfShown = useCallback(
    (options: { requestPolicy: 'network-only' }) => {
      if (landable) refresh(options);
    },
    [landable, refresh],
  );
  useRefreshWhenMoved(`${agent.status}:${agent.lastSeq}:${agent.baseBranch}:${agent.mergedAt}:${agent.pullRequest?.state}`, refreshIfShown);

  const [, merge] = useMutation(MERGE_STORY);
  const [, rebase] = useMutation(REBASE_STORY);
  const [, createPullRequest] = useMutation(CREATE_PULL_REQUEST);
  const [, archive] = useMutation(ARCHIVE_STORY);
  const [strategy, setStrategy] = useState<MergeStrategy>('SQUASH');
  const [into, setInto] = useState('');
  const [draft, setDraft] = useState(false);
  const [deleteBranch, setDeleteBranch] = useState(false);
  const [busy, setBusy] = useState<LandingAction | undefined>();
  const [outcome, setOutcome] = useState<Outcome | undefined>();
  const strategyGroup = useId();

  if (agent.archived || agent.branch === null) return null;
  if (active) {
    return (
      <section className="land" aria-label="Land">
        <h2>Land</h2>
        <p className="note">Merging, rebasing, a pull request and archiving wait until the story's run ends (it is {agent.status}).</p>
      </section>
    );
  }

  const target = agent.baseBranch ?? (into.trim() === '' ? undefined : into.trim());
  const landing = status.data?.agent;
  const pullRequest = agent.pullRequest;
  const updatesPullRequest = pullRequest?.state === 'open';

  /** Runs an action that answers with the agent: shows the answer, and what it came to in words. */
  const act = async (
    action: LandingAction,
    run: () => Promise<OperationResult<Record<string, Agent>>>,
    done: (agent: Agent) => string,
  ): Promise<void> => {
    setBusy(action);
    setOutcome(undefined);
    const response = await run();
    setBusy(undefined);
    const returned = response.data && Object.values(response.data)[0];
    if (returned) agents.apply(returned);
    if (response.error) setOutcome({ error: landingError(response.error, action, target) });
    else if (returned) {
      setOutcome({ done: done(returned) });
      onLanded();
      // Ahead, behind and conflicts are computed when asked: ask again now, not at the next event.
      if (action !== 'archive') refresh({ requestPolicy: 'network-only' });
    }
  };

  return (
    <section className="land" aria-label="Land">
      <h2>Land</h2>
      <p className="land-status">
        {agent.baseBranch === null ? (
          <span className="note">No target branch recorded (the story started from a detached HEAD): name one to merge into.</span>
        ) : (
          <>
            Into <span className="mono">{agent.baseBranch}</span>:{' '}
            {landing ? (
              <>
                <span title={`Commits on ${agent.branch} since its work last landed (uncommitted work is not counted)`}>
                  {landing.aheadBy} ahead
                </span>
                ,{' '}
                <span title={`Commits on ${agent.baseBranch} that ${agent.branch} lacks (Rebase takes them in)`}>
                  {landing.behindBy} behind
                </span>
                {landing.aheadBy === 0 && agent.mergedAt === null && (landing.changes?.filesChanged ?? 0) > 0 && (
                  <span className="note">
                    {' '}
                    · its work is not committed yet ({count(landing.changes!.filesChanged, 'file', 'files')}): landing commits it on its
                    branch first
                  </span>
                )}
              </>
            ) : status.error ? (
              <span className="error">{errorMessage(status.error)}</span>
            ) : (
              <span className="note">reading…</span>
            )}
          </>
        )}
      </p>
      {agent.mergedAt !== null && (
        <p className="merged" title={new Date(agent.mergedAt).toLocaleString()}>
          Merged {formatMoment(agent.mergedAt)}
        </p>
      )}
      {landing && landing.conflicts.length > 0 && (
        <div className="conflicts">
          <p>
            Merging now would conflict with <span className="mono">{agent.baseBranch}</span> in{' '}
            {count(landing.conflicts.length, 'file', 'files')}:
          </p>
          <ul>
            {landing.conflicts.map((file) => (
              <li key={file} className="mono">
                <bdi>{file}</bdi>
              </li>
            ))}
          </ul>
        </div>
      )}
      <form
        className="land-merge"
        onSubmit={(event) => {
          event.preventDefault();
          const chosen = STRATEGIES.find((item) => item.strategy === strategy)!;
          void act(
            'merge',
            () => merge({ storyId, strategy, into: agent.baseBranch === null ? target : undefined }),
            () => `Merged into ${target} (${chosen.done}).`,
          );
        }}
      >
        <fieldset className="strategy">
          <legend>Strategy</legend>
          {STRATEGIES.map((item) => (
            <label key={item.strategy} className="inline" title={item.help}>
              <input
                type="radio"
                name={strategyGroup}
                value={item.strategy}
                checked={strategy === item.strategy}
                onChange={() => setStrategy(item.strategy)}
              />{' '}
              {item.label}
            </label>
          ))}
        </fieldset>
        {agent.baseBranch === null && (
          <Field label="Into">
            {(id) => <input id={id} value={into} placeholder="A local branch, e.g. main" onChange={(event) => setInto(event.target.value)} />}
          </Field>
        )}
        <button type="submit" disabled={busy !== undefined || target === undefined}>
          Merge
        </button>
      </form>
      <div className="land-buttons">
        <button
          type="button"
          disabled={busy !== undefined || agent.baseBranch === null}
          title={`Replay the story's commits onto ${agent.baseBranch ?? 'its target'}, in its worktree`}
          onClick={() => void act('rebase', () => rebase({ storyId }), () => `Rebased onto ${agent.baseBranch}.`)}
        >
          Rebase
        </button>
        <button
          type="button"
          disabled={busy !== undefined}
          title={updatesPullRequest ? 'Push the branch again; the pull request shows its new commits' : 'Push the branch and open a pull request'}
          onClick={() =>
            void act(
              'pull request',
              () => createPullRequest({ storyId, draft: updatesPullRequest ? undefined : draft }),
              (returned) => pullRequestDone(returned.pullRequest, updatesPullRequest),
            )
          }
        >
          {updatesPullRequest ? 'Update pull request' : 'Create pull request'}
        </button>
        {!updatesPullRequest && (
          <label className="inline">
            <input type="checkbox" checked={draft} onChange={(event) => setDraft(event.target.checked)} /> as a draft
          </label>
        )}
        {pullRequest && (
          <span className="pull-request">
            <a href={pullRequest.url} target="_blank" rel="noreferrer">
              Pull request #{pullRequest.number}
            </a>{' '}
            <span className={`badge pr-${pullRequest.state}`}>{pullRequest.state}</span>
          </span>
        )}
      </div>
      <div className="land-buttons">
        <button
          type="button"
          disabled={busy !== undefined}
          title="Remove the story's worktree (its uncommitted work is committed to its branch first); starting it again brings it back"
          onClick={() => void act('archive', () => archive({ storyId, deleteBranch }), () => 'Archived.')}
        >
          Archive
        </button>
        <label className="inline">
          <input type="checkbox" checked={deleteBranch} onChange={(event) => setDeleteBranch(event.target.checked)} /> also delete its
          branch (only if merged)
        </label>
      </div>
      {busy && <p className="note">Working…</p>}
      {outcome && 'error' in outcome && (
        <div className="error" role="alert">
          <p>{outcome.error.text}</p>
          {outcome.error.text !== outcome.error.serverMessage && (
            <details>
              <summary>The server's message</summary>
              <pre>
                {outcome.error.code ? `${outcome.error.code}: ` : ''}
                {outcome.error.serverMessage}
              </pre>
            </details>
          )}
        </div>
      )}
      {outcome && 'done' in outcome && (
        <p className="done" role="status">
          {outcome.done}
        </p>
      )}
    </section>
  );
}

function pullRequestDone(pullRequest: PullRequest | null, updated: boolean): string {
  if (!pullRequest) return 'Pushed.';
  if (pullRequest.state !== 'open') return `Pull request #${pullRequest.number} is ${pullRequest.state}.`;
  return `Pull request #${pullRequest.number} ${updated ? 'updated' : 'opened'}.`;
}

function count(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}
