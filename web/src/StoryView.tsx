import { useState } from 'react';
import { type OperationResult, useMutation } from 'urql';
import type { Agents } from './agents.js';
import {
  type Agent,
  type Approval,
  CONTINUE_AGENT,
  errorMessage,
  formatCost,
  formatTime,
  INTERRUPT_AGENT,
  isActive,
  RESPOND_TO_APPROVAL,
  SEND_MESSAGE,
  STOP_AGENT,
} from './api.js';
import { StatusBadge, WaitingBadge } from './badges.js';
import { Changes } from './Changes.js';
import type { Connection } from './client.js';
import { EventList } from './EventList.js';
import { Field } from './Field.js';
import { navigate } from './router.js';

/** One story: its state and actions, its approvals, its events as they happen, its work. */
export function StoryView({ connection, storyId, agents }: { connection: Connection; storyId: string; agents: Agents }) {
  const agent = agents.agents.find((item) => item.storyId === storyId);
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
      <h1>
        {storyId} {agent && <StatusBadge status={agent.status} />} {agent && <WaitingBadge waitingFor={agent.waitingFor} />}
      </h1>
      {!agent ? (
        <p className="empty">{agents.loaded ? `Story ${storyId} was never started.` : 'Loading…'}</p>
      ) : (
        <>
          <Facts agent={agent} />
          <Actions agent={agent} agents={agents} />
          {agent.pendingApprovals.map((approval) => (
            <ApprovalCard key={approval.requestId} storyId={storyId} approval={approval} agents={agents} />
          ))}
        </>
      )}
      <div className="story-columns">
        <EventList connection={connection} storyId={storyId} />
        <div className="side">
          {agent && <Runs agent={agent} />}
          <Changes storyId={storyId} version={`${agent?.status}:${agent?.lastSeq}`} />
        </div>
      </div>
    </div>
  );
}

function Facts({ agent }: { agent: Agent }) {
  return (
    <dl className="facts">
      <dt>Agent</dt>
      <dd>{agent.agent ?? '–'}</dd>
      <dt>Branch</dt>
      <dd className="mono">{agent.branch ?? '–'}</dd>
      <dt>Cost</dt>
      <dd>{formatCost(agent.costUsd)}</dd>
      <dt>Session</dt>
      <dd className="mono">{agent.sessionId ?? '–'}</dd>
      {agent.error && (
        <>
          <dt>Error</dt>
          <dd className="error">{agent.error}</dd>
        </>
      )}
    </dl>
  );
}

/** Stop, interrupt, and a message: a new turn while it runs, a follow-up once it ended. */
function Actions({ agent, agents }: { agent: Agent; agents: Agents }) {
  const [, stop] = useMutation<{ stopAgent: Agent }>(STOP_AGENT);
  const [, interrupt] = useMutation<{ interruptAgent: Agent }>(INTERRUPT_AGENT);
  const [, sendMessage] = useMutation<{ sendMessage: Agent }>(SEND_MESSAGE);
  const [, continueAgent] = useMutation<{ continueAgent: Agent }>(CONTINUE_AGENT);
  const [text, setText] = useState('');
  const [error, setError] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  const active = isActive(agent.status);
  const live = active && agent.interactive;
  // A running agent without a control channel takes no message until it ends.
  const canSend = live || !active;

  /** Runs a mutation that answers with the agent, and shows the answer or the error. */
  const act = async (run: () => Promise<OperationResult<Record<string, Agent>>>): Promise<void> => {
    setBusy(true);
    const response = await run();
    setBusy(false);
    setError(errorMessage(response.error));
    const returned = response.data && Object.values(response.data)[0];
    if (returned) agents.apply(returned);
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
          if (text.trim() === '') return;
          const message = text;
          void act(async () => {
            const response = live
              ? await sendMessage({ storyId: agent.storyId, text: message })
              : await continueAgent({ storyId: agent.storyId, prompt: message });
            if (!response.error) setText('');
            return response;
          });
        }}
      >
        <Field label="Message">
          {(id) => (
            <textarea
              id={id}
              rows={2}
              value={text}
              placeholder={live ? 'A new turn in the live session' : active ? 'Takes messages once it has ended' : 'A follow-up that resumes the session'}
              onChange={(event) => setText(event.target.value)}
            />
          )}
        </Field>
        <button type="submit" disabled={!canSend || busy}>
          Send
        </button>
      </form>
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
    </section>
  );
}

/** A tool call that waits for a person: what it would do, and Allow / Deny. */
function ApprovalCard({ storyId, approval, agents }: { storyId: string; approval: Approval; agents: Agents }) {
  const [, respond] = useMutation<{ respondToApproval: Agent }>(RESPOND_TO_APPROVAL);
  const [note, setNote] = useState('');
  const [remember, setRemember] = useState(false);
  const [error, setError] = useState<string | undefined>();
  const answer = async (allow: boolean): Promise<void> => {
    const response = await respond({
      storyId,
      requestId: approval.requestId,
      allow,
      message: note.trim() === '' ? undefined : note,
      remember: allow && remember ? true : undefined,
    });
    setError(errorMessage(response.error));
    if (response.data) agents.apply(response.data.respondToApproval);
  };
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
      <label className="inline">
        <input type="checkbox" checked={remember} onChange={(event) => setRemember(event.target.checked)} /> Don't ask again in
        this run (the agent's own suggestion)
      </label>
      <div className="buttons">
        <button type="button" className="allow" onClick={() => void answer(true)}>
          Allow
        </button>
        <button type="button" className="deny" onClick={() => void answer(false)}>
          Deny
        </button>
      </div>
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
    </section>
  );
}

function Runs({ agent }: { agent: Agent }) {
  const total = agent.runs.reduce((sum, run) => sum + (run.costUsd ?? 0), 0);
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
            <th scope="col">Cost</th>
          </tr>
        </thead>
        <tbody>
          {agent.runs.map((run) => (
            <tr key={run.number} title={run.prompt ?? 'the configured prompt'}>
              <td>{run.number}</td>
              <td>
                <StatusBadge status={run.status} />
              </td>
              <td>{run.agent ?? '–'}</td>
              <td>{formatTime(run.startedAt)}</td>
              <td>{formatCost(run.costUsd)}</td>
            </tr>
          ))}
        </tbody>
        <tfoot>
          <tr>
            <td colSpan={4}>Total</td>
            <td>{agent.runs.some((run) => run.costUsd !== null) ? formatCost(total) : '–'}</td>
          </tr>
        </tfoot>
      </table>
    </section>
  );
}
