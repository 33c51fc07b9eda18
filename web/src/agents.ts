import { useEffect, useState } from 'react';
import { AGENT_UPDATES, AGENTS, type Agent, type AgentProfile, queryText } from './api.js';
import type { Connection } from './client.js';
import type { ResultOf } from './graphql.js';

/** Every story's agent as the page knows it, live. */
export interface Agents {
  /** The stories that are not archived, in the order they were first started. */
  agents: readonly Agent[];
  /** A story's agent as the page knows it, archived or not (an update tells of its archiving). */
  story(storyId: string): Agent | undefined;
  profiles: readonly AgentProfile[];
  /** Whether the first answer of the agents query has arrived: before it, the page knows nothing yet. */
  loaded: boolean;
  /**
   * Whether the list is live: the agents query answered on the connection as it is now
   * (not only before it dropped), and the updates flow. False while a reconnected page
   * reads the agents again, and once the updates ended with an error.
   */
  live: boolean;
  error: string | undefined;
  /** Takes an agent a mutation returned, so the page shows it before its update arrives. */
  apply(agent: Agent): void;
}

const UPDATES_ENDED = 'The live updates of the agents ended; reload the page.';

/**
 * The newer of two states of one story's agent. Every change of an agent's state comes
 * with an event of its story, so its lastSeq orders the states: a query result or a
 * mutation's answer that was computed before an update already applied never undoes it.
 */
function newer(known: Agent | undefined, next: Agent): Agent {
  return known !== undefined && known.lastSeq > next.lastSeq ? known : next;
}

/** `agents` with `next` applied, unless it is older than what is known of its story. */
function withAgent(agents: ReadonlyMap<string, Agent>, next: Agent): ReadonlyMap<string, Agent> {
  return new Map(agents).set(next.storyId, newer(agents.get(next.storyId), next));
}

/**
 * The agents list, kept live by `agentUpdates` (pushed, never polled): the query gives
 * the state, and each update replaces its story's agent. Updates are not replayed, so
 * after a dropped connection the query runs again.
 */
export function useAgents(connection: Connection): Agents {
  const [byStory, setByStory] = useState<ReadonlyMap<string, Agent>>(new Map());
  const [profiles, setProfiles] = useState<readonly AgentProfile[]>([]);
  const [loaded, setLoaded] = useState(false);
  const [live, setLive] = useState(false);
  const [error, setError] = useState<string | undefined>();

  // setByStory never changes, so neither does what apply does.
  const apply = (agent: Agent): void => setByStory((current) => withAgent(current, agent));

  useEffect(() => {
    let updatesEnded = false;
    /** Counts the loads, so that only the answer of the newest one makes the list live. */
    let loads = 0;
    const load = (): void => {
      const mine = ++loads;
      setLive(false);
      void connection.urql
        .query(AGENTS, {}, { requestPolicy: 'network-only' })
        .toPromise()
        .then((result) => {
          if (result.error) {
            setError(result.error.message);
            return;
          }
          setError(updatesEnded ? UPDATES_ENDED : undefined);
          if (mine === loads && !updatesEnded) setLive(true);
          const fetched = result.data!.agents;
          setByStory((current) => {
            const next = new Map(current);
            for (const agent of fetched) next.set(agent.storyId, newer(current.get(agent.storyId), agent));
            return next;
          });
          setProfiles(result.data!.agentProfiles);
          setLoaded(true);
        });
    };
    const updates = connection.ws.subscribe<ResultOf<typeof AGENT_UPDATES>>(
      { query: queryText(AGENT_UPDATES) },
      {
        next: (result) => {
          if (result.data) apply(result.data.agentUpdates);
        },
        // The list would silently stop being live: say so.
        error: () => {
          updatesEnded = true;
          setLive(false);
          setError(UPDATES_ENDED);
        },
        complete: () => {},
      },
    );
    load();
    const stopListening = connection.subscribe((reconnected) => {
      if (reconnected) load();
      else if (connection.state() !== 'connected') setLive(false);
    });
    return () => {
      updates();
      stopListening();
    };
  }, [connection]);

  return {
    // `agents` leaves archived stories out; an update that archives one must too.
    agents: [...byStory.values()].filter((agent) => !agent.archived),
    story: (storyId) => byStory.get(storyId),
    profiles,
    loaded,
    live,
    error,
    apply,
  };
}
