import { useState } from 'react';
import { useMutation } from 'urql';
import type { Agents } from './agents.js';
import { type Agent, errorMessage, formatCost, formatTime, START_AGENT } from './api.js';
import { navigate, storyPath } from './router.js';
import { StatusBadge, WaitingBadge } from './badges.js';
import { Field } from './Field.js';

/** The list of every story, live, and the form that starts one. */
export function StoryList({ agents }: { agents: Agents }) {
  return (
    <>
      <StartForm agents={agents} />
      <section aria-label="Stories">
        <h2>Stories</h2>
        {agents.loaded && agents.agents.length === 0 ? (
          <p className="empty">No story yet: start one above.</p>
        ) : (
          <table className="stories">
            <thead>
              <tr>
                <th scope="col">Story</th>
                <th scope="col">Status</th>
                <th scope="col">Agent</th>
                <th scope="col">Branch</th>
                <th scope="col">Runs</th>
                <th scope="col">Cost</th>
                <th scope="col">Last activity</th>
              </tr>
            </thead>
            <tbody>
              {agents.agents.map((agent) => (
                <StoryRow key={agent.storyId} agent={agent} />
              ))}
            </tbody>
          </table>
        )}
      </section>
    </>
  );
}

function StoryRow({ agent }: { agent: Agent }) {
  const path = storyPath(agent.storyId);
  return (
    <tr className="story-row" onClick={() => navigate(path)}>
      <td>
        <a
          href={path}
          onClick={(event) => {
            event.preventDefault();
            navigate(path);
          }}
        >
          {agent.storyId}
        </a>
      </td>
      <td>
        <StatusBadge status={agent.status} /> <WaitingBadge waitingFor={agent.waitingFor} />
      </td>
      <td>{agent.agent ?? '–'}</td>
      <td className="mono">{agent.branch ?? '–'}</td>
      <td>{agent.runs.length}</td>
      <td>{formatCost(agent.costUsd)}</td>
      <td>{formatTime(agent.lastEventAt)}</td>
    </tr>
  );
}

function StartForm({ agents }: { agents: Agents }) {
  const [storyId, setStoryId] = useState('');
  const [prompt, setPrompt] = useState('');
  const [profile, setProfile] = useState('');
  const [result, start] = useMutation<{ startAgent: Agent }>(START_AGENT);
  const [error, setError] = useState<string | undefined>();
  const defaultProfile = agents.profiles.find((item) => item.isDefault)?.name;

  return (
    <form
      className="start"
      onSubmit={(event) => {
        event.preventDefault();
        void start({
          storyId: storyId.trim(),
          prompt: prompt.trim() === '' ? undefined : prompt,
          agent: profile === '' ? undefined : profile,
        }).then((response) => {
          if (response.error) {
            setError(errorMessage(response.error));
            return;
          }
          setError(undefined);
          agents.apply(response.data!.startAgent);
          setStoryId('');
          setPrompt('');
        });
      }}
    >
      <h2>New run</h2>
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
      {agents.profiles.length > 1 && (
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
      )}
      <button type="submit" disabled={result.fetching}>
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
