import { isPlainObject } from '../../plain-object.js';
import { OutputTail, type RunOutcome, type RunParser, stripTerminalCodes } from '../agent-adapter.js';
import { describeExit, type ProcessExit } from '../agent-process.js';
import type { AgentEventPayload, Usage } from '../events.js';

/** A JSON object, as parsed from an agent's line. */
export type JsonObject = Record<string, unknown>;

/** Whether a value is a JSON object. */
export const isObject: (value: unknown) => value is JsonObject = isPlainObject;

/** A string field, or undefined. */
export function stringField(object: unknown, key: string): string | undefined {
  const value = isObject(object) ? object[key] : undefined;
  return typeof value === 'string' ? value : undefined;
}

/** A number field, or undefined. */
export function numberField(object: unknown, key: string): number | undefined {
  const value = isObject(object) ? object[key] : undefined;
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}

function parseObject(text: string): { data: JsonObject; raw: string } | undefined {
  const raw = text.trim();
  if (!raw.startsWith('{')) return undefined;
  try {
    const value: unknown = JSON.parse(raw);
    return isObject(value) ? { data: value, raw } : undefined;
  } catch {
    return undefined;
  }
}

/** A JSON object line, or undefined. Lines under a terminal may carry escape codes around it. */
export function parseJsonLine(line: string): { data: JsonObject; raw: string } | undefined {
  return parseObject(line) ?? (line.includes('\u001b') ? parseObject(stripTerminalCodes(line)) : undefined);
}

/**
 * The common part of the parsers of CLIs that print one JSON object per line: each such
 * line becomes a json event (the object unchanged) followed by what the kind derives from
 * it; any other line is plain output without escape codes (none when empty once stripped).
 * A subclass reads the objects, records the session, usage and failure it sees, and says
 * how a clean exit is judged.
 */
export abstract class JsonLinesParser implements RunParser {
  sessionId: string | undefined;
  usage: Usage | undefined;
  turnsEnded = 0;
  /** The failure the CLI reported, if any: it decides the outcome. */
  protected failure: string | undefined;
  protected readonly tail = new OutputTail();

  parseLine(line: string): AgentEventPayload[] {
    const json = parseJsonLine(line);
    if (json === undefined) {
      const text = stripTerminalCodes(line);
      if (text.trim() === '') return [];
      this.tail.add(text);
      return [...this.beforePlainText(), { type: 'output', text }];
    }
    return [{ type: 'json', data: json.data, raw: json.raw }, ...this.readObject(json.data)];
  }

  end(): AgentEventPayload[] {
    return [];
  }

  outcome(exit: ProcessExit): RunOutcome {
    if (this.failure !== undefined) return { status: 'FAILED', reason: this.failure };
    if (exit.exitCode !== 0) return { status: 'FAILED', reason: this.tail.describe(`agent ${describeExit(exit)}`) };
    const missing = this.missingEnd();
    return missing === undefined ? { status: 'COMPLETED' } : { status: 'FAILED', reason: this.tail.describe(missing) };
  }

  /** The events a JSON object of this CLI gives, after its json event. */
  protected abstract readObject(data: JsonObject): AgentEventPayload[];

  /** Events held back (text in pieces) that a plain line must not overtake. */
  protected beforePlainText(): AgentEventPayload[] {
    return [];
  }

  /** Why a clean exit is still a failure (no final line, for CLIs that print one), or undefined. */
  protected missingEnd(): string | undefined {
    return undefined;
  }
}
