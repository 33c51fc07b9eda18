import { type execute, GraphQLError, type subscribe } from 'graphql';
import type { ServerOptions } from 'graphql-ws';
import type { YogaServerInstance } from 'graphql-yoga';
import type { Extra } from './graphql-ws-server.js';

/** What each operation's envelop gives `execute` and `subscribe`, passed on as the root value. */
interface EnvelopedRoot {
  execute: typeof execute;
  subscribe: typeof subscribe;
}

/**
 * The most operations (subscriptions and queries in flight) one WebSocket may hold at once;
 * one more is refused with an error of its own, and the others go on. The dashboard holds
 * three or four.
 * @default 100
 */
export const MAX_OPERATIONS_PER_SOCKET = 100;

function asErrors(error: unknown): GraphQLError[] {
  return [error instanceof GraphQLError ? error : new GraphQLError(error instanceof Error ? error.message : String(error))];
}

/**
 * The graphql-ws options that run every WebSocket operation through yoga's envelop
 * (yoga's recipe for graphql-ws), so that yoga's plugins (error masking, operation limits,
 * the context) apply to WebSocket operations as they do over HTTP. An operation that does
 * not parse, fails validation or breaks a limit gets its errors, as over HTTP, and the
 * socket's other operations go on; so does one over {@link MAX_OPERATIONS_PER_SOCKET}.
 * The context gets the socket's `signal`, aborted when it closes.
 */
export function envelopedOperations<
  P extends Record<string, unknown> | undefined,
  // yoga's own bounds: an interface such as SchemaContext is no Record<string, unknown>.
  TServerContext extends Record<string, any>,
  TUserContext extends Record<string, any>,
>(yoga: YogaServerInstance<TServerContext, TUserContext>): Pick<ServerOptions<P, Extra>, 'onSubscribe' | 'execute' | 'subscribe'> {
  return {
    onSubscribe: async (ctx, _id, params) => {
      // graphql-ws has already counted this one.
      const operations = Object.keys(ctx.subscriptions).length;
      if (operations > MAX_OPERATIONS_PER_SOCKET) {
        return [
          new GraphQLError(
            `one WebSocket may hold at most ${MAX_OPERATIONS_PER_SOCKET} operations at once: complete some before starting more, or open another connection`,
            { extensions: { code: 'TOO_MANY_OPERATIONS' } },
          ),
        ];
      }
      const { schema, execute, subscribe, contextFactory, parse, validate } = yoga.getEnveloped({
        ...ctx,
        req: ctx.extra.request,
        socket: ctx.extra.socket,
        signal: ctx.extra.signal,
        params,
      });
      let document;
      try {
        document = parse(params.query);
      } catch (error) {
        return asErrors(error);
      }
      try {
        // graphql-armor's limits throw their refusal from here.
        const errors = validate(schema, document);
        if (errors.length > 0) return [...errors];
      } catch (error) {
        return asErrors(error);
      }
      const rootValue: EnvelopedRoot = { execute, subscribe };
      return {
        schema,
        operationName: params.operationName,
        document,
        variableValues: params.variables,
        contextValue: await contextFactory(),
        rootValue,
      };
    },
    execute: (args) => (args.rootValue as EnvelopedRoot).execute(args),
    subscribe: (args) => (args.rootValue as EnvelopedRoot).subscribe(args),
  };
}
