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

  it('escapes Unicode\'s line breaks and controls too: NEL, the separators, C1 controls, bidirectional marks', () => {
    const fake = '2026-01-01T00:00:00.000Z info story admin run 1: COMPLETED';
    const text = captured(() => {
      const logger = stderrLogger();
      logger.info(`story evil-1 run 1: FAILED, its last output:\u0085${fake}\u2028${fake}\u2029x\u009b31m\u202eexe.png`);
      logger.error('failed', new Error(`bad\u0085${fake}`));
    });
    // Every way a reader may split lines (Python's splitlines() splits at all of these).
    const lines = text.trimEnd().split(/\r\n|[\n\r\u000b\u000c\u001c-\u001e\u0085\u2028\u2029]/);
    // Two records; the error's stack lines are indented under the second.
    expect(lines.filter((line) => !line.startsWith(' '))).toHaveLength(2);
    expect(lines[0]).toMatch(
      /^\S+Z info story evil-1 run 1: FAILED, its last output:\\u0085\S+Z info story admin run 1: COMPLETED\\u2028.*\\u2029x\\u009b31m\\u202eexe\.png$/,
    );
    expect(lines[1]).toMatch(/^\S+Z error failed$/);
    expect(lines[2]).toBe(`    Error: bad\\u0085${fake}`);
    // The honest twin: text in any script, emoji and joiners stay as they are.
    expect(captured(() => stderrLogger().info('ضبط 👩‍💻 می‌خواهم'))).toMatch(/ info ضبط 👩‍💻 می‌خواهم\n$/);
  });

  it('keeps an emoji whole where it cuts, and counts what it cut in characters', () => {
    const text = captured(() => stderrLogger().info(`a${'😀'.repeat(1100)}`));
    const message = text.slice(text.indexOf(' info ') + ' info '.length).trimEnd();
    // 1 + 999 emoji (1,999 code units) fit; the 1,000th would be cut in half.
    expect(message).toBe(`a${'😀'.repeat(999)}… (101 more characters)`);
    expect(message).not.toContain('\ufffd');
  });

  it('escapes a backslash, so that text which looks like an escape cannot pass for one', () => {
    const text = captured(() => stderrLogger().info('x\\n2026-01-01T00:00:00.000Z info forged'));
    expect(text).toMatch(/ info x\\\\n2026-01-01T00:00:00\.000Z info forged\n$/);
    // A real line break is the single-backslash escape.
    expect(captured(() => stderrLogger().info('x\ny'))).toMatch(/ info x\\ny\n$/);
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
