// The list's one-line preview of a prompt (web/src/api.ts).
import { describe, expect, it } from 'vitest';
import { firstLine } from '../../web/src/api.js';

describe('firstLine', () => {
  it('cuts by characters, never an emoji in half', () => {
    const cut = firstLine('😀'.repeat(100), 20);
    expect(cut).toBe(`${'😀'.repeat(19)}…`);
    expect(cut).not.toMatch(/[\ud800-\udbff](?![\udc00-\udfff])/);
  });

  it('keeps a short first line whole, and marks the lines that follow', () => {
    expect(firstLine('Fix the login form')).toBe('Fix the login form');
    expect(firstLine('Fix the login form\nand its tests')).toBe('Fix the login form …');
  });
});
