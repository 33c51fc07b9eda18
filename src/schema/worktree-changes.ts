import type { WorktreeChanges } from '../worktree/story-changes.js';
import { builder } from './builder.js';
import { FileChangeRef } from './file-change.js';

/** The WorktreeChanges type. */
export const WorktreeChangesRef = builder.objectRef<WorktreeChanges>('WorktreeChanges').implement({
  description:
    'What a story changed against its base commit: committed, uncommitted and untracked (not ignored) work together.',
  fields: (t) => ({
    files: t.field({ type: [FileChangeRef], description: 'The changed files, by path.', resolve: (changes) => changes.files }),
    filesChanged: t.exposeInt('filesChanged', { description: 'How many files changed.' }),
    linesAdded: t.exposeInt('linesAdded', { description: 'Lines added over all files.' }),
    linesRemoved: t.exposeInt('linesRemoved', { description: 'Lines removed over all files.' }),
  }),
});
