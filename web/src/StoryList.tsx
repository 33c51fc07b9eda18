import { useState } from 'react';
import { useMutation } from 'urql';
import type { Agents } from './agents.js';
import { type Agent, errorMessage, firstLine, formatCost, formatTime, START_AGENT, STATUS_MEANING } from './api.js';
import { StatusBadge, WaitingBadge } from './badges.js';
import { Field } from './Field.js';
import { navigate, storyPath } from './router.js';

/** Which stories the list shows. */
export type StatusFilter = 'all' | 'running' | 'pending' | 'waiting' | 'completed' | 'failed' | 'stopped';

/**
 * The filters, each with what it counts. "Running" and "Pending" are the statuses the
 * badges show, as the header counts them too (see {@link STATUS_MEANING}).
 */
const FILTERS: ReadonlyArray<{ filter: StatusFilter; label: string; test: (agent: Agent) => boolean; help?: string }> = [
  { filter: 'all', label: 'All', test: () => true },
  { filter: 'running', label: 'Running', test: (agent) => agent.status === 'RUNNING', help: STATUS_MEANING.RUNNING },
  { filter: 'pending', label: 'Pending', test: (agent) => agent.status === 'PENDING', help: STATUS_MEANING.PENDING },
  { filter: 'waiting', label: 'Waiting', test: (agent) => agent.waitingFor !== null, help: 'Waiting for a person: an approval or a message' },
  { filter: 'completed', label: 'Completed', test: (agent) => agent.status === 'COMPLETED' },
  { filter: 'failed', label: 'Failed', test: (agent) => agent.status === 'FAILED' },
  { filter: 'stopped', label: 'Stopped', test: (agent) => agent.status === 'STOPPED' },
];

const EMPTY: Readonly<Record<StatusFilter, string>> = {
  all: 'No story yet: start one above.',
  running: 'No story is running.',
  pending: 'No story is pending.',
  waiting: 'No story waits for a person.',
  completed: 'No story has completed.',
  failed: 'No story has failed.',
  stopped: 'No story was stopped.',
};

/** The list of every story, live, filtered by status, and the form that starts one. */
export function StoryList({
  agents,
  filter,
  onFilter,
}: {
  agents: Agents;
  filter: StatusFilter;
  onFilter: (filter: StatusFilter) => void;
}) {
  const test = FILTERS.find((item) => item.filter === filter)!.test;
  const shown = agents.agents.filter(test);
  return (
    <>
      <StartForm agents={agents} />
      <section aria-label="Stories">
        <div className="list-head">
          <h2>Stories</h2>
          {agents.loaded && (
            <div className="filters" role="group" aria-label="Filter by status">
              {FILTERS.map((item) => {
                const count = agents.agents.filter(item.test).length;
                return (
                  <button
                    key={item.filter}
                    type="button"
                    className={`filter ${count === 0 ? 'filter-none' : ''}`}
                    aria-pressed={filter === item.filter}
                    title={item.help}
                    onClick={() => onFilter(item.filter)}
                  >
                    {item.label} <span className="count">{count}</span>
                  </button>
                );
              })}
            </div>
          )}
        </div>
        {!agents.loaded ? (
          <p className="empty">{agents.error ? '' : 'Loading…'}</p>
        ) : shown.length === 0 ? (
          <p className="empty">{EMPTY[filter]}</p>
        ) : (
          <table className="stories">
            <thead>
              <tr>
                <th scope="col">Story</th>
                <th scope="col">Status</th>
                <th scope="col">Agent</th>
                <th scope="col">Branch</th>
                <th scope="col" className="number">
                  Runs
                </th>
                <th scope="col" className="number">
                  Cost
                </th>
                <th scope="col">Last activity</th>
              </tr>
            </thead>
            <tbody>
              {shown.map((agent) => (
                <StoryRow key={agent.storyId} agent={agent} />
              ))}
            </tbody>
          </table>
        )}
      </section>
    </>
  );
}

/**
 * A story as people tell it apart: its title (else its id) and what it was asked to do.
 * The title and the prompt are a client's text, each isolated in a <bdi>: right-to-left
 * text (or a bidirectional control in a prompt) reorders nothing outside it, the story id
 * beside it least of all.
 */
function StoryRow({ agent }: { agent: Agent }) {
  const path = storyPath(agent.storyId);
  return (
    <tr className="story-row" onClick={() => navigate(path)}>
      <td className="story-cell">
        <a
          href={path}
          onClick={(event) => {
            event.preventDefault();
            navigate(path);
          }}
        >
          {agent.title === null ? agent.storyId : <bdi>{agent.title}</bdi>}
        </a>
        {agent.title !== null && <span className="story-id">{agent.storyId}</span>}
        {agent.prompt !== null && (
          <bdi className="prompt-line" title={agent.prompt}>
            {firstLine(agent.prompt)}
          </bdi>
        )}
      </td>
      <td>
        <StatusBadge status={agent.status} /> <WaitingBadge waitingFor={agent.waitingFor} />
      </td>
      <td>{agent.agent}</td>
      <td className="mono">{agent.branch}</td>
      <td className="number">{agent.runs.length}</td>
      <td className="number">{formatCost(agent.costUsd)}</td>
      <td className="time">{formatTime(agent.lastEventAt)}</td>
    </tr>
  );
}

function StartForm({ agents }: { agents: Agents }) {
  const [storyId, setStoryId] = useState('');
  const [title, setTitle] = useState('');
  const [prompt, setPrompt] = useState('');
  const [profile, setProfile] = useState('');
  const [result, start] = useMutation(START_AGENT);
  const [error, setError] = useState<string | undefined>();
  const defaultProfile = agents.profiles.find((item) => item.isDefault)?.name;

  return (
    <form
      className="start"
      onSubmit={(event) => {
        event.preventDefault();
        const id = storyId.trim();
        void start({
          storyId: id,
          // Omitted, a story started again keeps the title it has.
          title: title.trim() === '' ? undefined : title.trim(),
          prompt: prompt.trim() === '' ? undefined : prompt,
          agent: profile === '' ? undefined : profile,
        }).then((response) => {
          if (response.error || !response.data) {
            setError(errorMessage(response.error));
            return;
          }
          setError(undefined);
          agents.apply(response.data.startAgent);
          setStoryId('');
          setTitle('');
          setPrompt('');
          // The story it started, to watch it.
          navigate(storyPath(response.data.startAgent.storyId));
        });
      }}
    >
      <h2>New run</h2>
      <div className="start-story">
        <Field label="Story">
          {(id) => (
            <input
              id={id}
              name="storyId"
              required
              pattern="[A-Za-z0-9._\-]{1,64}"
              title="1 to 64 of A-Z a-z 0-9 . _ -"
              placeholder="PROJ-142"
              value={storyId}
              onChange={(event) => setStoryId(event.target.value)}
            />
          )}
        </Field>
      </div>
      <div className="start-title">
        <Field label="Title">
          {(id) => (
            <input
              id={id}
              name="title"
              placeholder="Optional: what people call the story; empty keeps the one it has"
              value={title}
              onChange={(event) => setTitle(event.target.value)}
            />
          )}
        </Field>
      </div>
      {agents.profiles.length > 1 && (
        <div className="start-agent">
          <Field label="Agent">
            {(id) => (
              <select id={id} name="agent" value={profile} onChange={(event) => setProfile(event.target.value)}>
                <option value="">{`The story's own, else ${defaultProfile ?? 'the default'}`}</option>
                {agents.profiles.map((item) => (
                  <option key={item.name} value={item.name}>
                    {item.name} ({item.kind}
                    {item.permissionMode !== 'bypassPermissions' && item.kind === 'claude' ? `, ${item.permissionMode}` : ''})
                  </option>
                ))}
              </select>
            )}
          </Field>
        </div>
      )}
      <div className="start-prompt">
        <Field label="Prompt">
          {(id) => (
            <textarea
              id={id}
              name="prompt"
              rows={3}
              placeholder="Empty: the profile's prompt of agent-pool.toml"
              value={prompt}
              onChange={(event) => setPrompt(event.target.value)}
            />
          )}
        </Field>
      </div>
      <button type="submit" className="start-submit" disabled={result.fetching}>
        Start
      </button>
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
    </form>
  );
}
