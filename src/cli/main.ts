import { packageVersion } from '../version.js';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { LOG_LEVELS, type LogLevel } from '../logger.js';
import { ConfigError } from '../config/config-error.js';
import { NotAGitRepositoryError, resolveProjectRoot } from '../worktree/project.js';
import { ServeError } from './serve-error.js';

/** A server's name in a cluster: it names its Redis channel and its runs. */
const RUNNER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

const USAGE = `Usage:
  agent-pool serve [--project DIR] [--host H] [--port P] [--token-file F | --token T]
                   [--no-auth] [--allow-origin O]... [--allow-host H]... [--role all|api|runner] [--runner-name NAME]
                   [--log-level debug|info|warn|error]
  agent-pool mcp [--url URL] [--project DIR]
  agent-pool init [--project DIR] [--force]
  agent-pool schema [--write FILE | --check FILE]
  agent-pool --version

Commands:
  serve    serve the project's agents over GraphQL (stops every agent on SIGINT/SIGTERM)
  mcp      relay MCP between stdio and the running server's /mcp (for claude mcp add)
  init     write a commented agent-pool.toml with every default
  schema   print the GraphQL schema (SDL)

Options:
  --project DIR   the git project (default: the current directory)
  --host H        the address to listen on (default: 127.0.0.1)
  --port P        the port (default: 4747; 0 picks a free one)
  --token-file F  a file that holds the token clients must send
                  (default: $AGENT_POOL_TOKEN, else .agent-pool/token)
  --token T       the token itself: visible to every local user in ps; prefer --token-file
  --no-auth       no token (refused unless the host is loopback)
  --allow-origin O  a web origin (https://dash.example.com) that may call the server (repeatable)
  --allow-host H  a host name requests may be addressed to, e.g. behind a proxy (repeatable)
  --log-level L   what the server logs to stderr: debug, info (default), warn or error
  --role ROLE         in a cluster: all (the default) or runner runs agents; api runs none
  --runner-name NAME  this server's name in a cluster ([bus] set; default: the host name)
  --url URL       (mcp) the server: the URL serve printed, http://HOST:PORT or .../mcp
                  (default: .agent-pool/server.json; the token from $AGENT_POOL_TOKEN,
                  the URL, else .agent-pool/token)
  --force         (init) overwrite an existing agent-pool.toml
  -h, --help      show this help
  -v, --version   print agent-pool's version`;

/** A mistake on the command line: exit 2 with one line and the usage. */
class UsageError extends Error {}

function parse<T extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: T) {
  try {
    return parseArgs({ args, options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false });
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

function parseLogLevel(text: string | undefined): LogLevel {
  if (text === undefined) return 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(text)) {
    throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(text)}`);
  }
  return text as LogLevel;
}

function parsePort(text: string | undefined): number {
  if (text === undefined) return 4747;
  const port = Number(text);
  if (!/^\d+$/.test(text) || port > 65535) throw new UsageError(`--port must be a number from 0 to 65535, got ${JSON.stringify(text)}`);
  return port;
}

/**
 * Why `agent-pool serve` cannot run on `platform`, or undefined on Linux: the pool reads
 * `/proc` to find and end every process of a run (and to tell a live server's lock from a
 * stale one), which no other platform has.
 */
export function unsupportedPlatform(platform: NodeJS.Platform): string | undefined {
  if (platform === 'linux') return undefined;
  return `agent-pool runs on Linux only (it reads /proc to find and end every process of a run); this is ${platform}`;
}

/**
 * Runs the `agent-pool` command line.
 * @returns the process exit code: 0 on success, 1 for a stale schema (`schema --check`),
 *   2 for a usage error, a directory that is not a git project, an invalid config, a
 *   project that already has a server, or `serve` on a platform other than Linux.
 */
export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'serve': {
        const unsupported = unsupportedPlatform(process.platform);
        if (unsupported !== undefined) {
          console.error(unsupported);
          return 2;
        }
        const { values } = parse(rest, {
          project: { type: 'string' },
          host: { type: 'string' },
          port: { type: 'string' },
          token: { type: 'string' },
          'token-file': { type: 'string' },
          'no-auth': { type: 'boolean' },
          'allow-origin': { type: 'string', multiple: true },
          'allow-host': { type: 'string', multiple: true },
          'log-level': { type: 'string' },
          'runner-name': { type: 'string' },
          role: { type: 'string' },
        });
        if (values.help) return printUsage();
        if (values.token !== undefined && values.token.trim() === '') throw new UsageError('--token must not be empty');
        const runnerName = values['runner-name'];
        if (runnerName !== undefined && !RUNNER_NAME.test(runnerName)) {
          throw new UsageError(`--runner-name must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit; got ${JSON.stringify(runnerName)}`);
        }
        const role = values.role ?? 'all';
        if (role !== 'all' && role !== 'api' && role !== 'runner') {
          throw new UsageError(`--role must be all, api or runner; got ${JSON.stringify(role)}`);
        }
        if (values.token !== undefined && values['token-file'] !== undefined) {
          throw new UsageError('give the token once: --token-file or --token, not both');
        }
        // Each command loads only what it needs, so that `init` and `--help` start fast.
        const { serveCommand } = await import('./serve-command.js');
        return await serveCommand({
          project: values.project ?? userDirectory(),
          host: values.host ?? '127.0.0.1',
          port: parsePort(values.port),
          token: values.token,
          tokenFile: values['token-file'],
          noAuth: values['no-auth'] ?? false,
          allowOrigins: values['allow-origin'] ?? [],
          allowHosts: values['allow-host'] ?? [],
          logLevel: parseLogLevel(values['log-level']),
          runnerName,
          role,
        });
      }
      case 'mcp': {
        const { values } = parse(rest, { url: { type: 'string' }, project: { type: 'string' } });
        if (values.help) return printUsage();
        const { mcpCommand } = await import('./mcp-command.js');
        return await mcpCommand({ url: values.url, project: values.project ?? userDirectory(), env: process.env });
      }
      case 'init': {
        const { values } = parse(rest, { project: { type: 'string' }, force: { type: 'boolean' } });
        if (values.help) return printUsage();
        const root = await resolveProjectRoot(values.project ?? userDirectory());
        const { initCommand } = await import('./init-command.js');
        return initCommand(root, { force: values.force ?? false });
      }
      case 'schema': {
        const { values } = parse(rest, { write: { type: 'string' }, check: { type: 'string' } });
        if (values.help) return printUsage();
        const { schemaCommand } = await import('./schema-command.js');
        return schemaCommand({ write: values.write, check: values.check });
      }
      case '-v':
      case '--version':
        console.log(packageVersion());
        return 0;
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
    if (
      error instanceof NotAGitRepositoryError ||
      error instanceof ConfigError ||
      error instanceof ServeError
    ) {
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
