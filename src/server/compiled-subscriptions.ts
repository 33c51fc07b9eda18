import { BREAK, createSourceEventStream, type DocumentNode, type ExecutionArgs, type ExecutionResult, visit } from 'graphql';
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
 *
 * A document with a string literal anywhere (an argument, a directive's, a variable's
 * default) runs uncompiled too: graphql-jit writes literal arguments into the code it
 * generates, and turns a string that starts with its date marker into code
 * (`"__MAGIC_DATE__…"` becomes `new Date(…)` unquoted), so a client's string could run in
 * this process. Strings given as variables are only ever data to it; the dashboard's
 * subscriptions pass theirs so.
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
      if (hasStringLiteral(args.document)) {
        query = null;
        logger.debug('a subscription runs uncompiled: it has a string literal (pass strings as variables)');
      } else {
        const result = compileQuery(args.schema, args.document, args.operationName ?? undefined);
        query = isCompiledQuery(result) ? result : null;
        if (query) logger.debug('a subscription is compiled');
        else logger.warn(`a subscription runs uncompiled: ${(result as ExecutionResult).errors?.map((error) => error.message).join('; ')}`);
      }
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

/** Whether a string literal appears anywhere in `document`. */
function hasStringLiteral(document: DocumentNode): boolean {
  let found = false;
  visit(document, {
    StringValue() {
      found = true;
      return BREAK;
    },
  });
  return found;
}

/**
 * `events`, each run through `toResult`; returning or throwing into it reaches `events`,
 * and so does a failure of `toResult` (graphql-ws does not return an iterator that threw).
 */
function mapEvents<T>(
  source: AsyncIterable<T>,
  toResult: (event: T) => ExecutionResult | Promise<ExecutionResult>,
): AsyncIterableIterator<ExecutionResult> {
  const events = source[Symbol.asyncIterator]();
  const iterator: AsyncIterableIterator<ExecutionResult> = {
    [Symbol.asyncIterator]: () => iterator,
    async next() {
      const next = await events.next();
      if (next.done) return { done: true, value: undefined };
      try {
        return { done: false, value: await toResult(next.value) };
      } catch (error) {
        await events.return?.();
        throw error;
      }
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
