import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentProcess } from '../../src/pool/agent-process.js';
import { spawnPtyProcess } from '../../src/pool/pty-process.js';

function shell(script: string, stdin: 'terminal' | 'pipe'): { agent: AgentProcess; output: () => string } {
  const agent = spawnPtyProcess({
    file: '/bin/sh',
    args: ['-c', script],
    cwd: tmpdir(),
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    cols: 80,
    rows: 24,
    stdin,
  });
  const chunks: Buffer[] = [];
  agent.onData((chunk) => chunks.push(chunk));
  // The last newline is the run helper's own, before its exit line (which is never passed on).
  return { agent, output: () => Buffer.concat(chunks).toString().replaceAll('\r', '').replace(/\n\n$/, '\n') };
}

const runDirs = () => readdirSync(tmpdir()).filter((name) => name.startsWith('agent-pool-run-'));

// A temp dir of this file's own: the run helpers of other test files, running meanwhile in
// the other worker, make and remove their dirs in the shared one.
const sharedTmpdir = process.env.TMPDIR;
let ownTmpdir: string;
beforeAll(() => {
  ownTmpdir = mkdtempSync(path.join(tmpdir(), 'agent-pool-pty-test-'));
  process.env.TMPDIR = ownTmpdir;
});
afterAll(() => {
  if (sharedTmpdir === undefined) delete process.env.TMPDIR;
  else process.env.TMPDIR = sharedTmpdir;
  rmSync(ownTmpdir, { recursive: true, force: true });
});

describe('the PTY process with stdin as a pipe', () => {
  it('gives the agent a pipe, not the terminal, for stdin, and its output still goes to the terminal', async () => {
    const before = runDirs();
    const { agent, output } = shell('if [ -t 0 ]; then echo stdin-is-a-tty; else echo stdin-is-a-pipe; fi; [ -t 1 ] && echo stdout-is-a-tty; cat', 'pipe');
    agent.writeStdin('first line\n');
    agent.writeStdin('second line\n');
    agent.closeStdin();
    const exit = await agent.exited;
    expect(exit).toEqual({ exitCode: 0, signal: null });
    expect(output()).toBe('stdin-is-a-pipe\nstdout-is-a-tty\nfirst line\nsecond line\n');
    // The FIFO's private dir is gone with the process.
    expect(runDirs()).toEqual(before);
  });

  it('ends cleanly when the agent never opens its stdin, even with input waiting', async () => {
    const before = runDirs();
    const { agent, output } = shell('exec </dev/null; echo done', 'pipe');
    agent.writeStdin('nobody reads this\n');
    expect(await agent.exited).toEqual({ exitCode: 0, signal: null });
    expect(output()).toBe('done\n');
    expect(runDirs()).toEqual(before);
  });

  it('keeps the terminal as stdin by default, and refuses writeStdin there', async () => {
    const { agent, output } = shell('[ -t 0 ] && echo stdin-is-a-tty', 'terminal');
    expect(() => agent.writeStdin('x')).toThrow('this agent reads its stdin from its terminal');
    await agent.exited;
    expect(output()).toBe('stdin-is-a-tty\n');
  });
});
