import { describe, expect, it } from 'vitest';
import { addUsage } from '../../src/pool/events.js';
import { tokenCount } from '../../src/schema/usage.js';

describe('addUsage', () => {
  it('adds what either reports, and keeps undefined only where neither does', () => {
    expect(addUsage({ inputTokens: 10, costUsd: 0.5 }, { inputTokens: 5, outputTokens: 3 })).toEqual({
      inputTokens: 15,
      outputTokens: 3,
      cachedInputTokens: undefined,
      costUsd: 0.5,
    });
  });

  it('stops at the largest finite number: two costs an agent printed cannot add up to Infinity', () => {
    const sum = addUsage({ costUsd: 1.7e308 }, { costUsd: 1.7e308 });
    expect(sum!.costUsd).toBe(Number.MAX_VALUE);
    expect(addUsage({ costUsd: -1.7e308 }, { costUsd: -1.7e308 })!.costUsd).toBe(-Number.MAX_VALUE);
    expect(JSON.stringify(sum)).toContain('1.7976931348623157e+308');
  });
});

describe('tokenCount (GraphQL)', () => {
  it('reads a count past the largest Int as the largest, so that the field never fails', () => {
    expect(tokenCount(1e308)).toBe(2 ** 31 - 1);
    expect(tokenCount(3_000_000_000)).toBe(2 ** 31 - 1);
    expect(tokenCount(1234)).toBe(1234);
    expect(tokenCount(undefined)).toBeNull();
  });
});
