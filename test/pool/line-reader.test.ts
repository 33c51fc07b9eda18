import { describe, expect, it } from 'vitest';
import { LineReader } from '../../src/pool/line-reader.js';

function readAll(chunks: Buffer[], reader = new LineReader()): string[] {
  const lines = chunks.flatMap((chunk) => reader.push(chunk));
  return [...lines, ...reader.end()];
}

function bytewise(text: string): Buffer[] {
  return [...Buffer.from(text)].map((byte) => Buffer.from([byte]));
}

describe('LineReader', () => {
  it('splits lines across chunk boundaries and drops the terminal\'s \\r', () => {
    expect(readAll([Buffer.from('one\r\ntw'), Buffer.from('o\r'), Buffer.from('\nthree\r\n')])).toEqual([
      'one',
      'two',
      'three',
    ]);
  });

  it('keeps a partial last line until its newline, and gives it at the end', () => {
    const reader = new LineReader();
    expect(reader.push(Buffer.from('no newline yet'))).toEqual([]);
    expect(reader.push(Buffer.from(' still'))).toEqual([]);
    expect(reader.end()).toEqual(['no newline yet still']);
  });

  it('decodes UTF-8 split across chunks, even one byte at a time', () => {
    const text = 'héllo wörld — 日本語 🎉\r\nnext ✓\r\n';
    expect(readAll(bytewise(text))).toEqual(['héllo wörld — 日本語 🎉', 'next ✓']);
  });

  it('keeps empty lines and \\r inside a line', () => {
    expect(readAll([Buffer.from('a\r\n\r\nprogress 1\rprogress 2\r\n')])).toEqual(['a', '', 'progress 1\rprogress 2']);
  });

  it('reads a line of several megabytes arriving in small chunks', () => {
    const big = 'x'.repeat(8 * 1024 * 1024);
    const data = Buffer.from(`${big}\r\nafter\r\n`);
    const chunks: Buffer[] = [];
    for (let offset = 0; offset < data.length; offset += 4096) chunks.push(data.subarray(offset, offset + 4096));
    const lines = readAll(chunks);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toHaveLength(big.length);
    expect(lines[1]).toBe('after');
  });

  it('cuts a line longer than the limit instead of holding it for ever', () => {
    const reader = new LineReader({ maxLineLength: 10 });
    expect(reader.push(Buffer.from('0123456789abc'))).toEqual(['0123456789abc']);
    expect(reader.push(Buffer.from('de\n'))).toEqual(['de']);
  });
});
