import { AgentPoolError } from '../errors.js';

/** The longest story id. */
export const MAX_STORY_ID_LENGTH = 64;

/** The story id is not one the contract allows; nothing was touched. */
export class InvalidStoryIdError extends AgentPoolError {
  constructor(storyId: string, reason: string) {
    super(
      'INVALID_STORY_ID',
      `invalid story id ${JSON.stringify(storyId)}: ${reason}. A story id is 1 to ${MAX_STORY_ID_LENGTH} characters of ` +
        'A-Z a-z 0-9 . _ -, not starting with "." or "-", without "..", and not ending with "." or ".lock".',
      { extensions: { storyId } },
    );
  }
}

/**
 * Why `storyId` is not valid, or `undefined` when it is. The rules make `story/<id>` a
 * valid git branch name and a safe path segment, and keep the id harmless in the user's
 * own `setup` commands.
 */
export function storyIdProblem(storyId: string): string | undefined {
  if (storyId.length === 0) return 'it is empty';
  if (storyId.length > MAX_STORY_ID_LENGTH) return `it is ${storyId.length} characters long`;
  const bad = /[^A-Za-z0-9._-]/u.exec(storyId);
  if (bad) return `it contains ${JSON.stringify(bad[0])}`;
  if (storyId.startsWith('.') || storyId.startsWith('-')) return `it starts with "${storyId[0]}"`;
  if (storyId.includes('..')) return 'it contains ".."';
  if (storyId.endsWith('.')) return 'it ends with "."';
  if (storyId.endsWith('.lock')) return 'it ends with ".lock"';
  return undefined;
}

/**
 * Checks a story id against the contract's rules.
 * @throws InvalidStoryIdError naming what is wrong.
 */
export function assertValidStoryId(storyId: string): void {
  const problem = storyIdProblem(storyId);
  if (problem !== undefined) throw new InvalidStoryIdError(storyId, problem);
}
