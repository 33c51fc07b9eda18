import type { CombinedError } from 'urql';

/** What the Land section does, for the words of its errors. */
export type LandingAction = 'merge' | 'rebase' | 'pull request' | 'archive';

/** A refused landing as a person reads it, with the server's own words kept for details. */
export interface LandingError {
  /** What happened and what to do, in plain words. */
  text: string;
  /** The contract's error code, when the server gave one. */
  code: string | undefined;
  /** The server's message (or the client's, when the request never got an answer). */
  serverMessage: string;
}

/** A list of files as a sentence: "a.txt, b.txt" (the first 10, then how many more). */
function fileList(files: readonly string[]): string {
  const shown = files.slice(0, 10).join(', ');
  return files.length > 10 ? `${shown} and ${files.length - 10} more` : shown;
}

/** The server's message as the end of a sentence: its own full stop, if it has one, not doubled. */
export function sentence(message: string): string {
  return /[.!?]$/.test(message.trim()) ? message.trim() : `${message.trim()}.`;
}

function stringsOf(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((item): item is string => typeof item === 'string') : [];
}

/**
 * Tells a refused merge, rebase, pull request or archive in words a person understands,
 * from the error's `extensions.code` and its facts (`files`, `checkout`, `status`).
 * `target` is the branch the story lands on, as the page knows it.
 */
export function landingError(error: CombinedError, action: LandingAction, target: string | undefined): LandingError {
  const first = error.graphQLErrors[0];
  const serverMessage = first?.message ?? error.message;
  const extensions = (first?.extensions ?? {}) as Record<string, unknown>;
  const code = typeof extensions.code === 'string' ? extensions.code : undefined;
  const files = stringsOf(extensions.files);
  const onto = target ?? (typeof extensions.target === 'string' ? extensions.target : 'its target');
  const say = (text: string): LandingError => ({ text, code, serverMessage });
  switch (code) {
    case 'MERGE_CONFLICT':
      if (files.length === 0) break;
      return say(
        action === 'rebase'
          ? `Can't rebase: these files conflict with ${onto}: ${fileList(files)}. Ask the story's agent to resolve them (a message that asks it to merge ${onto} in).`
          : `Can't merge: these files conflict with ${onto}: ${fileList(files)}. Rebase the story or ask its agent to resolve them.`,
      );
    case 'TARGET_DIRTY': {
      const checkout = typeof extensions.checkout === 'string' ? extensions.checkout : undefined;
      const branch = typeof extensions.target === 'string' ? extensions.target : onto;
      if (checkout === undefined) break;
      switch (extensions.reason) {
        case 'FILES_IN_THE_WAY':
          return say(`${branch} is checked out at ${checkout} with untracked or ignored files where the merge writes: ${fileList(files)}. Move them away, then merge again.`);
        case 'UNCOMMITTED_CHANGES':
          return say(`${branch} is checked out at ${checkout} with uncommitted changes to: ${fileList(files)}. Commit or stash them, then merge again.`);
        case 'OPERATION_IN_PROGRESS':
          return say(`${branch} is checked out at ${checkout} in the middle of a merge, rebase, cherry-pick, revert or bisect. Finish or abort it there, then merge again.`);
      }
      break;
    }
    case 'NOTHING_TO_MERGE':
      return say(`Nothing to merge: ${onto} already has all of this story's work.`);
    case 'NO_TARGET_BRANCH':
      return say(
        typeof extensions.into === 'string'
          ? `There is no branch ${extensions.into} to merge into: name an existing local branch.`
          : "This story has no target branch (it started from a detached HEAD, or before agent-pool recorded one): name the branch to merge into.",
      );
    case 'AGENT_ALREADY_RUNNING':
      return say('The story is running: it can land once its run has ended.');
    case 'STORY_WORKTREE_BUSY':
      return say(`Nothing was changed: ${sentence(serverMessage)}`);
    case 'LANDING_RACE':
      return say(`Not landed: ${onto} or the story's worktree changed meanwhile, and nothing was lost. Try again.`);
    case 'FORGE_NOT_CONFIGURED':
      return say(`Can't open a pull request: ${sentence(serverMessage)}`);
    case 'PUSH_FAILED':
      return say(`Pushing the story's branch failed: ${sentence(serverMessage)}`);
    case 'FORGE_ERROR': {
      const status = typeof extensions.status === 'number' ? extensions.status : null;
      return say(
        status === null ? `The forge could not be reached: ${sentence(serverMessage)}` : `The forge refused (HTTP ${status}): ${sentence(serverMessage)}`,
      );
    }
    case 'BRANCH_NOT_MERGED':
      return say(
        "Not archived: the story's branch has work that is not merged, so it was kept and nothing changed. Land it first, or archive it without deleting its branch.",
      );
  }
  return say(serverMessage);
}
