import { setTimeout as sleep } from 'node:timers/promises';
import type { ApprovalDecision, ControlProtocol } from './agent-adapter.js';
import { type AgentEvent, type AgentEventPayload, type ApprovalOption, allowsToolCall, claudeApprovalOptions } from './events.js';
import {
  AgentNotRunningError,
  ApprovalAlreadyAnsweredError,
  ApprovalNotFoundError,
  InputBacklogFullError,
  InvalidArgumentError,
} from './pool-errors.js';

/** An approval request that waits for a person's answer. */
export interface PendingApproval {
  requestId: string;
  tool: string;
  input: unknown;
  suggestions: unknown;
  /** The answers it offers (respondToApproval's optionId). */
  options: ApprovalOption[];
  requestedAt: Date;
}

/** What an agent waits for from a person. */
export type WaitReason = 'APPROVAL' | 'INPUT';

/**
 * A person's answer to an approval request, as respondToApproval takes it: `allow` (with
 * `remember`), or one of the request's options by its id.
 */
export interface ApprovalAnswer {
  allow?: boolean;
  /** One of the request's options (exclusive with `allow` and `remember`). */
  optionId?: string;
  /** Denied: what the model is told (a default otherwise); allowed: kept in the event only. */
  message?: string;
  /** Allowed: the input that runs instead of the requested one (a JSON object). */
  updatedInput?: unknown;
  /** Allowed: answer with the agent's own suggested rules, so the same request is not asked again in the run. */
  remember?: boolean;
}

/**
 * The option an answer chooses: the one named; else for `allow` its allow once (with
 * `remember`, allow always, or once where that is all it offers), for a denial its reject
 * once (else reject always). Never more than the person asked for.
 * @throws InvalidArgumentError when the request offers no such option.
 */
export function chooseOption(pending: PendingApproval, answer: ApprovalAnswer): ApprovalOption {
  const offered = (): string => pending.options.map((option) => `"${option.id}" (${option.kind})`).join(', ');
  if (answer.optionId !== undefined) {
    const option = pending.options.find((candidate) => candidate.id === answer.optionId);
    if (!option) throw new InvalidArgumentError(`optionId "${answer.optionId}" is not an option of request ${pending.requestId}; it offers ${offered()}`);
    return option;
  }
  const kinds = answer.allow ? (answer.remember ? ['allow_always', 'allow_once'] : ['allow_once']) : ['reject_once', 'reject_always'];
  for (const kind of kinds) {
    const option = pending.options.find((candidate) => candidate.kind === kind);
    if (option) return option;
  }
  const what = answer.allow ? (answer.remember ? 'allow' : 'allow once') : 'deny';
  throw new InvalidArgumentError(`request ${pending.requestId} offers no option to ${what} it; it offers ${offered()}: answer with optionId`);
}

/**
 * How a control session reaches its agent: Claude's stream-json lines on stdin, or an ACP
 * connection. Each call is sent at once; nothing here waits for the agent.
 */
export interface AgentChannel {
  /** Whether an allowed call can run with another input than the one asked (Claude's updatedInput). */
  readonly takesUpdatedInput: boolean;
  /** Starts a turn with a message from the user. */
  send(text: string): void;
  /** Answers an approval request. */
  answer(requestId: string, decision: ApprovalDecision): void;
  /** Interrupts the running turn. */
  interrupt(): void;
  /** The end of the agent's input: idle, it exits. */
  close(): void;
}

/** Claude's control channel: one JSON line per message on the agent's stdin pipe. */
export function stdinChannel(protocol: ControlProtocol, stdin: { writeStdin(data: string): void; closeStdin(): void }): AgentChannel {
  let interrupts = 0;
  return {
    takesUpdatedInput: true,
    send: (text) => stdin.writeStdin(`${protocol.userMessage(text)}\n`),
    answer: (requestId, decision) => stdin.writeStdin(`${protocol.answer(requestId, decision)}\n`),
    interrupt: () => stdin.writeStdin(`${protocol.interrupt(`interrupt-${++interrupts}`)}\n`),
    close: () => stdin.closeStdin(),
  };
}

/** What the model is told of a denial that gave no message. */
export const DENIED_MESSAGE = 'A person denied this tool call through agent-pool.';

/**
 * The most bytes of messages that may wait behind a running turn (sendMessage).
 * @default 4 MiB
 */
export const MAX_QUEUED_MESSAGE_BYTES = 4 * 1024 * 1024;

/** What a control session needs from its run. */
export interface ControlSessionContext {
  readonly storyId: string;
  /** Every request is allowed at once, as it comes (ACP's bypassPermissions). */
  readonly approveAll?: string;
  /** How long a finished turn waits for a message before the agent's input ends (0: it ends at once). */
  readonly keepOpenSeconds: number;
  /** Aborts when the run is being ended or is over: the keep-open wait ends with it. */
  readonly signal: AbortSignal;
  /** Records events in the story's log, in order. */
  emit(payloads: readonly AgentEventPayload[]): AgentEvent[];
  /** The run's facts changed (what it waits for, its approvals). */
  changed(): void;
}

/**
 * A run's conversation with an agent over its control channel (Claude's stream-json input,
 * an ACP connection): turns, the messages that wait behind a running turn, approval
 * requests and their answers, interrupts, and the end of the agent's input. It knows
 * nothing of processes or protocols: the run gives it the agent's channel once the agent runs.
 */
export class ControlSession {
  readonly #context: ControlSessionContext;
  #input: AgentChannel | undefined;
  readonly #approvals = new Map<string, PendingApproval>();
  readonly #answered = new Set<string>();
  /** Messages that wait for the running turn to end. */
  readonly #messages: string[] = [];
  #turnRunning = false;
  #waitingForInput = false;
  #keepOpen: AbortController | undefined;
  #inputClosed = false;
  #lastTurnInterrupted = false;

  constructor(context: ControlSessionContext) {
    this.#context = context;
  }

  /** The approval requests waiting for an answer, oldest first. */
  get pendingApprovals(): PendingApproval[] {
    return [...this.#approvals.values()];
  }

  /** What the agent waits for from a person, if anything. */
  get waitingFor(): WaitReason | undefined {
    if (this.#approvals.size > 0) return 'APPROVAL';
    return this.#waitingForInput ? 'INPUT' : undefined;
  }

  /** Whether a person interrupted the last turn and sent nothing after it. */
  get lastTurnInterrupted(): boolean {
    return this.#lastTurnInterrupted;
  }

  /** The agent runs: its first turn is the prompt. */
  begin(input: AgentChannel, prompt: string): void {
    this.#input = input;
    this.#startTurn(prompt);
  }

  /** The first step of a stop: the agent's own interrupt, and the end of its input (idle, it exits). */
  stop(): void {
    if (!this.#input) return;
    if (this.#turnRunning) this.#input.interrupt();
    this.#closeInput();
  }

  /** The run ended: whatever waits for an answer is refused. */
  end(reason: string): void {
    this.#keepOpen?.abort();
    this.#waitingForInput = false;
    this.refusePending(reason);
  }

  /** An approval request the agent printed; with `approveAll`, allowed at once. */
  requested(event: Extract<AgentEvent, { type: 'approval_request' }>): void {
    const { requestId, tool, input, suggestions, at } = event;
    const options = event.options ?? claudeApprovalOptions(suggestions);
    this.#approvals.set(requestId, { requestId, tool, input, suggestions, options, requestedAt: at });
    if (this.#context.approveAll !== undefined && this.#input && !this.#inputClosed) {
      try {
        this.answer(requestId, { allow: true, remember: true, message: this.#context.approveAll }, 'RUNNING');
      } catch {
        // It offers no option to allow it: it waits for a person, as in any other mode.
      }
    }
  }

  /**
   * Answers an approval request, once: the answer goes to the agent and an
   * approval_resolved event records it. Allowed, the request's own input runs unless
   * `updatedInput` replaces it; allowed always (`remember`), Claude also gets its own suggestions.
   * @throws ApprovalAlreadyAnsweredError, ApprovalNotFoundError, AgentNotRunningError,
   *   InvalidArgumentError (no such option; updatedInput for an agent that takes none).
   */
  answer(requestId: string, answer: ApprovalAnswer, status: string): void {
    if (this.#answered.has(requestId)) throw new ApprovalAlreadyAnsweredError(this.#context.storyId, requestId);
    const pending = this.#approvals.get(requestId);
    if (!pending) throw new ApprovalNotFoundError(this.#context.storyId, requestId);
    // Stopping: the agent reads no more, and what waits is refused when it exits.
    if (this.#inputClosed || !this.#input) {
      throw new AgentNotRunningError(this.#context.storyId, status, 'it is being stopped, and its pending approvals will be refused');
    }
    if (answer.updatedInput !== undefined && !this.#input.takesUpdatedInput) {
      throw new InvalidArgumentError('this agent runs a tool call only with the input it asked for: leave out updatedInput');
    }
    const option = chooseOption(pending, answer);
    const allowed = allowsToolCall(option.kind);
    if (!allowed && answer.updatedInput !== undefined) {
      throw new InvalidArgumentError(`updatedInput goes with an option that allows the call; "${option.id}" (${option.kind}) denies it`);
    }
    const message = answer.message ?? null;
    const decision: ApprovalDecision = allowed
      ? {
          allow: true,
          optionId: option.id,
          updatedInput: answer.updatedInput ?? pending.input,
          ...(option.kind === 'allow_always' && pending.suggestions != null ? { updatedPermissions: pending.suggestions } : {}),
        }
      : { allow: false, optionId: option.id, message: message ?? DENIED_MESSAGE };
    this.#input.answer(requestId, decision);
    this.#resolve(requestId, allowed, allowed ? message : (message ?? DENIED_MESSAGE), option.id);
    this.#context.changed();
  }

  /**
   * A new turn: sent at once when the agent waits for one, queued behind the running turn
   * (or the agent's start) otherwise.
   * @throws AgentNotRunningError once the input has ended; InputBacklogFullError.
   */
  send(text: string, status: string): void {
    if (this.#inputClosed) throw new AgentNotRunningError(this.#context.storyId, status);
    if (this.#turnRunning || !this.#input) {
      const queued = this.#messages.reduce((sum, message) => sum + Buffer.byteLength(message), 0);
      if (queued + Buffer.byteLength(text) > MAX_QUEUED_MESSAGE_BYTES) throw new InputBacklogFullError(queued, MAX_QUEUED_MESSAGE_BYTES);
      this.#messages.push(text);
    } else {
      this.#startTurn(text);
    }
    this.#context.changed();
  }

  /**
   * Ends the current turn at once; the session stays and the agent waits for the next
   * message. Pending approvals of the turn are refused.
   * @throws AgentNotRunningError when the agent does not run or its input has ended.
   */
  interrupt(status: string): void {
    if (!this.#input || this.#inputClosed) throw new AgentNotRunningError(this.#context.storyId, status);
    if (!this.#turnRunning) return;
    this.#lastTurnInterrupted = true;
    this.#input.interrupt();
    this.refusePending('the turn was interrupted');
    this.#context.changed();
  }

  /**
   * A turn ended: the next queued message goes, else the session waits keep_open_seconds
   * for one, else the agent's input ends. Nothing follows once the run is being ended.
   */
  turnEnded(): void {
    this.#turnRunning = false;
    if (this.#inputClosed || this.#context.signal.aborted) return;
    const next = this.#messages.shift();
    if (next !== undefined) {
      this.#startTurn(next);
      return;
    }
    if (this.#context.keepOpenSeconds <= 0) {
      this.#closeInput();
      return;
    }
    this.#waitingForInput = true;
    const keepOpen = new AbortController();
    this.#keepOpen = keepOpen;
    const runEnding = (): void => keepOpen.abort();
    this.#context.signal.addEventListener('abort', runEnding, { once: true });
    sleep(this.#context.keepOpenSeconds * 1000, undefined, { signal: keepOpen.signal, ref: false })
      .then(
        () => {
          this.#waitingForInput = false;
          this.#closeInput();
          this.#context.changed();
        },
        () => undefined, // a message came, or the run is ending
      )
      .finally(() => this.#context.signal.removeEventListener('abort', runEnding));
  }

  /** An approval the agent's side settled without a person (withdrawn, or invalid): refused with the reason, if it still waits. */
  settle(requestId: string, reason: string): void {
    if (!this.#approvals.has(requestId)) return;
    this.#resolve(requestId, false, reason);
    this.#context.changed();
  }

  /** Refuses every pending approval (the turn or the run ended first), each with an event. */
  refusePending(message: string): void {
    for (const requestId of [...this.#approvals.keys()]) this.#resolve(requestId, false, message);
  }

  #startTurn(text: string): void {
    this.#keepOpen?.abort();
    this.#keepOpen = undefined;
    this.#waitingForInput = false;
    this.#turnRunning = true;
    this.#lastTurnInterrupted = false;
    this.#input!.send(text);
  }

  #closeInput(): void {
    this.#inputClosed = true;
    this.#input?.close();
  }

  #resolve(requestId: string, allowed: boolean, reason: string | null, optionId?: string): void {
    this.#approvals.delete(requestId);
    this.#answered.add(requestId);
    this.#context.emit([{ type: 'approval_resolved', requestId, allowed, reason, ...(optionId === undefined ? {} : { optionId }) }]);
  }
}
