import { builder } from './builder.js';

/** The ToolKind enum. */
export const ToolKindEnum = builder.enumType('ToolKind', {
  description: 'What a tool call does, whichever agent CLI made it.',
  values: {
    READ: { description: 'Reads files.' },
    EDIT: { description: 'Writes or edits files.' },
    COMMAND: { description: 'Runs a shell command.' },
    SEARCH: { description: 'Searches or lists files.' },
    WEB: { description: 'Fetches or searches the web.' },
    TASK: { description: 'Hands work to a sub-agent.' },
    OTHER: { description: 'Anything else (MCP tools, to-do lists, …).' },
  } as const,
});
