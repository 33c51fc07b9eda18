import { type AgentAdapter, OutputTail, type RunParser, stripTerminalCodes } from '../agent-adapter.js';
import { describeExit } from '../agent-process.js';

/**
 * `kind = "text"`: any program. Its argv is `<args...> <prompt>`, every non-empty line it
 * prints is an AgentOutputEvent, and exit code 0 is success.
 */
export const textAdapter: AgentAdapter = {
  args: ({ prompt, extraArgs }) => [...extraArgs, prompt],
  interruptSignal: null,
  createRunParser(): RunParser {
    const tail = new OutputTail();
    return {
      sessionId: undefined,
      usage: undefined,
      turnsEnded: 0,
      parseLine(line) {
        const text = stripTerminalCodes(line);
        if (text.trim() === '') return [];
        tail.add(text);
        return [{ type: 'output', text }];
      },
      end: () => [],
      outcome(exit) {
        if (exit.exitCode === 0) return { status: 'COMPLETED' };
        return { status: 'FAILED', reason: tail.describe(`agent ${describeExit(exit)}`) };
      },
    };
  },
};
