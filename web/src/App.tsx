import { useEffect, useState } from 'react';
import { Provider } from 'urql';
import { type Agents, useAgents } from './agents.js';
import { formatCost, STATUS_MEANING } from './api.js';
import { type Connection, type ConnectionState, connect, useConnectionState } from './client.js';
import { Field } from './Field.js';
import { type NotificationPermissionState, useNotificationPermission, useStoryNotifications, useWaitingTitle } from './notifications.js';
import { navigate, useRoute } from './router.js';
import { type StatusFilter, StoryList } from './StoryList.js';
import { StoryView } from './StoryView.js';
import { forgetToken, saveToken, takeToken } from './token.js';

/** The page: asks for the token if it has none, else shows the stories or one story. */
export function App() {
  const [token, setToken] = useState(takeToken);
  const [refused, setRefused] = useState(false);
  const [connection, setConnection] = useState<Connection | undefined>();
  // One connection per token, ended with it (and made again if React mounts twice).
  useEffect(() => {
    if (!token) return;
    const opened = connect(token);
    setConnection(opened);
    return () => {
      opened.dispose();
      setConnection(undefined);
    };
  }, [token]);

  if (!token) {
    return (
      <TokenForm
        refused={refused}
        onToken={(value) => {
          saveToken(value);
          setToken(value);
        }}
      />
    );
  }
  if (!connection) return null;
  return (
    <Provider value={connection.urql}>
      <Dashboard
        connection={connection}
        onUnauthorized={() => {
          forgetToken();
          setRefused(true);
          setToken(undefined);
        }}
      />
    </Provider>
  );
}

function Dashboard({ connection, onUnauthorized }: { connection: Connection; onUnauthorized: () => void }) {
  const state = useConnectionState(connection);
  const agents = useAgents(connection);
  const route = useRoute();
  const notifications = useNotificationPermission();
  useStoryNotifications(agents);
  useWaitingTitle(agents);
  // Kept here, so that going back from a story finds the list as it was left.
  const [filter, setFilter] = useState<StatusFilter>('all');
  useEffect(() => {
    if (state === 'unauthorized') onUnauthorized();
  }, [state, onUnauthorized]);

  return (
    <div className="page">
      <header className="top">
        <a
          className="brand"
          href="/"
          onClick={(event) => {
            event.preventDefault();
            navigate('/');
          }}
        >
          agent-pool
        </a>
        <ProjectSummary agents={agents} />
        <EnableNotifications permission={notifications.permission} onClick={notifications.ask} />
        <ConnectionBadge state={state} agents={agents} />
      </header>
      <main>
        {agents.error && <p className="error" role="alert">{agents.error}</p>}
        {route.page === 'story' ? (
          <StoryView connection={connection} storyId={route.storyId} agents={agents} />
        ) : (
          <StoryList agents={agents} filter={filter} onFilter={setFilter} />
        )}
      </main>
    </div>
  );
}

/**
 * Asks the browser for leave to notify, once the person clicks: shown only while the
 * browser has not been told (not once they allowed or blocked it, nor without the API).
 */
function EnableNotifications({ permission, onClick }: { permission: NotificationPermissionState; onClick: () => void }) {
  if (permission !== 'default') return null;
  return (
    <button
      type="button"
      className="enable-notifications"
      title="Get a notification when a story needs you or ends while this page is in the background"
      onClick={onClick}
    >
      Enable notifications
    </button>
  );
}

/**
 * What the page's connection is worth: "Live" only while the socket is up, the agents
 * query has answered on it and the updates flow; "Loading…" while a (re)connected page
 * still reads the agents; "Not live" when reading them failed or the updates ended.
 */
function ConnectionBadge({ state, agents }: { state: ConnectionState; agents: Agents }) {
  const [label, className, title] =
    state === 'unauthorized'
      ? ['Token refused', 'connection-unauthorized', 'The server refused the token']
      : state === 'reconnecting'
        ? ['Reconnecting…', 'connection-reconnecting', 'The connection dropped; the page shows what it knew and reconnects by itself']
        : state === 'connecting'
          ? ['Connecting…', 'connection-connecting', 'Connecting to agent-pool']
          : agents.live
            ? ['Live', 'connection-connected', 'Connected: the page shows every change as it happens']
            : agents.error !== undefined
              ? ['Not live', 'connection-unauthorized', agents.error]
              : ['Loading…', 'connection-connecting', 'Connected; reading the stories'];
  return (
    <span className={`connection ${className}`} role="status" aria-label="Connection" title={title}>
      {label}
    </span>
  );
}

function ProjectSummary({ agents }: { agents: Agents }) {
  // Before the first answer the page knows no story: "0 stories" would be untrue.
  if (!agents.loaded) return <p className="summary">{agents.error ? '' : 'Loading…'}</p>;
  // As the filters count them: the statuses the badges show (STATUS_MEANING).
  const running = agents.agents.filter((agent) => agent.status === 'RUNNING').length;
  const pending = agents.agents.filter((agent) => agent.status === 'PENDING').length;
  const waiting = agents.agents.filter((agent) => agent.waitingFor === 'APPROVAL').length;
  const runs = agents.agents.reduce((sum, agent) => sum + agent.runs.length, 0);
  const costs = agents.agents.map((agent) => agent.costUsd).filter((cost): cost is number => cost !== null);
  return (
    <p className="summary">
      {count(agents.agents.length, 'story', 'stories')} · <span title={STATUS_MEANING.RUNNING}>{running} running</span>
      {pending > 0 && (
        <>
          {' · '}
          <span title={STATUS_MEANING.PENDING}>{pending} pending</span>
        </>
      )}
      {' · '}
      {count(runs, 'run', 'runs')}
      {costs.length > 0 && (
        <>
          {' · '}
          <span title="The cost the agents reported, summed over every run">{formatCost(costs.reduce((a, b) => a + b, 0))} in total</span>
        </>
      )}
      {waiting > 0 && (
        <>
          {' '}
          <span className="badge badge-approval">{waiting} waiting for approval</span>
        </>
      )}
    </p>
  );
}

function count(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}

function TokenForm({ refused, onToken }: { refused: boolean; onToken: (token: string) => void }) {
  const [value, setValue] = useState('');
  return (
    <main className="token-page">
      <h1>agent-pool</h1>
      <p>
        This page needs the server's token. Open the address agent-pool printed (it ends in <code>?token=…</code>), or
        paste the token from <code>.agent-pool/token</code>.
      </p>
      <form
        onSubmit={(event) => {
          event.preventDefault();
          if (value.trim()) onToken(value.trim());
        }}
      >
        <Field label="Token">
          {(id) => <input id={id} type="password" autoComplete="off" value={value} onChange={(event) => setValue(event.target.value)} />}
        </Field>
        <button type="submit">Connect</button>
      </form>
      {refused && (
        <p className="error" role="alert">
          The server refused that token.
        </p>
      )}
    </main>
  );
}
