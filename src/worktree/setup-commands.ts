import { spawn } from 'node:child_process';

/** How much of a failed setup command's output its error quotes. */
const OUTPUT_TAIL_BYTES = 2000;

/** A `[worktree] setup` command failed; the worktree stays, and setup runs again next time. */
export class SetupCommandError extends Error {
  constructor(
    readonly command: string,
    readonly exitCode: number | null,
    readonly signal: NodeJS.Signals | null,
    readonly outputTail: string,
  ) {
    const how = exitCode === null ? `was killed by ${signal ?? 'a signal'}` : `exited with code ${exitCode}`;
    const output = outputTail.trim() === '' ? ' and printed nothing' : `; its last output:\n${outputTail.trimEnd()}`;
    super(`setup command ${JSON.stringify(command)} ${how}${output}`);
    this.name = 'SetupCommandError';
  }
}

/** Setup was aborted (the story was stopped while it ran). */
export class SetupAbortedError extends Error {
  constructor(command: string) {
    super(`setup command ${JSON.stringify(command)} was interrupted because the story was stopped`);
    this.name = 'SetupAbortedError';
  }
}

/**
 * Runs one setup command with `sh -c` in `cwd`: it is the user's own configuration, and a
 * story id rendered into it cannot inject anything because of its character set. The
 * command runs in a process group of its own so that an abort reaches its children.
 * @throws SetupCommandError when it exits non-zero; SetupAbortedError when `signal` aborts it.
 */
export function runSetupCommand(
  command: string,
  options: { cwd: string; env: NodeJS.ProcessEnv; signal?: AbortSignal },
): Promise<void> {
  return new Promise((resolve, reject) => {
    if (options.signal?.aborted) {
      reject(new SetupAbortedError(command));
      return;
    }
    const child = spawn('sh', ['-c', command], {
      cwd: options.cwd,
      env: options.env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let tail = '';
    const keepTail = (chunk: Buffer): void => {
      tail = (tail + chunk.toString('utf8')).slice(-OUTPUT_TAIL_BYTES);
    };
    child.stdout.on('data', keepTail);
    child.stderr.on('data', keepTail);

    const onAbort = (): void => {
      if (child.pid !== undefined) {
        try {
          process.kill(-child.pid, 'SIGTERM');
        } catch {
          // already gone
        }
      }
    };
    options.signal?.addEventListener('abort', onAbort, { once: true });

    child.on('error', (error) => {
      options.signal?.removeEventListener('abort', onAbort);
      reject(error);
    });
    child.on('close', (exitCode, signal) => {
      options.signal?.removeEventListener('abort', onAbort);
      if (options.signal?.aborted) reject(new SetupAbortedError(command));
      else if (exitCode === 0) resolve();
      else reject(new SetupCommandError(command, exitCode, signal, tail));
    });
  });
}
