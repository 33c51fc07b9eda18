import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  type AgentCapabilities,
  type AnyMessage,
  client,
  type ClientConnection,
  PROTOCOL_VERSION,
  RequestError,
  type McpServer,
  type RequestPermissionResponse,
} from '@agentclientprotocol/sdk';
import type { PermissionMode } from '../../config/config.js';
import { describeError } from '../../errors.js';
import type { Logger } from '../../logger.js';
import { packageVersion } from '../../version.js';
import type { ApprovalDecision } from '../agent-adapter.js';
import type { AgentChannel } from '../control-session.js';
import { AGENT_POOL_BIN, type McpEndpoint, MCP_SERVER_NAME, MCP_TOKEN_VARIABLE } from '../mcp-access.js';
import type { PipedProcess } from '../pipe-process.js';
import { type AcpRunParser, errorText, type JsonRpcMessage } from './acp.js';
import { isObject, type JsonObject, stringField } from './json-lines.js';

/**
 * The session modes that make an agent ask as a permission mode says, by the ids agents
 * give them (Gemini CLI: default, autoEdit, plan; opencode: build, plan; codex-acp:
 * read-only, workspace-write, whose sandbox asks the client before a command leaves it),
 * best first. An agent that offers none of them keeps its own (its configuration decides
 * what it asks).
 */
const MODE_IDS: Readonly<Record<Exclude<PermissionMode, 'bypassPermissions'>, readonly string[]>> = {
  default: ['default', 'ask', 'read-only'],
  acceptEdits: ['autoEdit', 'acceptEdits', 'auto_edit', 'accept_edits', 'workspace-write'],
  plan: ['plan', 'read-only'],
};

/**
 * How long the agent must have sent nothing after answering session/load before the first
 * prompt goes: Gemini CLI (0.61) answers the load before it has streamed the history, and
 * streams it on without waiting. Updates until the first prompt are the replay.
 * @default 300
 */
const REPLAY_QUIET_MS = 300;
/** The longest wait for a load's replay to end. @default 10000 */
const REPLAY_WAIT_MS = 10_000;

/**
 * opencode asks nothing with its defaults: its `permission` setting decides. The settings
 * that make it ask as a permission mode says, given in OPENCODE_CONFIG_CONTENT (merged over
 * the user's own configuration) unless the profile sets that variable itself.
 */
const OPENCODE_PERMISSIONS: Readonly<Record<Exclude<PermissionMode, 'bypassPermissions'>, Record<string, string>>> = {
  default: { edit: 'ask', bash: 'ask', webfetch: 'ask' },
  acceptEdits: { edit: 'allow', bash: 'ask', webfetch: 'ask' },
  plan: { edit: 'ask', bash: 'ask', webfetch: 'ask' },
};

/** The environment an ACP agent needs besides the profile's to ask as `permissionMode` says (opencode's permission setting). */
export function acpEnvironment(command: string, permissionMode: PermissionMode, env: Readonly<Record<string, string>>): Record<string, string> {
  if (permissionMode === 'bypassPermissions' || path.basename(command) !== 'opencode' || env.OPENCODE_CONFIG_CONTENT !== undefined) return {};
  return { OPENCODE_CONFIG_CONTENT: JSON.stringify({ permission: OPENCODE_PERMISSIONS[permissionMode] }) };
}

const CANCELLED: RequestPermissionResponse = { outcome: { outcome: 'cancelled' } };

function asObject(value: unknown): JsonObject {
  return isObject(value) ? value : {};
}

/** A permission request's answer, which a person may give before the SDK has handed over the request. */
interface PermissionAnswer {
  promise: Promise<RequestPermissionResponse>;
  resolve(response: RequestPermissionResponse): void;
}

function permissionAnswer(): PermissionAnswer {
  let resolve!: (response: RequestPermissionResponse) => void;
  const promise = new Promise<RequestPermissionResponse>((settle) => {
    resolve = settle;
  });
  return { promise, resolve };
}

/**
 * agent-pool's tools as a session's MCP server: over HTTP with the token in a header where
 * the agent says it can, else (every ACP agent can) `agent-pool mcp` on stdio, the token in
 * its environment, not its argv.
 */
function mcpServersFor(endpoint: McpEndpoint | undefined, capabilities: AgentCapabilities | undefined): McpServer[] {
  if (!endpoint) return [];
  if (capabilities?.mcpCapabilities?.http) {
    return [{ type: 'http', name: MCP_SERVER_NAME, url: endpoint.url, headers: [{ name: 'Authorization', value: `Bearer ${endpoint.token}` }] }];
  }
  return [
    {
      name: MCP_SERVER_NAME,
      command: process.execPath,
      args: [AGENT_POOL_BIN, 'mcp', '--url', endpoint.url],
      env: [{ name: MCP_TOKEN_VARIABLE, value: endpoint.token }],
    },
  ];
}

/** What an ACP connection needs from its run. */
export interface AcpConnectionOptions {
  /** The agent, on pipes. */
  process: PipedProcess;
  /** The run's parser: it sees every message both ways. */
  parser: AcpRunParser;
  /** The story's worktree: the session's cwd. */
  cwd: string;
  /** The session to resume or load (a follow-up run). */
  resumeSessionId: string | undefined;
  /** agent-pool's MCP endpoint, given to the session (`mcp = true`). */
  mcp?: McpEndpoint;
  permissionMode: PermissionMode;
  /** How long the agent may take to exit once its input ended before it is ended (SIGTERM). */
  graceMs: number;
  /** The session could not be started: the run ends FAILED with this reason. */
  fail(reason: string): void;
  /**
   * A permission request was answered without a person (the SDK refused it as invalid, or
   * cancelled it because the agent withdrew it): its approval is settled with this reason.
   */
  settled(requestId: string, reason: string): void;
  logger: Logger;
  label: string;
}

/**
 * The client side of the Agent Client Protocol for one run, over the official SDK: it
 * starts the session (initialize, then session/new, or session/resume or session/load for a
 * follow-up), sets the mode the profile's permission mode asks for, and is the run's
 * {@link AgentChannel}: a message is a `session/prompt`, an answer the permission request's
 * response, an interrupt `session/cancel`, and the end of input the end of the agent's stdin.
 *
 * It declares no client capabilities (no `fs/*`, no `terminal/*`): the agent uses its own
 * tools in its cwd, and the SDK answers any such request "method not found". The agent's
 * stdout is read by the run: its parser records each message, then hands it here.
 */
export class AcpConnection implements AgentChannel {
  readonly takesUpdatedInput = false;
  readonly #options: AcpConnectionOptions;
  readonly #connection: ClientConnection;
  #incoming!: ReadableStreamDefaultController<AnyMessage>;
  /** The session id, once the session is started. */
  readonly #session: Promise<string>;
  readonly #answers = new Map<string, PermissionAnswer>();
  #closeTimer: NodeJS.Timeout | undefined;
  #closed = false;
  /** The agent exited: what fails from now on is its exit's to explain (the run's parser does). */
  #disposed = false;
  /** When the agent last sent a message (performance.now()). */
  #lastReceived = 0;

  constructor(options: AcpConnectionOptions) {
    this.#options = options;
    const { process: agent, parser } = options;
    const stream = {
      readable: new ReadableStream<AnyMessage>({
        start: (controller) => {
          this.#incoming = controller;
        },
      }),
      writable: new WritableStream<AnyMessage>({
        write: (message) => {
          const answered = 'method' in message ? undefined : parser.approvalFor(message.id);
          parser.sent(message as JsonObject);
          agent.writeStdin(`${JSON.stringify(message)}\n`);
          if (answered !== undefined) this.#answered(answered, message as JsonObject);
        },
      }),
    };
    this.#connection = client({ name: 'agent-pool' })
      .onRequest('session/request_permission', ({ requestId, signal }) => {
        // The parser read the request's line before handing it here, and made its approval.
        const id = parser.approvalFor(requestId);
        if (id === undefined) return CANCELLED;
        const answer = this.#answer(id);
        signal.addEventListener('abort', () => answer.resolve(CANCELLED), { once: true });
        // Answered, it is forgotten: an id the agent uses again is a new request.
        return answer.promise.finally(() => this.#answers.delete(id));
      })
      // Updates are recorded from the lines themselves, in order, by the run's parser.
      .onNotification('session/update', () => undefined)
      .connect(stream);
    parser.onMessage = (message, forward) => this.receive(message, forward);
    this.#session = this.#start();
    // A failure is reported through `fail`; the sends that wait for the session go nowhere.
    this.#session.catch(() => undefined);
  }

  /** A message the agent sent (a line of its stdout, already recorded); `forward`: one for the SDK. */
  receive(message: JsonRpcMessage, forward: boolean): void {
    this.#lastReceived = performance.now();
    if (!forward) return;
    try {
      this.#incoming.enqueue(message as AnyMessage);
    } catch {
      // The connection is closed: the agent is exiting.
    }
  }

  send(text: string): void {
    // The answer is read from the agent's line by the parser; a session that did not start has failed the run.
    this.#session.then(
      (sessionId) => this.#connection.agent.request('session/prompt', { sessionId, prompt: [{ type: 'text', text }] }).catch(() => undefined),
      () => undefined,
    );
  }

  answer(requestId: string, decision: ApprovalDecision): void {
    this.#answer(requestId).resolve({ outcome: { outcome: 'selected', optionId: decision.optionId } });
  }

  interrupt(): void {
    this.#cancelPermissions();
    this.#session.then(
      (sessionId) => this.#connection.agent.notify('session/cancel', { sessionId }).catch(() => undefined),
      () => undefined,
    );
  }

  /**
   * The end of the agent's input, once what was sent before it is written (a cancel sent
   * just before); an agent that does not exit at it is ended after the grace period.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#cancelPermissions();
    // The SDK writes a message within promise jobs: by the next turn of the event loop it is out.
    const written = this.#session.then(
      () => new Promise((resolve) => setImmediate(resolve)),
      () => undefined,
    );
    void written.then(() => this.#options.process.closeStdin());
    this.#endAfterGrace('SIGTERM');
  }

  /** An agent still there a grace period after its input ended gets `signal` (SIGTERM, then SIGKILL). */
  #endAfterGrace(signal: 'SIGTERM' | 'SIGKILL'): void {
    this.#closeTimer = setTimeout(() => {
      if (this.#options.process.hasExited) return;
      this.#options.parser.endedAfterInput = true;
      try {
        this.#options.process.signalGroup(signal);
      } catch (error) {
        this.#options.logger.warn(`${this.#options.label}: could not end the agent after its input ended`, error);
      }
      if (signal === 'SIGTERM') this.#endAfterGrace('SIGKILL');
    }, this.#options.graceMs);
    this.#closeTimer.unref();
  }

  /** A response the client sent to a permission request: an answer the SDK gave without a person settles the approval. */
  #answered(requestId: string, response: JsonObject): void {
    const error = isObject(response.error) ? response.error : undefined;
    if (error) {
      this.#options.settled(requestId, `the agent's request was not valid, and the SDK refused it: ${errorText(error)}`);
      return;
    }
    const outcome = isObject(response.result) && isObject(response.result.outcome) ? response.result.outcome : undefined;
    if (outcome?.outcome === 'cancelled') this.#options.settled(requestId, 'cancelled: the turn ended, or the agent withdrew its request');
  }

  /**
   * The agent exited and its last lines were read (the run calls this once, after its
   * final flush): nothing more comes or goes.
   */
  dispose(): void {
    this.#disposed = true;
    clearTimeout(this.#closeTimer);
    this.#cancelPermissions();
    try {
      this.#incoming.close();
    } catch {
      // already closed
    }
    this.#connection.close();
  }

  /** The answer of a permission request, made by whichever comes first: the request or a person's answer. */
  #answer(requestId: string): PermissionAnswer {
    let answer = this.#answers.get(requestId);
    if (!answer) {
      answer = permissionAnswer();
      this.#answers.set(requestId, answer);
    }
    return answer;
  }

  /** Answers every permission request still open `cancelled`, as ACP asks of a client that cancels the turn. */
  #cancelPermissions(): void {
    for (const answer of this.#answers.values()) answer.resolve(CANCELLED);
  }

  async #start(): Promise<string> {
    const { parser, cwd, resumeSessionId } = this.#options;
    const agent = this.#connection.agent;
    try {
      const init = await agent.request('initialize', {
        protocolVersion: PROTOCOL_VERSION,
        clientCapabilities: { fs: { readTextFile: false, writeTextFile: false }, terminal: false },
        clientInfo: { name: 'agent-pool', version: packageVersion() },
      });
      let session: JsonObject;
      let sessionId: string;
      const mcpServers = mcpServersFor(this.#options.mcp, init.agentCapabilities);
      if (resumeSessionId === undefined) {
        const answer: unknown = await agent.request('session/new', { cwd, mcpServers });
        session = isObject(answer) ? answer : {};
        sessionId = stringField(session, 'sessionId') ?? '';
        if (sessionId === '') throw new Error('the agent answered session/new without a sessionId');
      } else {
        const capabilities = init.agentCapabilities;
        sessionId = resumeSessionId;
        parser.sessionId = resumeSessionId;
        if (capabilities?.sessionCapabilities?.resume) {
          session = asObject(await agent.request('session/resume', { sessionId, cwd, mcpServers }));
        } else if (capabilities?.loadSession) {
          session = asObject(await agent.request('session/load', { sessionId, cwd, mcpServers }));
          await this.#replayEnded();
        } else {
          throw new Error(
            `the agent (${init.agentInfo?.name ?? 'unnamed'}) can neither resume nor load a session, so a follow-up cannot continue session ${sessionId}: start a new run with startAgent`,
          );
        }
      }
      await this.#setMode(sessionId, session);
      return sessionId;
    } catch (error) {
      // The agent's own words: a JSON-RPC error's data often says more than its message.
      const said = error instanceof RequestError ? errorText({ message: error.message, data: error.data }) : describeError(error);
      const reason = `the ACP session could not be started: ${said}`;
      // Once the agent has exited or its input has ended, its exit says why (the run's parser).
      if (!this.#closed && !this.#disposed) this.#options.fail(reason);
      throw error;
    }
  }

  /** Resolves once the agent has been quiet for {@link REPLAY_QUIET_MS} (at most {@link REPLAY_WAIT_MS}). */
  async #replayEnded(): Promise<void> {
    const started = performance.now();
    for (;;) {
      const quietFor = performance.now() - this.#lastReceived;
      if (quietFor >= REPLAY_QUIET_MS || performance.now() - started >= REPLAY_WAIT_MS || this.#closed) return;
      await sleep(REPLAY_QUIET_MS - quietFor);
    }
  }

  /** Sets the session mode the profile's permission mode asks for, where the agent offers one (a mode, or a config option of category "mode"). */
  async #setMode(sessionId: string, session: JsonObject): Promise<void> {
    const { permissionMode, logger, label } = this.#options;
    if (permissionMode === 'bypassPermissions') return;
    const wanted = MODE_IDS[permissionMode];
    const modes = isObject(session.modes) && Array.isArray(session.modes.availableModes) ? session.modes.availableModes : [];
    const modeId = wanted.find((id) => modes.some((mode) => stringField(mode, 'id') === id));
    if (modeId !== undefined) {
      if (stringField(session.modes, 'currentModeId') !== modeId) await this.#connection.agent.request('session/set_mode', { sessionId, modeId });
      return;
    }
    const options = Array.isArray(session.configOptions) ? session.configOptions : [];
    const modeOption = options.find((option) => stringField(option, 'category') === 'mode');
    const values = isObject(modeOption) && Array.isArray(modeOption.options) ? modeOption.options : [];
    const value = wanted.find((id) => values.some((candidate) => stringField(candidate, 'value') === id));
    if (isObject(modeOption) && value !== undefined) {
      if (stringField(modeOption, 'currentValue') !== value) {
        await this.#connection.agent.request('session/set_config_option', { sessionId, configId: stringField(modeOption, 'id') ?? 'mode', value });
      }
      return;
    }
    logger.warn(`${label}: the agent offers no mode for permission_mode "${permissionMode}"; its own configuration decides what it asks`);
  }
}
