import { closeSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import path from 'node:path';
import { hasExited } from '../pool/run-processes.js';
import { STATE_DIR_NAME } from '../worktree/project.js';

/** Another agent-pool server is already running for this project. */
export class ServerAlreadyRunningError extends Error {
  constructor(projectRoot: string, pid: number) {
    super(
      `another agent-pool server (pid ${pid}) is already running for ${projectRoot}: use that one, or stop it first`,
    );
    this.name = 'ServerAlreadyRunningError';
  }
}

interface LockOwner {
  pid: number;
  /** The process's start time (clock ticks since boot), so that a reused pid is not taken for the owner. */
  startTime: string;
}

/**
 * The start time of a live process from `/proc/<pid>/stat`, or undefined when it is gone.
 * A zombie (state `Z`: it has exited, its parent has not reaped it yet) or a dead one
 * (`X`, `x`) counts as gone: it keeps its stat, start time included, until it is reaped,
 * and a server killed with `kill -9` under a parent that does not reap it would otherwise
 * hold its lock for as long as that parent lives.
 */
function liveProcessStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // The fields after the command name (in parentheses, which may itself hold spaces and
    // parentheses) start at field 3, the state; the start time is field 22.
    if (hasExited(stat)) return undefined;
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/**
 * The lock that keeps a second server off a project: `.agent-pool/server.lock` holds the
 * owner's pid and start time. A lock whose owner is gone (a crash, `kill -9`), a zombie
 * or a process that reuses its pid is taken over.
 */
export class ServerLock {
  private constructor(private readonly file: string) {}

  /**
   * Takes the project's lock.
   * @throws ServerAlreadyRunningError when a live server holds it.
   */
  static acquire(projectRoot: string): ServerLock {
    const file = path.join(projectRoot, STATE_DIR_NAME, 'server.lock');
    mkdirSync(path.dirname(file), { recursive: true });
    const owner: LockOwner = { pid: process.pid, startTime: liveProcessStartTime(process.pid) ?? '' };
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const fd = openSync(file, 'wx', 0o600);
        writeSync(fd, JSON.stringify(owner));
        closeSync(fd);
        return new ServerLock(file);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      let holder: LockOwner | undefined;
      try {
        holder = JSON.parse(readFileSync(file, 'utf8')) as LockOwner;
      } catch {
        holder = undefined; // unreadable or half written: treated as stale
      }
      if (holder && holder.pid !== process.pid && liveProcessStartTime(holder.pid) === holder.startTime) {
        throw new ServerAlreadyRunningError(projectRoot, holder.pid);
      }
      try {
        unlinkSync(file);
      } catch {
        // someone else removed it first; try again
      }
    }
    throw new Error(`could not take the lock ${file}`);
  }

  /** Gives the lock up. */
  release(): void {
    try {
      unlinkSync(this.file);
    } catch {
      // already gone
    }
  }
}
