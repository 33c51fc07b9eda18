import { parseArgs, type ParseArgsConfig } from 'node:util';
import { NotAGitRepositoryError, resolveProjectRoot } from '../worktree/project.js';
import { initCommand } from './init-command.js';

const USAGE = `Usage:
  agent-pool init [--project DIR] [--force]   write a commented agent-pool.toml with the defaults

Options:
  --project DIR   the git project (default: the current directory)
  -h, --help      show this help`;

/** A mistake on the command line: exit 2 with one line and the usage. */
class UsageError extends Error {}

function parse<T extends ParseArgsConfig['options']>(args: string[], options: T) {
  try {
    return parseArgs({ args, options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

/**
 * The directory the user ran the command in. Through `npm start` npm runs scripts in the
 * package's own folder and keeps the user's directory in `INIT_CWD`.
 */
function userDirectory(): string {
  if (process.env.npm_lifecycle_event === 'start' && process.env.INIT_CWD) return process.env.INIT_CWD;
  return process.cwd();
}

/**
 * Runs the `agent-pool` command line.
 * @returns the process exit code: 0 on success, 2 for a usage error, a directory that is
 *   not a git project, or an invalid config.
 */
export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'init': {
        const { values } = parse(rest, { project: { type: 'string' }, force: { type: 'boolean' } });
        if (values.help) return printUsage();
        const root = await resolveProjectRoot(values.project ?? userDirectory());
        return initCommand(root, { force: values.force ?? false });
      }
      case undefined:
      case '-h':
      case '--help':
        return printUsage();
      default:
        throw new UsageError(`unknown command ${JSON.stringify(command)}`);
    }
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`agent-pool: ${error.message}\n\n${USAGE}`);
      return 2;
    }
    if (error instanceof NotAGitRepositoryError) {
      console.error(`agent-pool: ${error.message}`);
      return 2;
    }
    throw error;
  }
}

function printUsage(): number {
  console.log(USAGE);
  return 0;
}
