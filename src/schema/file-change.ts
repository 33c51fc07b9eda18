import type { FileChange } from '../worktree/git-output.js';
import { ChangeKindEnum } from './change-kind.js';
import { builder } from './builder.js';

/** The FileChange type. */
export const FileChangeRef = builder.objectRef<FileChange>('FileChange').implement({
  description: 'One file a story changed against its base commit.',
  fields: (t) => ({
    path: t.exposeString('path', { description: 'The path, relative to the worktree.' }),
    oldPath: t.exposeString('oldPath', { nullable: true, description: 'The path before a rename.' }),
    kind: t.expose('kind', { type: ChangeKindEnum, description: 'How the file changed.' }),
    linesAdded: t.exposeInt('linesAdded', { description: 'Lines added (0 for a binary file).' }),
    linesRemoved: t.exposeInt('linesRemoved', { description: 'Lines removed (0 for a binary file).' }),
  }),
});
