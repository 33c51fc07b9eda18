import { useEffect, useLayoutEffect, useRef, useState } from 'react';
import { type CombinedError, type OperationResult, useMutation } from 'urql';
import type { Agents } from './agents.js';
import { type Agent, queryText, type Service, SERVICE_OUTPUT, type ServiceStatus, START_SERVICE, STOP_SERVICE } from './api.js';
import type { Connection } from './client.js';
import type { ResultOf } from './graphql.js';
import { type LandingError, sentence } from './landing-error.js';

/** How many of a service's newest output lines the page asks for first, and keeps. */
const KEPT_LINES = 500;

/**
 * The Services region: the story's dev servers (`[services.NAME]` of agent-pool.toml), each
 * run in its worktree on a port of its own. For each: its status, a link to it, Start or
 * Stop, and its output, live. Shown only for a story that has services (agent-pool.toml
 * configures some); their status changes come with the agent's updates.
 */
export function Services({ connection, agent, agents }: { connection: Connection; agent: Agent; agents: Agents }) {
  if (agent.services.length === 0) return null;
  return (
    <section className="services" aria-label="Services">
      <h2>Services</h2>
      {agent.services.map((service) => (
        <ServiceCard key={service.name} connection={connection} agent={agent} service={service} agents={agents} />
      ))}
    </section>
  );
}

/** Whether a service of this status runs (it can be stopped, and a start leaves it as it is). */
function isRunning(status: ServiceStatus): boolean {
  return status === 'STARTING' || status === 'READY';
}

/**
 * One service. Its buttons are named "Start service NAME" and "Stop service NAME" (their
 * text is only Start or Stop): the story's page has the agent's own Stop button too.
 */
function ServiceCard({ connection, agent, service, agents }: { connection: Connection; agent: Agent; service: Service; agents: Agents }) {
  const [, start] = useMutation(START_SERVICE);
  const [, stop] = useMutation(STOP_SERVICE);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<LandingError | undefined>();
  const output = useServiceOutput(connection, agent.storyId, service.name);
  const { storyId } = agent;
  const { name } = service;
  // The service listens on the machine agent-pool runs on: the host this page came from.
  const url = `http://${window.location.hostname}:${service.port}/`;

  /** Runs Start or Stop, which answer with the agent: shows the answer, or the refusal in words. */
  const act = async (action: 'start' | 'stop', run: () => Promise<OperationResult<Record<string, Agent>>>): Promise<void> => {
    setBusy(true);
    setError(undefined);
    const response = await run();
    setBusy(false);
    const returned = response.data && Object.values(response.data)[0];
    if (returned) agents.apply(returned);
    if (response.error) setError(serviceError(response.error, action, name));
  };

  return (
    <div className="service">
      <h3>
        <span className="mono">{name}</span> <span className={`badge service-${service.status.toLowerCase()}`}>{service.status}</span>
      </h3>
      <div className="service-buttons">
        <a href={url} target="_blank" rel="noopener noreferrer" className="mono">
          {url}
        </a>
        {isRunning(service.status) ? (
          <button type="button" aria-label={`Stop service ${name}`} disabled={busy} onClick={() => void act('stop', () => stop({ storyId, name }))}>
            Stop
          </button>
        ) : (
          <button
            type="button"
            aria-label={`Start service ${name}`}
            disabled={busy || agent.archived}
            title={agent.archived ? 'An archived story has no worktree to run it in: start the story again first' : `Run it in the story's worktree, on port ${service.port}`}
            onClick={() => void act('start', () => start({ storyId, name }))}
          >
            Start
          </button>
        )}
      </div>
      {error && (
        <div className="error" role="alert">
          <p>{error.text}</p>
          {error.text !== error.serverMessage && (
            <details>
              <summary>The server's message</summary>
              <pre>
                {error.code ? `${error.code}: ` : ''}
                {error.serverMessage}
              </pre>
            </details>
          )}
        </div>
      )}
      <OutputLog name={name} lines={output.lines} />
      {output.error && <p className="error">{output.error}</p>}
    </div>
  );
}

/** A refused start or stop as a person reads it, in the Land section's shape (the server's own words kept). */
function serviceError(error: CombinedError, action: 'start' | 'stop', name: string): LandingError {
  const first = error.graphQLErrors[0];
  const serverMessage = first?.message ?? error.message;
  const extensions = (first?.extensions ?? {}) as Record<string, unknown>;
  const code = typeof extensions.code === 'string' ? extensions.code : undefined;
  if (code === 'UNKNOWN_SERVICE') {
    // agent-pool.toml changed since the page last heard of the story.
    const services = Array.isArray(extensions.services) ? extensions.services.join(', ') : '';
    const now = services === '' ? 'it configures no service now' : `its services are now ${services}`;
    return { text: `agent-pool.toml has no service ${name} any more (${now}): reload the page.`, code, serverMessage };
  }
  // The server's messages say what to do (start the story first, widen the range of ports).
  return { text: `Can't ${action} ${name}: ${sentence(serverMessage)}`, code, serverMessage };
}

/**
 * A service's output lines, live while the page shows them: the newest KEPT_LINES first,
 * then each new one (serviceOutput), at most KEPT_LINES kept, rendered at most once per
 * animation frame while a busy server logs. After a dropped connection graphql-ws subscribes
 * again and the newest lines come again: the page starts over with them.
 */
function useServiceOutput(connection: Connection, storyId: string, name: string): { lines: readonly string[]; error: string | undefined } {
  const [state, setState] = useState<{ lines: readonly string[]; error: string | undefined }>({ lines: [], error: undefined });

  useEffect(() => {
    let lines: string[] = [];
    let error: string | undefined;
    let frame: number | undefined;
    const schedule = (): void => {
      frame ??= requestAnimationFrame(() => {
        frame = undefined;
        setState({ lines: lines.slice(), error });
      });
    };
    setState({ lines: [], error: undefined });
    const unsubscribe = connection.ws.subscribe<ResultOf<typeof SERVICE_OUTPUT>>(
      { query: queryText(SERVICE_OUTPUT), variables: { storyId, name, last: KEPT_LINES } },
      {
        next: (result) => {
          const line = result.data?.serviceOutput;
          if (line === undefined) return;
          lines.push(line);
          if (lines.length > KEPT_LINES) lines.shift();
          schedule();
        },
        error: (reason) => {
          const errors = Array.isArray(reason) ? (reason as Array<{ message: string }>) : [];
          error = errors[0]?.message ?? 'the output stream ended with an error';
          schedule();
        },
        complete: () => {},
      },
    );
    const stopListening = connection.subscribe((reconnected) => {
      if (!reconnected) return;
      lines = [];
      schedule();
    });
    return () => {
      unsubscribe();
      stopListening();
      if (frame !== undefined) cancelAnimationFrame(frame);
    };
  }, [connection, storyId, name]);

  return state;
}

/** The output, oldest line first; it follows the end while scrolled to the bottom, and stays where you scrolled otherwise. */
function OutputLog({ name, lines }: { name: string; lines: readonly string[] }) {
  const log = useRef<HTMLPreElement>(null);
  const atEnd = useRef(true);
  useLayoutEffect(() => {
    if (atEnd.current && log.current) log.current.scrollTop = log.current.scrollHeight;
  }, [lines]);
  return (
    <pre
      ref={log}
      className="service-output"
      role="log"
      aria-label={`Output of ${name}`}
      // Scrollable, so reachable by keyboard.
      tabIndex={0}
      onScroll={(event) => {
        const element = event.currentTarget;
        atEnd.current = element.scrollHeight - element.scrollTop - element.clientHeight < 8;
      }}
    >
      {lines.join('\n')}
    </pre>
  );
}
