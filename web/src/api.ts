// The dashboard's operations: only the public GraphQL API, as any other client would use
// it. Every type of a result is derived from its document, which gql.tada types from
// schema.graphql (see graphql.ts): none is written by hand.
import { type CombinedError, stringifyDocument } from 'urql';
import { graphql, type ResultOf, type VariablesOf } from './graphql.js';

/** What the page shows of a story's agent, wherever it gets one. */
export const AgentFields = graphql(`
  fragment AgentFields on Agent {
    storyId
    title
    prompt
    agent
    status
    interactive
    sessionId
    branch
    error
    costUsd
    lastSeq
    lastEventAt
    waitingFor
    baseBranch
    mergedAt
    archived
    pullRequest {
      url
      number
      state
    }
    pendingApprovals {
      requestId
      tool
      input
      requestedAt
      options {
        id
        name
        kind
      }
    }
    runs {
      number
      agent
      prompt
      renderedPrompt
      sessionId
      status
      costUsd
      startedAt
    }
    services {
      name
      status
      port
    }
  }
`);

export type Agent = ResultOf<typeof AgentFields>;
export type Run = Agent['runs'][number];
export type Approval = Agent['pendingApprovals'][number];
export type ApprovalOption = Approval['options'][number];
export type AgentStatus = Agent['status'];
export type WaitReason = NonNullable<Agent['waitingFor']>;
export type PullRequest = NonNullable<Agent['pullRequest']>;
export type Service = Agent['services'][number];
export type ServiceStatus = Service['status'];

export const AGENTS = graphql(
  `
    query Agents {
      agents {
        ...AgentFields
      }
      agentProfiles {
        name
        kind
        permissionMode
        isDefault
      }
    }
  `,
  [AgentFields],
);
export type AgentProfile = ResultOf<typeof AGENTS>['agentProfiles'][number];

export const AGENT_UPDATES = graphql(
  `
    subscription AgentUpdates {
      agentUpdates {
        ...AgentFields
      }
    }
  `,
  [AgentFields],
);

export const START_AGENT = graphql(
  `
    mutation StartAgent($storyId: ID!, $prompt: String, $agent: String, $title: String) {
      startAgent(storyId: $storyId, prompt: $prompt, agent: $agent, title: $title) {
        ...AgentFields
      }
    }
  `,
  [AgentFields],
);
export const STOP_AGENT = graphql(
  `
    mutation StopAgent($storyId: ID!) {
      stopAgent(storyId: $storyId) {
        ...AgentFields
      }
    }
  `,
  [AgentFields],
);
export const INTERRUPT_AGENT = graphql(
  `
    mutation InterruptAgent($storyId: ID!) {
      interruptAgent(storyId: $storyId) {
        ...AgentFields
      }
    }
  `,
  [AgentFields],
);
export const SEND_MESSAGE = graphql(
  `
    mutation SendMessage($storyId: ID!, $text: String!) {
      sendMessage(storyId: $storyId, text: $text) {
        ...AgentFields
      }
    }
  `,
  [AgentFields],
);
export const CONTINUE_AGENT = graphql(
  `
    mutation ContinueAgent($storyId: ID!, $prompt: String!) {
      continueAgent(storyId: $storyId, prompt: $prompt) {
        ...AgentFields
      }
    }
  `,
  [AgentFields],
);
export const RESPOND_TO_APPROVAL = graphql(
  `
    mutation RespondToApproval(
      $storyId: ID!
      $requestId: ID!
      $allow: Boolean
      $optionId: ID
      $message: String
      $remember: Boolean
    ) {
      respondToApproval(
        storyId: $storyId
        requestId: $requestId
        allow: $allow
        optionId: $optionId
        message: $message
        remember: $remember
      ) {
        ...AgentFields
      }
    }
  `,
  [AgentFields],
);

/**
 * One story's agent, archived or not: the page asks for it when the story is not on the
 * list (`agents` leaves archived stories out), as when a person opens its address.
 */
export const STORY = graphql(
  `
    query Story($storyId: ID!) {
      agent(storyId: $storyId) {
        ...AgentFields
      }
    }
  `,
  [AgentFields],
);

/**
 * How a story stands against its target branch. Git reads computed on every request, so
 * they are asked for apart from AgentFields (which every update of every story carries),
 * only on the page of a story that can land, and read again when it moves.
 */
export const STORY_LANDING = graphql(`
  query StoryLanding($storyId: ID!) {
    agent(storyId: $storyId) {
      aheadBy
      behindBy
      conflicts
      changes {
        filesChanged
      }
    }
  }
`);

export const MERGE_STORY = graphql(
  `
    mutation MergeStory($storyId: ID!, $strategy: MergeStrategy, $into: String) {
      mergeStory(storyId: $storyId, strategy: $strategy, into: $into) {
        ...AgentFields
      }
    }
  `,
  [AgentFields],
);
export type MergeStrategy = NonNullable<VariablesOf<typeof MERGE_STORY>['strategy']>;
export const REBASE_STORY = graphql(
  `
    mutation RebaseStory($storyId: ID!) {
      rebaseStory(storyId: $storyId) {
        ...AgentFields
      }
    }
  `,
  [AgentFields],
);
export const CREATE_PULL_REQUEST = graphql(
  `
    mutation CreatePullRequest($storyId: ID!, $draft: Boolean) {
      createPullRequest(storyId: $storyId, draft: $draft) {
        ...AgentFields
      }
    }
  `,
  [AgentFields],
);
export const ARCHIVE_STORY = graphql(
  `
    mutation ArchiveStory($storyId: ID!, $deleteBranch: Boolean) {
      archiveStory(storyId: $storyId, deleteBranch: $deleteBranch) {
        ...AgentFields
      }
    }
  `,
  [AgentFields],
);

/**
 * A story's services (its dev servers, `[services.NAME]`): their name, status and port come
 * with every agent (AgentFields), so agentUpdates pushes their changes; their output is
 * read only on the story's page (SERVICE_OUTPUT), never with the list.
 */
export const START_SERVICE = graphql(
  `
    mutation StartService($storyId: ID!, $name: String!) {
      startService(storyId: $storyId, name: $name) {
        ...AgentFields
      }
    }
  `,
  [AgentFields],
);
export const STOP_SERVICE = graphql(
  `
    mutation StopService($storyId: ID!, $name: String!) {
      stopService(storyId: $storyId, name: $name) {
        ...AgentFields
      }
    }
  `,
  [AgentFields],
);
/** A service's newest `last` output lines, then each new one as it comes. */
export const SERVICE_OUTPUT = graphql(`
  subscription ServiceOutput($storyId: ID!, $name: String!, $last: Int) {
    serviceOutput(storyId: $storyId, name: $name, last: $last)
  }
`);

export const STORY_WORK = graphql(`
  query StoryWork($storyId: ID!) {
    agent(storyId: $storyId) {
      changes {
        filesChanged
        linesAdded
        linesRemoved
        files {
          path
          oldPath
          kind
          linesAdded
          linesRemoved
        }
      }
      commits {
        hash
        subject
        author
        committedAt
      }
    }
  }
`);
export const FILE_DIFF = graphql(`
  query FileDiff($storyId: ID!, $path: String!) {
    agent(storyId: $storyId) {
      diff(path: $path)
    }
  }
`);

/** What the Events region shows of an event, live or read from a page of the history. */
export const AgentEventFields = graphql(`
  fragment AgentEventFields on AgentEvent {
    __typename
    seq
    run
    at
    ... on AgentStatusEvent {
      status
    }
    ... on AgentOutputEvent {
      text
    }
    ... on AgentJsonEvent {
      data
    }
    ... on AgentDoneEvent {
      sessionId
      exitCode
    }
    ... on AgentErrorEvent {
      message
    }
    ... on AgentToolCallEvent {
      callId
      tool
      kind
      input
    }
    ... on AgentToolResultEvent {
      callId
      isError
      output
    }
    ... on AgentUsageEvent {
      inputTokens
      outputTokens
      costUsd
    }
    ... on AgentApprovalRequestEvent {
      requestId
      tool
      input
    }
    ... on AgentApprovalResolvedEvent {
      requestId
      allowed
      reason
    }
    ... on AgentPlanEvent {
      entries
    }
  }
`);
/** An event as the Events region shows it: one of the types it asks for, told apart by __typename. */
export type AgentEvent = ResultOf<typeof AgentEventFields>;

export const AGENT_EVENTS = graphql(
  `
  subscription AgentEvents($storyId: ID!, $afterSeq: Int) {
    agentEvents(storyId: $storyId, afterSeq: $afterSeq) {
      ...AgentEventFields
    }
  }
`,
  [AgentEventFields],
);
export type AgentEventsVariables = VariablesOf<typeof AGENT_EVENTS>;

/**
 * One page of a story's stored events, forwards (afterSeq, first) or backwards (before,
 * last), with the range the server keeps: what the Events region reads as a person scrolls.
 */
export const EVENT_PAGE = graphql(
  `
  query EventPage($storyId: ID!, $afterSeq: Int, $first: Int, $before: Int, $last: Int) {
    agent(storyId: $storyId) {
      firstSeq
      lastSeq
      events(afterSeq: $afterSeq, first: $first, before: $before, last: $last) {
        ...AgentEventFields
      }
    }
  }
`,
  [AgentEventFields],
);
export type EventPageVariables = VariablesOf<typeof EVENT_PAGE>;

/** A document as the text graphql-ws sends (the subscriptions the page opens on the socket itself). */
export const queryText = stringifyDocument;

/**
 * What the page means by "running" and "pending", wherever it counts them (the header, the
 * filters): exactly the statuses the badges show, never one counted as the other.
 */
export const STATUS_MEANING = {
  RUNNING: "Its agent's process is running (status RUNNING)",
  PENDING: 'Started, not running yet: waiting for a free slot ([pool] max_concurrent) or preparing its worktree and setup (status PENDING)',
} as const satisfies Partial<Record<AgentStatus, string>>;

/** Whether a run of this status is still going: it can be stopped, and takes no new start. */
export function isActive(status: AgentStatus): boolean {
  return status === 'PENDING' || status === 'RUNNING';
}

/** What a person reads of a failed operation: the server's own message, else the client's. */
export function errorMessage(error: CombinedError | undefined): string | undefined {
  return error ? (error.graphQLErrors[0]?.message ?? error.message) : undefined;
}

/** A cost as people read it; nothing when there is none. */
export function formatCost(costUsd: number | null | undefined): string {
  if (costUsd === null || costUsd === undefined) return '';
  return `$${costUsd < 0.01 && costUsd > 0 ? costUsd.toFixed(4) : costUsd.toFixed(2)}`;
}

/** A time as "12:03:04"; nothing when there is none. */
export function formatTime(iso: string | null | undefined): string {
  return iso ? new Date(iso).toLocaleTimeString() : '';
}

/** A moment as "12:03:04" when it is today, else with its date too; nothing when there is none. */
export function formatMoment(iso: string | null | undefined): string {
  if (!iso) return '';
  const date = new Date(iso);
  return date.toDateString() === new Date().toDateString() ? date.toLocaleTimeString() : date.toLocaleString();
}

/** The first line of a text, cut to `max` characters with "…" when longer (or when more lines follow). */
export function firstLine(text: string, max = 120): string {
  const trimmed = text.trim();
  const newline = trimmed.indexOf('\n');
  const line = (newline === -1 ? trimmed : trimmed.slice(0, newline)).trimEnd();
  // Cut by code points, so that an emoji is never cut in half.
  const characters = Array.from(line);
  if (characters.length > max) return `${characters.slice(0, max - 1).join('').trimEnd()}…`;
  return newline === -1 ? line : `${line} …`;
}
