import { GraphQLError } from 'graphql';
import { AgentPoolError } from '../errors.js';
import type { SchemaContext } from './builder.js';

/**
 * The most an operation may cost, counted before anything runs, with its variables' values:
 * each field costs 1; a list multiplies what is selected under it by its page size (what
 * `first` asks, clamped as the resolver clamps it) or by 10 where it has none; a read of a
 * story's git work costs {@link GIT_READ_COMPLEXITY}. `events(first: 1000)` with every
 * event field passes; thirty of them in one operation do not, however `first` is written.
 * @default 60_000
 */
export const MAX_COMPLEXITY = 60_000;

/** What one read of a story's git work (`changes`, `diff`, `commits`) costs: it runs git. */
export const GIT_READ_COMPLEXITY = 100;

/** What a list without a page size multiplies its selection by. */
export const DEFAULT_LIST_MULTIPLIER = 10;

/** The complexity plugin's refusal: one error, with a code, that says what to do. */
export function complexityError(complexity: number, max: number | undefined): GraphQLError {
  return new GraphQLError(
    `this operation would cost ${complexity}, over the limit of ${max}: ask for fewer events (first), fewer stories' git work (changes, diff, commits) or fewer aliases at once, and page`,
    { extensions: { code: 'OPERATION_TOO_COSTLY', cost: complexity, maxCost: max } },
  );
}

/**
 * The most reads of stories' git work one operation may ask for: the cost limit counts a
 * list of stories as 10, and a project may have many more, each read a git process.
 * @default 50
 */
export const MAX_GIT_READS_PER_OPERATION = 50;

/**
 * Counts one read of git work against the operation's allowance.
 * @throws AgentPoolError TOO_MANY_GIT_READS past {@link MAX_GIT_READS_PER_OPERATION}.
 */
export function countGitRead(context: SchemaContext): void {
  context.gitReads = (context.gitReads ?? 0) + 1;
  if (context.gitReads > MAX_GIT_READS_PER_OPERATION) {
    throw new AgentPoolError(
      'TOO_MANY_GIT_READS',
      `one operation may read the git work (changes, diff, commits) of at most ${MAX_GIT_READS_PER_OPERATION} stories: ask for the others in another operation`,
    );
  }
}
