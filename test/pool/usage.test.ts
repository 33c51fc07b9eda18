import { describe, expect, it } from 'vitest';
import { addUsage } from '../../src/pool/events.js';

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
