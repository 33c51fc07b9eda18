import { useEffect, useState } from 'react';
import { AGENT_EVENTS, type AgentEvent, type AgentEventsVariables, queryText } from './api.js';
import type { Connection } from './client.js';
import type { ResultOf } from './graphql.js';

/** What the Events region knows of a story's history. */
export interface StoryEvents {
  /** Every event received, in seq order, each once. */
  events: readonly AgentEvent[];
  /** The oldest seq the server still keeps, when retention dropped older ones. */
  truncatedBefore: number | undefined;
  error: string | undefined;
}

interface GraphQLErrorShape {
  message: string;
  extensions?: { code?: string; firstSeq?: number };
}

/**
 * A story's events: the stored ones, then live ones. The subscription's variables are
 * the object graphql-ws sends again when it reconnects, so `afterSeq` is kept at the last
 * seq received: after a dropped connection the server replays from there, with no gap
 * and no duplicate (and an event with an old seq would be dropped here anyway). A reload
 * starts from the beginning. Renders at most once per animation frame during a flood.
 */
export function useStoryEvents(connection: Connection, storyId: string): StoryEvents {
  const [state, setState] = useState<StoryEvents>({ events: [], truncatedBefore: undefined, error: undefined });

  useEffect(() => {
    const events: AgentEvent[] = [];
    let truncatedBefore: number | undefined;
    let error: string | undefined;
    let frame: number | undefined;
    const publish = (): void => {
      frame = undefined;
      setState({ events: events.slice(), truncatedBefore, error });
    };
    const schedule = (): void => {
      frame ??= requestAnimationFrame(publish);
    };
    setState({ events: [], truncatedBefore: undefined, error: undefined });

    let unsubscribe: () => void = () => {};
    const open = (afterSeq: number): void => {
      const variables = { storyId, afterSeq } satisfies AgentEventsVariables;
      unsubscribe = connection.ws.subscribe<ResultOf<typeof AGENT_EVENTS>>(
        { query: queryText(AGENT_EVENTS), variables },
        {
          next: (result) => {
            const event = result.data?.agentEvents;
            if (!event || event.seq <= variables.afterSeq) return;
            events.push(event);
            variables.afterSeq = event.seq;
            schedule();
          },
          error: (reason) => {
            const errors = Array.isArray(reason) ? (reason as GraphQLErrorShape[]) : [];
            const truncated = errors.find((item) => item.extensions?.code === 'EVENTS_TRUNCATED');
            if (truncated?.extensions?.firstSeq) {
              // Retention dropped the oldest events: show what is kept, and say so.
              truncatedBefore = truncated.extensions.firstSeq;
              open(truncated.extensions.firstSeq - 1);
            } else {
              error = errors[0]?.message ?? 'the event stream ended with an error';
            }
            schedule();
          },
          complete: () => {},
        },
      );
    };
    open(0);
    return () => {
      unsubscribe();
      if (frame !== undefined) cancelAnimationFrame(frame);
    };
  }, [connection, storyId]);

  return state;
}
