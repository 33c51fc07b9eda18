import { type execute, GraphQLError, type subscribe } from 'graphql';
import type { ServerOptions } from 'graphql-ws';
import type { Extra } from 'graphql-ws/use/ws';
import type { YogaServerInstance } from 'graphql-yoga';

/** What each operation's envelop gives `execute` and `subscribe`, passed on as the root value. */
interface EnvelopedRoot {
  execute: typeof execute;
  subscribe: typeof subscribe;
}

/**
 * The graphql-ws options that run every WebSocket operation through yoga's envelop
 * (yoga's recipe for graphql-ws), so that yoga's plugins (error masking, operation limits,
 * the context) apply to WebSocket operations as they do over HTTP. A query that does not
 * parse gets its syntax error, as over HTTP.
 */
export function envelopedOperations<
  P extends Record<string, unknown> | undefined,
  // yoga's own bounds: an interface such as SchemaContext is no Record<string, unknown>.
  TServerContext extends Record<string, any>,
  TUserContext extends Record<string, any>,
>(yoga: YogaServerInstance<TServerContext, TUserContext>): Pick<ServerOptions<P, Extra>, 'onSubscribe' | 'execute' | 'subscribe'> {
  return {
    onSubscribe: async (ctx, _id, params) => {
      const { schema, execute, subscribe, contextFactory, parse, validate } = yoga.getEnveloped({
        ...ctx,
        req: ctx.extra.request,
        socket: ctx.extra.socket,
        params,
      });
      let document;
      try {
        document = parse(params.query);
      } catch (error) {
        return [error instanceof GraphQLError ? error : new GraphQLError(String(error))];
      }
      const errors = validate(schema, document);
      if (errors.length > 0) return errors;
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
