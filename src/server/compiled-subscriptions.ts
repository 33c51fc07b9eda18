import { createSourceEventStream, type DocumentNode, type ExecutionArgs, type ExecutionResult } from 'graphql';
import { type CompiledQuery, compileQuery, isCompiledQuery } from 'graphql-jit';
import type { Plugin } from 'graphql-yoga';
import type { Logger } from '../logger.js';

/**
 * A subscription runs its selection once per event, hundreds of thousands of times over a
 * long run: this plugin compiles the selection once, with graphql-jit, into a function made
 * for it, and runs that per event (about twice as fast as graphql-js's interpreter:
 * docs/benchmarks.md). The event stream itself still comes from graphql-js's
 * `createSourceEventStream`, as without the plugin (graphql-jit's own `subscribe` hands the
 * field's resolver the operation's variables as its arguments, so that
 * `agentEvents(storyId: "S-1")` would read no storyId). Queries and mutations, run once
 * each, stay on yoga's own executor. A selection graphql-jit cannot compile runs as before.
 */
export function compiledSubscriptions(logger: Logger): Plugin {
  // Per document (yoga's parser cache gives the same document for the same text), per operation name.
  const compiled = new WeakMap<DocumentNode, Map<string, CompiledQuery | null>>();

  function compile(args: ExecutionArgs): CompiledQuery | null {
    const byName = compiled.get(args.document) ?? new Map<string, CompiledQuery | null>();
    compiled.set(args.document, byName);
    const name = args.operationName ?? '';
    let query = byName.get(name);
    if (query === undefined) {
      const result = compileQuery(args.schema, args.document, args.operationName ?? undefined);
      query = isCompiledQuery(result) ? result : null;
      if (!query) logger.warn(`a subscription runs uncompiled: ${(result as ExecutionResult).errors?.map((error) => error.message).join('; ')}`);
      byName.set(name, query);
    }
    return query;
  }

  return {
    onSubscribe({ args, setSubscribeFn }) {
      const query = compile(args);
      if (!query) return;
      setSubscribeFn(async (args: ExecutionArgs) => {
        const events = await createSourceEventStream(args);
        if (!(Symbol.asyncIterator in events)) return events; // the errors of its start
        return mapEvents(events, (event) => query.query(event, args.contextValue, args.variableValues ?? {}));
      });
    },
  };
}

/** `events`, each run through `toResult`; returning or throwing into it reaches `events`. */
function mapEvents<T>(
  source: AsyncIterable<T>,
  toResult: (event: T) => ExecutionResult | Promise<ExecutionResult>,
): AsyncIterableIterator<ExecutionResult> {
  const events = source[Symbol.asyncIterator]();
  const iterator: AsyncIterableIterator<ExecutionResult> = {
    [Symbol.asyncIterator]: () => iterator,
    async next() {
      const next = await events.next();
      return next.done ? { done: true, value: undefined } : { done: false, value: await toResult(next.value) };
    },
    async return() {
      await events.return?.();
      return { done: true, value: undefined };
    },
    async throw(error: unknown) {
      if (events.throw) await events.throw(error);
      throw error;
    },
  };
  return iterator;
}
