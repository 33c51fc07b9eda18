import { useEffect, useState } from 'react';
import { AGENT_UPDATES, AGENTS, type Agent, type AgentProfile } from './api.js';
import type { Connection } from './client.js';

/** Every story's agent as the page knows it, live. */
export interface Agents {
  /** In the order stories were first started. */
  agents: readonly Agent[];
  profiles: readonly AgentProfile[];
  loaded: boolean;
  error: string | undefined;
  /** Takes an agent a mutation returned, so the page shows it before its update arrives. */
  apply(agent: Agent): void;
}

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
  const [error, setError] = useState<string | undefined>();

  // setByStory never changes, so neither does what apply does.
  const apply = (agent: Agent): void => setByStory((current) => withAgent(current, agent));

  useEffect(() => {
    const load = (): void => {
      void connection.urql
        .query<{ agents: Agent[]; agentProfiles: AgentProfile[] }>(AGENTS, {}, { requestPolicy: 'network-only' })
        .toPromise()
        .then((result) => {
          if (result.error) {
            setError(result.error.message);
            return;
          }
          setError(undefined);
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
    const updates = connection.ws.subscribe<{ agentUpdates: Agent }>(
      { query: AGENT_UPDATES },
      {
        next: (result) => {
          if (result.data) apply(result.data.agentUpdates);
        },
        // The list would silently stop being live: say so.
        error: () => setError('The live updates of the agents ended; reload the page.'),
        complete: () => {},
      },
    );
    load();
    const stopListening = connection.subscribe((reconnected) => {
      if (reconnected) load();
    });
    return () => {
      updates();
      stopListening();
    };
  }, [connection]);

  return {
    agents: [...byStory.values()],
    profiles,
    loaded,
    error,
    apply,
  };
}
