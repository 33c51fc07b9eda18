import type { CommitInfo } from '../worktree/git-output.js';
import { builder } from './builder.js';

/** The Commit type. */
export const CommitRef = builder.objectRef<CommitInfo>('Commit').implement({
  description: 'A commit on a story\'s branch.',
  fields: (t) => ({
    hash: t.exposeString('hash', { description: 'The full commit hash.' }),
    subject: t.exposeString('subject', { description: 'The first line of its message.' }),
    author: t.exposeString('author', { description: 'The author\'s name.' }),
    committedAt: t.expose('committedAt', { type: 'DateTime', description: 'When it was committed.' }),
  }),
});
