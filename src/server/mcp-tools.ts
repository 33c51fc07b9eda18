import type { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { type CallToolResult, CallToolRequestSchema, ErrorCode, ListToolsRequestSchema, McpError, type Tool } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { AgentPoolError, describeError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { PoolApi } from '../pool/pool-api.js';
import { EventsTruncatedError } from '../pool/event-log.js';
import type { AgentEvent } from '../pool/events.js';
import { AgentNotFoundError } from '../pool/pool-errors.js';
import type { AgentInfo } from '../pool/stories.js';
import { assertValidStoryId, MAX_STORY_ID_LENGTH } from '../worktree/story-id.js';

/**
 * Who calls a tool: a client with the server's token, or a story's agent with the token
 * scoped to its story (`[agent] mcp = true`), which reaches only the stories below it.
 */
export type McpCaller = { kind: 'server' } | { kind: 'story'; storyId: string };

/** A story's agent asked for a story that is not below its own. */
export class ForbiddenError extends AgentPoolError {
  constructor(callerStoryId: string, storyId: string) {
    super(
      'FORBIDDEN',
      `this token belongs to the agent of story ${callerStoryId}, which reaches only the stories it started (and theirs); ` +
        `story ${storyId} is not one of them: start a story of your own with start_story`,
      { extensions: { storyId } },
    );
  }
}

/** A story's agent named, for a new story, an id whose branch or worktree git already has. */
export class UnrecordedWorkError extends AgentPoolError {
  constructor(callerStoryId: string, storyId: string) {
    super(
      'FORBIDDEN',
      `git already has a branch or worktree for story ${storyId}, which agent-pool has no record of: the agent of story ${callerStoryId} ` +
        'may start new stories only, not take up work it did not start; choose another storyId',
      { extensions: { storyId } },
    );
  }
}

/** The longest wait_story. */
export const MAX_WAIT_SECONDS = 60;
const DEFAULT_WAIT_SECONDS = 30;
const DEFAULT_EVENTS = 50;
const MAX_EVENTS = 200;
/** The most events read_events looks through for one answer (raw JSON lines are skipped). */
const MAX_EVENTS_SCANNED = 5000;
/** How much of a long text an event shows. */
const MAX_TEXT = 2000;
const MAX_FILES = 100;

const storyId = z.string().describe(`The story's id: 1 to ${MAX_STORY_ID_LENGTH} characters of A-Z a-z 0-9 . _ -`);
const statusEnum = z.enum(['PENDING', 'RUNNING', 'COMPLETED', 'FAILED', 'STOPPED']);

const storyShape = {
  storyId: z.string(),
  title: z.string().nullable(),
  agent: z.string().describe('Its agent profile'),
  status: statusEnum.describe('The status of its latest run'),
  waitingFor: z.enum(['APPROVAL', 'INPUT']).nullable().describe('APPROVAL: answer with respond_to_approval; INPUT: its turn ended, send_message continues'),
  pendingApprovals: z.array(
    z.object({
      requestId: z.string(),
      tool: z.string(),
      input: z.string().describe('The tool call\'s input as JSON (cut when long)'),
      options: z.array(z.object({ id: z.string(), name: z.string(), kind: z.string() })),
    }),
  ),
  error: z.string().nullable().describe('Why its latest run FAILED'),
  costUsd: z.number().nullable(),
  runs: z.number().int().describe('How many runs it had'),
  lastSeq: z.number().int().describe('The seq of its newest event (read_events afterSeq)'),
  branch: z.string().nullable(),
  baseBranch: z.string().nullable().describe('Where merge_story lands it'),
  worktreePath: z.string().nullable(),
  startedBy: z.string().nullable().describe('The story whose agent started it, if an agent did'),
  mergedAt: z.string().nullable(),
  pullRequest: z.object({ url: z.string(), number: z.number().int(), state: z.string() }).nullable(),
  archived: z.boolean(),
};
const storySchema = z.object(storyShape);
type StoryView = z.infer<typeof storySchema>;

const eventSchema = z.object({
  seq: z.number().int(),
  run: z.number().int(),
  at: z.string(),
  type: z.string().describe('status, output, tool_call, tool_result, approval_request, approval_resolved, plan, usage, done or error'),
  text: z.string().describe('What happened, in a line or a few (long texts cut)'),
  requestId: z.string().optional().describe('approval_request, approval_resolved: the approval\'s id'),
});
type EventView = z.infer<typeof eventSchema>;

function cut(text: string, max = MAX_TEXT): string {
  return text.length <= max ? text : `${text.slice(0, max)}… (${text.length - max} more characters)`;
}

function json(value: unknown, max = MAX_TEXT): string {
  return cut(JSON.stringify(value) ?? 'null', max);
}

function storyView(agent: AgentInfo): StoryView {
  return {
    storyId: agent.storyId,
    title: agent.title ?? null,
    agent: agent.agent,
    status: agent.status,
    waitingFor: agent.waitingFor ?? null,
    pendingApprovals: agent.pendingApprovals.map((approval) => ({
      requestId: approval.requestId,
      tool: approval.tool,
      input: json(approval.input),
      options: approval.options.map(({ id, name, kind }) => ({ id, name, kind })),
    })),
    error: agent.error ?? null,
    costUsd: agent.costUsd ?? null,
    runs: agent.runs.length,
    lastSeq: agent.lastSeq,
    branch: agent.branch ?? null,
    baseBranch: agent.baseBranch ?? null,
    worktreePath: agent.worktreePath ?? null,
    startedBy: agent.startedBy ?? null,
    mergedAt: agent.mergedAt?.toISOString() ?? null,
    pullRequest: agent.pullRequest ? { ...agent.pullRequest } : null,
    archived: agent.archived,
  };
}

/** An event as a model reads it; undefined for a raw JSON line (its typed events follow it). */
function eventView(event: AgentEvent): EventView | undefined {
  const base = { seq: event.seq, run: event.run, at: event.at.toISOString(), type: event.type };
  switch (event.type) {
    case 'json':
      return undefined;
    case 'status':
      return { ...base, text: event.status };
    case 'output':
      return { ...base, text: cut(event.text) };
    case 'tool_call':
      return { ...base, text: `${event.tool} ${json(event.input, 500)}` };
    case 'tool_result':
      return { ...base, text: `${event.isError ? 'error: ' : ''}${cut(event.output ?? '', 500)}` };
    case 'usage':
      return {
        ...base,
        text: `${event.inputTokens ?? 0} input and ${event.outputTokens ?? 0} output tokens${event.costUsd === undefined ? '' : `, $${event.costUsd}`}`,
      };
    case 'approval_request':
      return {
        ...base,
        requestId: event.requestId,
        text: `asks to run ${event.tool} ${json(event.input, 500)}${event.options ? `; options: ${event.options.map((o) => `${o.id} (${o.kind})`).join(', ')}` : ''}`,
      };
    case 'approval_resolved':
      return { ...base, requestId: event.requestId, text: `${event.allowed ? 'allowed' : 'denied'}${event.reason ? `: ${event.reason}` : ''}` };
    case 'plan':
      return { ...base, text: json(event.entries, 1000) };
    case 'done':
      return { ...base, text: `COMPLETED${event.exitCode === null ? '' : ` (exit code ${event.exitCode})`}` };
    case 'error':
      return { ...base, text: event.message };
  }
}

/** The tool of each GraphQL operation the pool's messages name (what to do next, said as MCP says it). */
const TOOL_OF_OPERATION: Readonly<Record<string, string>> = {
  startAgent: 'start_story',
  continueAgent: 'continue_story',
  stopAgent: 'stop_story',
  sendMessage: 'send_message',
  respondToApproval: 'respond_to_approval',
  mergeStory: 'merge_story',
  createPullRequest: 'create_pull_request',
  archiveStory: 'archive_story',
};
const OPERATION_NAMES = new RegExp(`\\b(${Object.keys(TOOL_OF_OPERATION).join('|')})\\b`, 'g');

/** A tool error whose text is `CODE: message`. */
function toolError(code: string, message: string): CallToolResult {
  return { isError: true, content: [{ type: 'text', text: `${code}: ${message.replace(OPERATION_NAMES, (name) => TOOL_OF_OPERATION[name]!)}` }] };
}

/** A tool error for what a tool threw: the contract's code first, then what was wrong and what to do. */
function failure(error: unknown, logger: Logger): CallToolResult {
  if (error instanceof AgentPoolError) return toolError(error.code, error.message);
  logger.error('an MCP tool failed', error);
  return toolError('INTERNAL_SERVER_ERROR', `the tool failed (${describeError(error)}); the server's log has more`);
}

/** What is wrong with a tool's arguments, each field named. */
function argumentProblems(error: z.ZodError): string {
  return error.issues.map((issue) => `${issue.path.length > 0 ? issue.path.join('.') : 'the arguments'}: ${issue.message}`).join('; ');
}

/** A schema as a tool's JSON Schema (an object's), without the `$schema` line. */
function jsonSchema(shape: z.ZodRawShape, io: 'input' | 'output'): Tool['inputSchema'] {
  const { $schema: _, ...schema } = z.toJSONSchema(z.object(shape), { io });
  return schema as Tool['inputSchema'];
}

/** Whether `storyId` was started by `ancestor`'s agent, or by a story below it. */
function isBelow(pool: PoolApi, storyId: string, ancestor: string): boolean {
  const seen = new Set<string>();
  for (let parent = pool.get(storyId)?.startedBy; parent !== undefined && !seen.has(parent); parent = pool.get(parent)?.startedBy) {
    if (parent === ancestor) return true;
    seen.add(parent);
  }
  return false;
}

/**
 * Serves agent-pool's tools on `server` (MCP's low-level server: its `tools/list` and
 * `tools/call`), for one caller. Each tool is one of the pool's own operations (the ones the
 * GraphQL mutations call), never a second implementation. Arguments are checked here, so
 * that a wrong one is a tool error that starts with `INVALID_ARGUMENT` like every other.
 */
export function serveTools(server: Server, options: { pool: PoolApi; caller: McpCaller; logger: Logger }): void {
  const { pool, caller, logger } = options;
  const tools = new Map<string, { definition: Tool; input: z.ZodObject; run: (args: never, signal: AbortSignal) => Promise<Record<string, unknown>> }>();

  /** The story, if the caller may reach it. @throws InvalidStoryIdError, AgentNotFoundError, ForbiddenError */
  const reach = (id: string): AgentInfo => {
    assertValidStoryId(id);
    const agent = pool.get(id);
    if (caller.kind === 'story' && !(agent && isBelow(pool, id, caller.storyId))) throw new ForbiddenError(caller.storyId, id);
    if (!agent) throw new AgentNotFoundError(id);
    return agent;
  };

  /**
   * For a story's agent, a branch to land on: any but the branch of a story not below it
   * (its recorded branch, or the one the current prefix gives it), however it is spelled
   * (`refs/heads/…`, another case, which some file systems take for the same ref).
   * @throws ForbiddenError
   */
  const reachBranch = (into: string): void => {
    if (caller.kind !== 'story') return;
    const wanted = into.replace(/^(refs\/)?heads\//, '').toLowerCase();
    for (const agent of pool.list(undefined, true)) {
      const branches = [agent.branch, `${pool.branchPrefix}${agent.storyId}`];
      if (branches.some((branch) => branch?.toLowerCase() === wanted) && !isBelow(pool, agent.storyId, caller.storyId)) {
        throw new ForbiddenError(caller.storyId, agent.storyId);
      }
    }
  };

  /** Adds a tool whose answer is `run`'s value. */
  const tool = <Input extends z.ZodRawShape, Output extends z.ZodRawShape>(
    name: string,
    config: { title: string; description: string; input: Input; output: Output; readOnly?: boolean; destructive?: boolean },
    run: (args: z.infer<z.ZodObject<Input>>, signal: AbortSignal) => Promise<z.infer<z.ZodObject<Output>>>,
  ): void => {
    const definition: Tool = {
      name,
      title: config.title,
      description: config.description,
      inputSchema: jsonSchema(config.input, 'input'),
      outputSchema: jsonSchema(config.output, 'output'),
      annotations: { readOnlyHint: config.readOnly ?? false, destructiveHint: config.destructive ?? false, openWorldHint: false },
    };
    tools.set(name, { definition, input: z.object(config.input), run: run as never });
  };

  const stories = { stories: z.array(storySchema) };

  tool(
    'list_stories',
    {
      title: 'List stories',
      description:
        'Lists the project\'s stories (each a git branch and worktree with its coding agent): status, what each waits for, cost. ' +
        (caller.kind === 'story' ? 'With your token: only the stories you started (and theirs).' : ''),
      input: {
        status: statusEnum.optional().describe('Only stories whose latest run has this status'),
        includeArchived: z.boolean().optional().describe('Also archived stories (default false)'),
      },
      output: stories,
      readOnly: true,
    },
    async ({ status, includeArchived }) => ({
      stories: pool
        .list(status, includeArchived ?? false)
        .filter((agent) => caller.kind === 'server' || isBelow(pool, agent.storyId, caller.storyId))
        .map(storyView),
    }),
  );

  tool(
    'start_story',
    {
      title: 'Start a story',
      description:
        'Starts a coding agent on a story: a new git worktree on branch story/<storyId> (or the story\'s own, for a story that ran before), ' +
        'with the prompt. It returns at once with the story PENDING or RUNNING: follow it with wait_story and read_events. ' +
        'A story that is still running must be stopped first (AGENT_ALREADY_RUNNING).',
      input: {
        storyId: storyId.describe('A new id (e.g. "fix-login-42"), or a finished story of yours to start afresh'),
        prompt: z.string().describe('What the agent should do: the whole task, as to a colleague'),
        agent: z.string().optional().describe('An agent profile of agent-pool.toml; default: the project\'s default'),
        title: z.string().optional().describe('A one-line title people see on the dashboard'),
      },
      output: storyShape,
    },
    async (args) => {
      if (caller.kind === 'story') {
        // A new story only: not a person's branch or worktree that happens to have the name.
        if (!pool.get(args.storyId) && (await pool.hasUnrecordedWork(args.storyId))) throw new UnrecordedWorkError(caller.storyId, args.storyId);
        if (pool.get(args.storyId)) reach(args.storyId);
      }
      const startedBy = caller.kind === 'story' ? caller.storyId : undefined;
      return storyView(await pool.start(args.storyId, args.prompt, args.agent, args.title, { startedBy }));
    },
  );

  tool(
    'continue_story',
    {
      title: 'Continue a story',
      description:
        'Starts a follow-up run of a finished story that resumes its agent\'s own session (it remembers the conversation), with a new prompt.',
      input: { storyId, prompt: z.string().describe('The follow-up: what to do next') },
      output: storyShape,
    },
    async (args) => {
      reach(args.storyId);
      return storyView(await pool.continue(args.storyId, args.prompt));
    },
  );

  tool(
    'get_story',
    {
      title: 'Get a story',
      description:
        'A story\'s status, what it waits for (approvals pending with their options), its cost, the files its work changed, ' +
        'and how it stands against its target branch (commits ahead and behind, files that would conflict).',
      input: { storyId },
      output: {
        ...storyShape,
        changes: z
          .object({
            filesChanged: z.number().int(),
            linesAdded: z.number().int(),
            linesRemoved: z.number().int(),
            files: z.array(z.object({ path: z.string(), kind: z.string(), linesAdded: z.number().int(), linesRemoved: z.number().int() })),
          })
          .nullable()
          .describe('Its work against where its branch started, uncommitted included; null without a worktree or branch'),
        landing: z.object({ aheadBy: z.number().int(), behindBy: z.number().int(), conflicts: z.array(z.string()) }),
      },
      readOnly: true,
    },
    async (args, signal) => {
      reach(args.storyId);
      const [changes, landing] = await Promise.all([pool.changes(args.storyId, { signal }), pool.landingStatus(args.storyId, { signal })]);
      return {
        ...storyView(pool.get(args.storyId)!),
        changes: changes
          ? {
              filesChanged: changes.filesChanged,
              linesAdded: changes.linesAdded,
              linesRemoved: changes.linesRemoved,
              files: changes.files.slice(0, MAX_FILES).map(({ path, kind, linesAdded, linesRemoved }) => ({ path, kind, linesAdded, linesRemoved })),
            }
          : null,
        landing,
      };
    },
  );

  tool(
    'wait_story',
    {
      title: 'Wait for a story',
      description:
        'Waits until a story\'s status or waitingFor changes (it finishes, or starts waiting for an approval or a message), ' +
        `at most timeoutSeconds (default ${DEFAULT_WAIT_SECONDS}, at most ${MAX_WAIT_SECONDS}), and returns the story: call it again ` +
        'while changed is false. No need to poll get_story.',
      input: {
        storyId,
        timeoutSeconds: z.number().min(0).max(MAX_WAIT_SECONDS).optional().describe(`How long to wait at most (default ${DEFAULT_WAIT_SECONDS})`),
      },
      output: { changed: z.boolean().describe('Whether its status or waitingFor changed'), story: storySchema },
      readOnly: true,
    },
    async (args, signal) => {
      const before = reach(args.storyId);
      const changed = await new Promise<boolean>((resolve) => {
        const finish = (result: boolean): void => {
          off();
          clearTimeout(timer);
          signal.removeEventListener('abort', aborted);
          resolve(result);
        };
        const off = pool.onAgentChange((agent) => {
          if (agent.storyId === args.storyId && (agent.status !== before.status || agent.waitingFor !== before.waitingFor)) finish(true);
        });
        const aborted = (): void => finish(false);
        signal.addEventListener('abort', aborted);
        const timer = setTimeout(() => finish(false), (args.timeoutSeconds ?? DEFAULT_WAIT_SECONDS) * 1000);
      });
      return { changed, story: storyView(pool.get(args.storyId)!) };
    },
  );

  tool(
    'read_events',
    {
      title: 'Read a story\'s events',
      description:
        'A page of what a story\'s agent did, oldest first: its messages, tool calls and results, approvals, status changes. ' +
        'Pass the answer\'s nextAfterSeq as afterSeq to read on; more is true while newer events exist.',
      input: {
        storyId,
        afterSeq: z.number().int().min(0).optional().describe('Only events after this seq (default 0: from the start)'),
        limit: z.number().int().min(1).max(MAX_EVENTS).optional().describe(`How many at most (default ${DEFAULT_EVENTS})`),
      },
      output: {
        events: z.array(eventSchema),
        nextAfterSeq: z.number().int().describe('The afterSeq of the next page'),
        lastSeq: z.number().int(),
        more: z.boolean(),
        droppedBefore: z.number().int().optional().describe('Events before this seq were dropped by retention'),
      },
      readOnly: true,
    },
    async (args) => {
      reach(args.storyId);
      const limit = args.limit ?? DEFAULT_EVENTS;
      const events: EventView[] = [];
      let cursor = args.afterSeq ?? 0;
      let droppedBefore: number | undefined;
      let scanned = 0;
      while (events.length < limit && scanned < MAX_EVENTS_SCANNED) {
        let page: AgentEvent[];
        try {
          page = await pool.eventPage(args.storyId, cursor, Math.min(limit * 4, 500));
        } catch (error) {
          if (!(error instanceof EventsTruncatedError) || droppedBefore !== undefined) throw error;
          droppedBefore = pool.firstSeq(args.storyId);
          cursor = droppedBefore - 1;
          continue;
        }
        if (page.length === 0) break;
        for (const event of page) {
          cursor = event.seq;
          scanned++;
          const view = eventView(event);
          if (view) events.push(view);
          if (events.length === limit) break;
        }
      }
      const lastSeq = pool.get(args.storyId)!.lastSeq;
      return { events, nextAfterSeq: cursor, lastSeq, more: cursor < lastSeq, ...(droppedBefore === undefined ? {} : { droppedBefore }) };
    },
  );

  tool(
    'send_message',
    {
      title: 'Send a message',
      description:
        'A new turn in the live session of a story\'s running agent (one whose waitingFor is INPUT, or one still working: it is queued). ' +
        'A finished story takes continue_story instead.',
      input: { storyId, text: z.string().describe('The message the agent gets') },
      output: storyShape,
    },
    async (args) => {
      reach(args.storyId);
      return storyView(await pool.sendMessage(args.storyId, args.text));
    },
  );

  tool(
    'respond_to_approval',
    {
      title: 'Answer an approval',
      description:
        'Answers a tool call a story\'s agent asks permission for (get_story lists pendingApprovals): allow true or false, ' +
        'or optionId, one of the request\'s options. A denial may say why in message.',
      input: {
        storyId,
        requestId: z.string(),
        allow: z.boolean().optional(),
        optionId: z.string().optional(),
        message: z.string().optional().describe('For a denial: what the agent is told'),
      },
      output: storyShape,
    },
    async (args) => {
      reach(args.storyId);
      return storyView(await pool.respondToApproval(args.storyId, args.requestId, { allow: args.allow, optionId: args.optionId, message: args.message }));
    },
  );

  tool(
    'stop_story',
    {
      title: 'Stop a story',
      description: 'Stops a story\'s run: its agent and every process it started end; the worktree and its work stay.',
      input: { storyId },
      output: storyShape,
      destructive: true,
    },
    async (args) => {
      reach(args.storyId);
      return storyView(await pool.stop(args.storyId));
    },
  );

  tool(
    'merge_story',
    {
      title: 'Merge a story',
      description:
        'Lands a finished story\'s work on its target branch (baseBranch, or into): SQUASH (default) one commit, MERGE a merge commit, ' +
        'REBASE its commits replayed. A conflict is MERGE_CONFLICT with the files, and nothing changes.',
      input: {
        storyId,
        strategy: z.enum(['SQUASH', 'MERGE', 'REBASE']).optional(),
        message: z.string().optional().describe('The commit message (SQUASH, MERGE)'),
        into: z.string().optional().describe('Another target branch'),
      },
      output: storyShape,
      destructive: true,
    },
    async (args) => {
      reach(args.storyId);
      if (caller.kind === 'story' && args.into !== undefined) reachBranch(args.into);
      return storyView(await pool.merge(args.storyId, { strategy: args.strategy ?? 'SQUASH', message: args.message, into: args.into }));
    },
  );

  tool(
    'create_pull_request',
    {
      title: 'Open a pull request',
      description: 'Pushes a finished story\'s branch and opens a pull request (GitHub) or merge request (GitLab) for it, as [forge] configures.',
      input: { storyId, title: z.string().optional(), body: z.string().optional(), draft: z.boolean().optional() },
      output: storyShape,
    },
    async (args) => {
      reach(args.storyId);
      return storyView(await pool.createPullRequest(args.storyId, { title: args.title, body: args.body, draft: args.draft }));
    },
  );

  tool(
    'archive_story',
    {
      title: 'Archive a story',
      description:
        'Removes a finished story\'s worktree (uncommitted work committed first); the branch and history stay. ' +
        'deleteBranch also deletes a branch whose work landed.',
      input: { storyId, deleteBranch: z.boolean().optional() },
      output: storyShape,
      destructive: true,
    },
    async (args) => {
      reach(args.storyId);
      return storyView(await pool.archive(args.storyId, args.deleteBranch ?? false));
    },
  );

  server.setRequestHandler(ListToolsRequestSchema, () => ({ tools: [...tools.values()].map((entry) => entry.definition) }));
  server.setRequestHandler(CallToolRequestSchema, async (request, extra) => {
    const entry = tools.get(request.params.name);
    if (!entry) {
      throw new McpError(ErrorCode.InvalidParams, `there is no tool ${JSON.stringify(request.params.name)}: the tools are ${[...tools.keys()].join(', ')}`);
    }
    const args = entry.input.safeParse(request.params.arguments ?? {});
    if (!args.success) return toolError('INVALID_ARGUMENT', `${argumentProblems(args.error)} (see the tool's inputSchema)`);
    try {
      const value = await entry.run(args.data as never, extra.signal);
      return { content: [{ type: 'text', text: JSON.stringify(value) }], structuredContent: value };
    } catch (error) {
      return failure(error, logger);
    }
  });
}
