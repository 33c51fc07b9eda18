import type { PullRequestRecord } from '../store/state-store.js';
import { builder } from './builder.js';

/** The MergeStrategy enum. */
export const MergeStrategyEnum = builder.enumType('MergeStrategy', {
  description: 'How mergeStory lands a story\'s work on its target branch.',
  values: {
    MERGE: { description: 'A merge commit of the target and the story\'s branch (--no-ff).' },
    SQUASH: { description: 'One new commit on the target with all of the story\'s work since it last landed.' },
    REBASE: { description: 'The story\'s commits replayed onto the target in its worktree, and the target fast-forwarded to them.' },
  } as const,
});

/** The PullRequest type. */
export const PullRequestRef = builder.objectRef<PullRequestRecord>('PullRequest').implement({
  description: 'A story\'s pull request (a merge request on GitLab), as createPullRequest last read it.',
  fields: (t) => ({
    url: t.exposeString('url', { description: 'Its web page.' }),
    number: t.exposeInt('number', { description: 'Its number: GitHub\'s number, GitLab\'s iid (!N).' }),
    state: t.exposeString('state', { description: 'open, closed (without merging) or merged.' }),
  }),
});
