import { describe, expect, it, vi } from 'vitest';
import { stderrLogger, ThrottledLog } from '../src/logger.js';
import { memoryLogger } from './support/server.js';

function captured(write: () => void): string {
  let text = '';
  const spy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    text += String(chunk);
    return true;
  });
  try {
    write();
  } finally {
    spy.mockRestore();
  }
  return text;
}

describe('the server log', () => {
  it('keeps a client\'s text on one line: an injected newline cannot start a fake record', () => {
    const fake = '2026-12-01T00:00:00.000Z error token leaked: abc';
    const text = captured(() => {
      const logger = stderrLogger();
      logger.warn(`refused query "x\n${fake}"`);
      logger.error('failed', new Error(`bad\n${fake}`));
    });
    const lines = text.trimEnd().split('\n');
    // Every line that starts at column 0 is a real record: time, level, message.
    const records = lines.filter((line) => !line.startsWith(' '));
    expect(records).toHaveLength(2);
    expect(records[0]).toMatch(/^\S+Z warn refused query "x\\n2026-12-01T00:00:00.000Z error token leaked: abc"$/);
    expect(records[1]).toMatch(/^\S+Z error failed$/);
    expect(lines.some((line) => line.startsWith(fake))).toBe(false);
  });

  it('cuts a megabyte of client text to a short record', () => {
    const text = captured(() => stderrLogger().warn(`refused: ${'a'.repeat(1_000_000)}`));
    expect(text.length).toBeLessThan(2200);
    expect(text).toContain('more characters)');
  });

  it('writes one line per window of what clients cause, counting the rest', () => {
    const logger = memoryLogger();
    const throttled = new ThrottledLog(logger, 60_000);
    for (let i = 0; i < 1000; i++) throttled.warn(`bad frame ${i}`);
    expect(logger.lines).toEqual(['warn bad frame 0']);
  });
});

describe('the log level', () => {
  const levels = (text: string) => text.trimEnd().split('\n').map((line) => line.split(' ')[1]);
  const everyLevel = (logger: ReturnType<typeof stderrLogger>) => {
    logger.debug('d');
    logger.info('i');
    logger.warn('w');
    logger.error('e');
  };

  it('writes info and above by default, and every level at debug', () => {
    expect(levels(captured(() => everyLevel(stderrLogger())))).toEqual(['info', 'warn', 'error']);
    expect(levels(captured(() => everyLevel(stderrLogger('debug'))))).toEqual(['debug', 'info', 'warn', 'error']);
  });

  it('drops what is below the level given', () => {
    expect(levels(captured(() => everyLevel(stderrLogger('warn'))))).toEqual(['warn', 'error']);
    expect(levels(captured(() => everyLevel(stderrLogger('error'))))).toEqual(['error']);
  });
});
