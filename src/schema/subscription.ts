import { AgentPoolError } from '../errors.js';
import type { AgentEvent } from '../pool/events.js';
import { AgentRef } from './agent.js';
import { AgentEventRef } from './agent-event.js';
import { builder } from './builder.js';

/**
 * The pool's event reader, as a subscription source. An error the reader ends with (such
 * as EVENTS_TRUNCATED) becomes one last item that the field's resolver throws, so the
 * client receives it as a GraphQL error with its code before the subscription completes,
 * rather than as a broken connection. `return()` goes straight to the reader, so a client
 * that leaves releases it at once.
 */
function endingWithError(events: AsyncIterator<AgentEvent>): AsyncIterableIterator<AgentEvent | AgentPoolError> {
  let failed = false;
  const iterator: AsyncIterableIterator<AgentEvent | AgentPoolError> = {
    [Symbol.asyncIterator]: () => iterator,
    async next() {
      if (failed) return { done: true, value: undefined };
      try {
        return await events.next();
      } catch (error) {
        if (!(error instanceof AgentPoolError)) throw error;
        failed = true;
        return { done: false, value: error };
      }
    },
    async return() {
      await events.return?.();
      return { done: true, value: undefined };
    },
  };
  return iterator;
}

builder.subscriptionType({
  description: 'Live events and agents.',
  fields: (t) => ({
    agentUpdates: t.field({
      type: AgentRef,
      description:
        'Every story\'s agent whenever its status, run, sessionId, cost, pendingApprovals or waitingFor change (not per ' +
        'event: while events flow, at most once a second, for lastSeq and lastEventAt). A slow client gets each story\'s ' +
        'newest state, never an outdated one last. Nothing is replayed: query agents first, then apply updates.',
      subscribe: (_root, _args, { pool }) => pool.updates(),
      resolve: (agent) => agent,
    }),
    serviceOutput: t.string({
      description:
        'A story\'s service\'s output as it comes, one line each: its newest `last` lines first, then each new one, across ' +
        'its stops and starts. A client that falls 1000 lines behind skips the oldest, with a line saying how many.',
      args: {
        storyId: t.arg.id({ required: true, description: 'The story\'s id.' }),
        name: t.arg.string({ required: true, description: 'The service\'s name: [services.NAME].' }),
        last: t.arg.int({ defaultValue: 100, description: 'How many of its kept lines come first (0 to 1000; clamped).' }),
      },
      subscribe: (_root, args, { pool }) => pool.serviceOutput(String(args.storyId), args.name, Math.min(Math.max(args.last ?? 100, 0), 1000)),
      resolve: (line: string) => line,
    }),
    agentEvents: t.field({
      type: AgentEventRef,
      description:
        'A story\'s events: first the stored ones with seq > afterSeq (all when omitted), then live ones, with no gap ' +
        'and no duplicate. May be opened before the story has ever started; stays open across runs. Ends with ' +
        'EVENTS_TRUNCATED (extensions.firstSeq: the oldest kept) when retention has dropped events it asks for.',
      args: {
        storyId: t.arg.id({ required: true, description: 'The story\'s id.' }),
        afterSeq: t.arg.int({ description: 'Only events after this seq; a negative value counts as 0.' }),
      },
      subscribe: (_root, args, { pool }) => endingWithError(pool.events(String(args.storyId), args.afterSeq ?? 0)),
      resolve: (event) => {
        if (event instanceof AgentPoolError) throw event;
        return event;
      },
    }),
  }),
});
