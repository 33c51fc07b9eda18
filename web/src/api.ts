// The dashboard's operations and the shapes of their results: only the public GraphQL
// API, as any other client would use it.
import type { CombinedError } from 'urql';

export type AgentStatus = 'PENDING' | 'RUNNING' | 'COMPLETED' | 'FAILED' | 'STOPPED';
export type WaitReason = 'APPROVAL' | 'INPUT';

export interface Approval {
  requestId: string;
  tool: string;
  input: unknown;
  suggestions: unknown;
  requestedAt: string;
}

export interface Run {
  number: number;
  agent: string | null;
  prompt: string | null;
  status: AgentStatus;
  costUsd: number | null;
  exitCode: number | null;
  startedAt: string | null;
  finishedAt: string | null;
}

export interface Agent {
  storyId: string;
  agent: string | null;
  status: AgentStatus;
  interactive: boolean;
  sessionId: string | null;
  branch: string | null;
  worktreePath: string | null;
  exitCode: number | null;
  error: string | null;
  costUsd: number | null;
  startedAt: string | null;
  finishedAt: string | null;
  lastSeq: number;
  lastEventAt: string | null;
  waitingFor: WaitReason | null;
  pendingApprovals: Approval[];
  runs: Run[];
}

export interface AgentProfile {
  name: string;
  kind: string;
  permissionMode: string;
  isDefault: boolean;
}

const AGENT_FIELDS = `
  storyId agent status interactive sessionId branch worktreePath exitCode error costUsd
  startedAt finishedAt lastSeq lastEventAt waitingFor
  pendingApprovals { requestId tool input suggestions requestedAt }
  runs { number agent prompt status costUsd exitCode startedAt finishedAt }
`;

export const AGENTS = `query Agents { agents { ${AGENT_FIELDS} } agentProfiles { name kind permissionMode isDefault } }`;
export const AGENT_UPDATES = `subscription AgentUpdates { agentUpdates { ${AGENT_FIELDS} } }`;

export const START_AGENT = `mutation StartAgent($storyId: ID!, $prompt: String, $agent: String) {
  startAgent(storyId: $storyId, prompt: $prompt, agent: $agent) { ${AGENT_FIELDS} }
}`;
export const STOP_AGENT = `mutation StopAgent($storyId: ID!) { stopAgent(storyId: $storyId) { ${AGENT_FIELDS} } }`;
export const INTERRUPT_AGENT = `mutation InterruptAgent($storyId: ID!) { interruptAgent(storyId: $storyId) { ${AGENT_FIELDS} } }`;
export const SEND_MESSAGE = `mutation SendMessage($storyId: ID!, $text: String!) { sendMessage(storyId: $storyId, text: $text) { ${AGENT_FIELDS} } }`;
export const CONTINUE_AGENT = `mutation ContinueAgent($storyId: ID!, $prompt: String!) {
  continueAgent(storyId: $storyId, prompt: $prompt) { ${AGENT_FIELDS} }
}`;
export const RESPOND_TO_APPROVAL = `mutation RespondToApproval($storyId: ID!, $requestId: ID!, $allow: Boolean!, $message: String, $remember: Boolean) {
  respondToApproval(storyId: $storyId, requestId: $requestId, allow: $allow, message: $message, remember: $remember) { ${AGENT_FIELDS} }
}`;

export interface FileChange {
  path: string;
  oldPath: string | null;
  kind: 'ADDED' | 'MODIFIED' | 'DELETED' | 'RENAMED';
  linesAdded: number;
  linesRemoved: number;
}

export interface Commit {
  hash: string;
  subject: string;
  author: string;
  committedAt: string;
}

export interface StoryWork {
  changes: { filesChanged: number; linesAdded: number; linesRemoved: number; files: FileChange[] } | null;
  commits: Commit[];
}

export const STORY_WORK = `query StoryWork($storyId: ID!) {
  agent(storyId: $storyId) {
    changes { filesChanged linesAdded linesRemoved files { path oldPath kind linesAdded linesRemoved } }
    commits { hash subject author committedAt }
  }
}`;
export const FILE_DIFF = `query FileDiff($storyId: ID!, $path: String!) { agent(storyId: $storyId) { diff(path: $path) } }`;

/** An event as the Events region shows it: the fields of every type it knows. */
export interface AgentEvent {
  __typename: string;
  seq: number;
  run: number | null;
  at: string;
  status?: AgentStatus;
  text?: string;
  data?: unknown;
  sessionId?: string | null;
  exitCode?: number | null;
  message?: string;
  callId?: string;
  tool?: string;
  kind?: string;
  input?: unknown;
  isError?: boolean;
  output?: string | null;
  inputTokens?: number | null;
  outputTokens?: number | null;
  costUsd?: number | null;
  requestId?: string;
  allowed?: boolean;
  reason?: string | null;
}

export const AGENT_EVENTS = `subscription AgentEvents($storyId: ID!, $afterSeq: Int) {
  agentEvents(storyId: $storyId, afterSeq: $afterSeq) {
    __typename seq run at
    ... on AgentStatusEvent { status }
    ... on AgentOutputEvent { text }
    ... on AgentJsonEvent { data }
    ... on AgentDoneEvent { sessionId exitCode }
    ... on AgentErrorEvent { message }
    ... on AgentToolCallEvent { callId tool kind input }
    ... on AgentToolResultEvent { callId isError output }
    ... on AgentUsageEvent { inputTokens outputTokens costUsd }
    ... on AgentApprovalRequestEvent { requestId tool input }
    ... on AgentApprovalResolvedEvent { requestId allowed reason }
  }
}`;

/** Whether a run of this status is still going. */
export function isActive(status: AgentStatus): boolean {
  return status === 'PENDING' || status === 'RUNNING';
}

/** What a person reads of a failed operation: the server's own message, else the client's. */
export function errorMessage(error: CombinedError | undefined): string | undefined {
  return error ? (error.graphQLErrors[0]?.message ?? error.message) : undefined;
}

/** A cost as people read it. */
export function formatCost(costUsd: number | null | undefined): string {
  if (costUsd === null || costUsd === undefined) return '–';
  return `$${costUsd < 0.01 && costUsd > 0 ? costUsd.toFixed(4) : costUsd.toFixed(2)}`;
}

/** A time as "12:03:04", or "–". */
export function formatTime(iso: string | null | undefined): string {
  return iso ? new Date(iso).toLocaleTimeString() : '–';
}
