import { builder } from './builder.js';

/** The ChangeKind enum. */
export const ChangeKindEnum = builder.enumType('ChangeKind', {
  description: 'How a file changed against the story\'s base commit.',
  values: {
    ADDED: { description: 'The file is new (committed, staged or untracked).' },
    MODIFIED: { description: 'The file\'s content (or mode) changed.' },
    DELETED: { description: 'The file is gone.' },
    RENAMED: { description: 'The file moved, maybe with changes; oldPath says from where.' },
  } as const,
});
