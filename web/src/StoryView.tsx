import { type ReactNode, useState } from 'react';
import { type OperationResult, useMutation, useQuery } from 'urql';
import type { Agents } from './agents.js';
import {
  type Agent,
  type Approval,
  type ApprovalOption,
  CONTINUE_AGENT,
  errorMessage,
  firstLine,
  formatCost,
  formatTime,
  INTERRUPT_AGENT,
  isActive,
  RESPOND_TO_APPROVAL,
  type Run,
  SEND_MESSAGE,
  START_AGENT,
  STOP_AGENT,
  STORY,
} from './api.js';
import { StatusBadge, WaitingBadge } from './badges.js';
import { Changes } from './Changes.js';
import type { Connection } from './client.js';
import { EventList } from './EventList.js';
import { Field } from './Field.js';
import { Landing } from './Landing.js';
import { navigate } from './router.js';
import { Services } from './Services.js';

/** One story: its state and actions, its approvals, its events as they happen, its work. */
export function StoryView({ connection, storyId, agents }: { connection: Connection; storyId: string; agents: Agents }) {
  const known = agents.story(storyId);
  // The list leaves archived stories out: one opened by its address is asked for by its id.
  const [lookup] = useQuery({ query: STORY, variables: { storyId }, requestPolicy: 'network-only', pause: !agents.loaded || known !== undefined });
  const agent = known ?? lookup.data?.agent ?? undefined;
  // Landing moves the story's branch without an event (a rebase, its work committed before a
  // merge): the Changes region reads again after each.
  const [landings, setLandings] = useState(0);
  return (
    <div className="story">
      <nav>
        <a
          href="/"
          onClick={(event) => {
            event.preventDefault();
            navigate('/');
          }}
        >
          ← All stories
        </a>
      </nav>
      {/* The title is a client's text: isolated, it reorders nothing beside it (see StoryRow). */}
      <h1>
        <bdi className="title">{agent?.title ?? storyId}</bdi> {agent && <StatusBadge status={agent.status} />}{' '}
        {agent && <WaitingBadge waitingFor={agent.waitingFor} />}
        {agent?.archived && <span className="badge badge-archived">Archived</span>}
      </h1>
      {agent?.title != null && <p className="story-id">{storyId}</p>}
      {!agent ? (
        <p className="empty">
          {!agents.loaded || lookup.fetching
            ? agents.error
              ? ''
              : 'Loading…'
            : lookup.error
              ? errorMessage(lookup.error)
              : `Story ${storyId} was never started.`}
        </p>
      ) : (
        <>
          <Facts agent={agent} />
          {agent.archived && (
            <p className="archived-note">
              This story is archived: its worktree was removed and the list of stories leaves it out; its history stays, and its
              branch unless it was deleted with it. Starting it again (Send, or Run again, below) brings it back in a new worktree.
            </p>
          )}
          {agent.prompt !== null && (
            <section className="story-prompt" aria-label="Prompt">
              <h2>Prompt</h2>
              <div className="prompt-text" dir="auto">
                {agent.prompt}
              </div>
            </section>
          )}
          <Actions agent={agent} agents={agents} />
          {agent.pendingApprovals.map((approval) => (
            <ApprovalCard key={approval.requestId} storyId={storyId} approval={approval} agents={agents} />
          ))}
        </>
      )}
      <div className="story-columns">
        {/* Its own list per story: where it is scrolled and whether it follows start afresh. */}
        <EventList key={storyId} connection={connection} storyId={storyId} />
        <div className="side">
          {/* Keyed by story: what one story's landing came to is never shown on another's page. */}
          {agent && <Landing key={storyId} agent={agent} agents={agents} onLanded={() => setLandings((count) => count + 1)} />}
          {agent && <Services key={storyId} connection={connection} agent={agent} agents={agents} />}
          {agent && <Runs agent={agent} />}
          <Changes
            storyId={storyId}
            archived={agent?.archived ?? false}
            version={`${agent?.status}:${agent?.lastSeq}:${agent?.mergedAt}:${agent?.archived}:${landings}`}
          />
        </div>
      </div>
    </div>
  );
}

/** What is known of the story: only the facts that apply to it (no "Session –" for an agent that has none). */
function Facts({ agent }: { agent: Agent }) {
  return (
    <dl className="facts">
      {agent.agent !== null && <Fact label="Agent">{agent.agent}</Fact>}
      {agent.branch !== null && (
        <Fact label="Branch" mono>
          {agent.branch}
        </Fact>
      )}
      {agent.costUsd !== null && <Fact label="Cost">{formatCost(agent.costUsd)}</Fact>}
      {agent.sessionId !== null && (
        <Fact label="Session" mono>
          {agent.sessionId}
        </Fact>
      )}
      {agent.error !== null && (
        <Fact label="Error" error>
          {agent.error}
        </Fact>
      )}
    </dl>
  );
}

function Fact({ label, mono, error, children }: { label: string; mono?: boolean; error?: boolean; children: ReactNode }) {
  return (
    <div className="fact">
      <dt>{label}</dt>
      <dd className={[mono && 'mono', error && 'error'].filter(Boolean).join(' ') || undefined}>{children}</dd>
    </div>
  );
}

/**
 * Whether a follow-up (continueAgent) can resume the story's session: a run reported one,
 * and the profile that run used is still configured (only it has that session).
 */
function canResume(agent: Agent, profiles: Agents['profiles']): boolean {
  const withSession = agent.runs.findLast((run) => run.sessionId !== null);
  if (!withSession) return false;
  if (profiles.length === 0 || withSession.agent === null) return true;
  return profiles.some((profile) => profile.name === withSession.agent && profile.kind !== 'text');
}

/**
 * Stop, interrupt, and a message: a new turn while it runs, a follow-up that resumes its
 * session once it ended, or, for a story with no session to resume, a new run with the
 * message as its prompt ("Run again").
 */
function Actions({ agent, agents }: { agent: Agent; agents: Agents }) {
  const [, stop] = useMutation(STOP_AGENT);
  const [, interrupt] = useMutation(INTERRUPT_AGENT);
  const [, sendMessage] = useMutation(SEND_MESSAGE);
  const [, continueAgent] = useMutation(CONTINUE_AGENT);
  const [, startAgent] = useMutation(START_AGENT);
  const [text, setText] = useState('');
  const [error, setError] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  const active = isActive(agent.status);
  const live = active && agent.interactive;
  const runAgain = !active && !canResume(agent, agents.profiles);
  // A running agent without a control channel takes no message until it ends.
  const canSend = live || !active;

  /** Runs a mutation that answers with the agent, and shows the answer or the error. */
  const act = async (run: () => Promise<OperationResult<Record<string, Agent>>>): Promise<boolean> => {
    setBusy(true);
    const response = await run();
    setBusy(false);
    setError(errorMessage(response.error));
    const returned = response.data && Object.values(response.data)[0];
    if (returned) agents.apply(returned);
    return !response.error;
  };

  return (
    <section className="actions" aria-label="Actions">
      <button type="button" disabled={!active} onClick={() => void act(() => stop({ storyId: agent.storyId }))}>
        Stop
      </button>
      <button
        type="button"
        disabled={!live}
        title={agent.interactive ? 'End the running turn; the session stays' : 'Only an agent on a control channel can be interrupted'}
        onClick={() => void act(() => interrupt({ storyId: agent.storyId }))}
      >
        Interrupt
      </button>
      <form
        className="message"
        onSubmit={(event) => {
          event.preventDefault();
          const message = text;
          const storyId = agent.storyId;
          if (runAgain) {
            // Empty: the profile's configured prompt, as the start form does.
            void act(() => startAgent({ storyId, prompt: message.trim() === '' ? undefined : message })).then((ok) => {
              if (ok) setText('');
            });
            return;
          }
          if (message.trim() === '') return;
          void act(() => (live ? sendMessage({ storyId, text: message }) : continueAgent({ storyId, prompt: message }))).then((ok) => {
            if (ok) setText('');
          });
        }}
      >
        <Field label="Message">
          {(id) => (
            <textarea
              id={id}
              rows={2}
              value={text}
              placeholder={
                live
                  ? 'A new turn in the live session'
                  : active
                    ? 'Takes messages once it has ended'
                    : runAgain
                      ? "The prompt of a new run (no session to resume); empty: the profile's prompt"
                      : 'A follow-up that resumes the session'
              }
              onChange={(event) => setText(event.target.value)}
            />
          )}
        </Field>
        {runAgain ? (
          <button
            type="submit"
            disabled={busy}
            title="This story has no agent session to resume: start a new run of it, in its worktree, with this prompt"
          >
            Run again
          </button>
        ) : (
          <button type="submit" disabled={!canSend || busy}>
            Send
          </button>
        )}
      </form>
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
    </section>
  );
}

/**
 * Whether a request's options are the ones Allow / Deny (and "Don't ask again") stand for:
 * allow once and reject once, and at most allow always besides (Claude's, and its suggested
 * rules). Any other set (an ACP agent's reject always, several of a kind) gets a button each.
 */
function isAllowOrDeny(options: readonly ApprovalOption[]): boolean {
  // A request whose options the server does not know: allow and deny are what it takes.
  if (options.length === 0) return true;
  const kinds = options.map((option) => option.kind);
  if (new Set(kinds).size !== kinds.length) return false;
  return (
    kinds.includes('allow_once') &&
    kinds.includes('reject_once') &&
    kinds.every((kind) => kind === 'allow_once' || kind === 'reject_once' || kind === 'allow_always')
  );
}

/** Whether choosing an option of this kind lets the tool call run. */
const allows = (option: ApprovalOption): boolean => option.kind.startsWith('allow');

/**
 * A tool call that waits for a person: what it would do, and Allow / Deny; or, when the
 * agent offers other answers than those (an ACP agent's "Always allow", "Never"), a button
 * for each of its options, by the agent's own names.
 */
function ApprovalCard({ storyId, approval, agents }: { storyId: string; approval: Approval; agents: Agents }) {
  const [, respond] = useMutation(RESPOND_TO_APPROVAL);
  const [note, setNote] = useState('');
  const [remember, setRemember] = useState(false);
  const [error, setError] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  const message = note.trim() === '' ? undefined : note;
  const send = async (answer: { allow: boolean; remember?: boolean } | { optionId: string }): Promise<void> => {
    setBusy(true);
    const response = await respond({ storyId, requestId: approval.requestId, message, ...answer });
    setBusy(false);
    setError(errorMessage(response.error));
    if (response.data) agents.apply(response.data.respondToApproval);
  };
  const allowOrDeny = isAllowOrDeny(approval.options);
  const always = approval.options.find((option) => option.kind === 'allow_always');
  return (
    <section className="approval" aria-label={`Approval: ${approval.tool}`}>
      <h2>
        The agent asks to use <span className="mono">{approval.tool}</span>{' '}
        <small>since {formatTime(approval.requestedAt)}</small>
      </h2>
      <pre className="json">{JSON.stringify(approval.input, null, 2)}</pre>
      <Field label="Note for the agent">
        {(id) => (
          <input id={id} value={note} placeholder="Optional; a denial tells the model this" onChange={(event) => setNote(event.target.value)} />
        )}
      </Field>
      {allowOrDeny ? (
        <>
          {(always !== undefined || approval.options.length === 0) && (
            <label className="inline" title={always?.name}>
              <input type="checkbox" checked={remember} onChange={(event) => setRemember(event.target.checked)} /> Don't ask again
              in this run (the agent's own suggestion)
            </label>
          )}
          <div className="buttons">
            <button
              type="button"
              className="allow"
              disabled={busy}
              onClick={() => void send({ allow: true, remember: remember ? true : undefined })}
            >
              Allow
            </button>
            <button type="button" className="deny" disabled={busy} onClick={() => void send({ allow: false })}>
              Deny
            </button>
          </div>
        </>
      ) : (
        <div className="buttons" role="group" aria-label="Answers the agent offers">
          {approval.options.map((option) => (
            <button
              key={option.id}
              type="button"
              className={`${allows(option) ? 'allow' : 'deny'} option-${option.kind.replaceAll('_', '-')}`}
              title={option.kind.replace('_', ' ')}
              disabled={busy}
              onClick={() => void send({ optionId: option.id })}
            >
              {option.name}
            </button>
          ))}
        </div>
      )}
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
    </section>
  );
}

function Runs({ agent }: { agent: Agent }) {
  const costs = agent.runs.map((run) => run.costUsd).filter((cost): cost is number => cost !== null);
  return (
    <section aria-label="Runs">
      <h2>Runs</h2>
      <table className="runs">
        <thead>
          <tr>
            <th scope="col">#</th>
            <th scope="col">Status</th>
            <th scope="col">Agent</th>
            <th scope="col">Started</th>
            <th scope="col" className="number">
              Cost
            </th>
            <th scope="col">Prompt</th>
          </tr>
        </thead>
        <tbody>
          {agent.runs.map((run) => (
            <tr key={run.number}>
              <td>{run.number}</td>
              <td>
                <StatusBadge status={run.status} />
              </td>
              <td>{run.agent}</td>
              <td className="time">{formatTime(run.startedAt)}</td>
              <td className="number">{formatCost(run.costUsd)}</td>
              <td className="run-prompt">
                <RunPrompt run={run} />
              </td>
            </tr>
          ))}
        </tbody>
        {costs.length > 0 && (
          <tfoot>
            <tr>
              <td colSpan={4}>Total</td>
              <td className="number">{formatCost(costs.reduce((a, b) => a + b, 0))}</td>
              <td />
            </tr>
          </tfoot>
        )}
      </table>
    </section>
  );
}

/** The prompt a run's agent got: short ones whole, longer ones by their first line, opened on a click. */
function RunPrompt({ run }: { run: Run }) {
  const prompt = run.renderedPrompt ?? run.prompt;
  if (prompt === null) return <span className="muted">the configured prompt</span>;
  const line = firstLine(prompt, 80);
  // A client's text, isolated (see StoryRow): a block of its own direction, else a <bdi>.
  if (line === prompt.trim()) return <bdi className="prompt-text">{prompt.trim()}</bdi>;
  return (
    <details>
      <summary>
        <bdi>{line}</bdi>
      </summary>
      <div className="prompt-text" dir="auto">
        {prompt}
      </div>
    </details>
  );
}
