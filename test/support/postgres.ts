import { execFileSync, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';

/** Debian keeps Postgres's server programs off PATH, under /usr/lib/postgresql/<version>/bin. */
function postgresBin(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const version = readdirSync(root).sort((a, b) => Number(b) - Number(a)).find((each) => existsSync(path.join(root, each, 'bin', 'initdb')));
  return version && path.join(root, version, 'bin');
}

/**
 * Why a private Postgres cannot run here, or undefined when it can: Debian's `postgresql`
 * package, and root (to run it as the `postgres` user, which Postgres asks for). The caller
 * skips with it, and fails under CI=true.
 */
export function postgresUnavailable(): string | undefined {
  const why = postgresMissing();
  // vitest's skipIf shows no reason: it is said here, once per file.
  if (why) console.warn(`skipping the Postgres tests: ${why}`);
  return why;
}

function postgresMissing(): string | undefined {
  if (!postgresBin()) return 'Postgres is not installed (Debian: apt-get install postgresql; .ci/run does)';
  if (process.getuid?.() !== 0) return 'a private Postgres is started as the postgres user, which needs root';
  if (spawnSync('id', ['postgres']).status !== 0) return 'there is no postgres user';
  return undefined;
}

/** A Postgres of the test's own: its data and its socket in a temp dir, no TCP. */
export interface PrivatePostgres {
  /** A new, empty database on it, and its URL. */
  database(): Promise<string>;
  stop(): void;
}

let databases = 0;

/**
 * Starts a Postgres private to the caller: `initdb` and `pg_ctl` as the `postgres` user, in
 * a temp dir that user owns, listening only on a Unix socket there (no port of the machine).
 */
export function startPostgres(): PrivatePostgres {
  const bin = postgresBin()!;
  const dir = mkdtempSync(path.join(tmpdir(), 'agent-pool-pg-'));
  chownSync(dir, Number(execFileSync('id', ['-u', 'postgres']).toString()), Number(execFileSync('id', ['-g', 'postgres']).toString()));
  const data = path.join(dir, 'data');
  const asPostgres = (program: string, ...args: string[]) =>
    execFileSync('runuser', ['-u', 'postgres', '--', path.join(bin, program), ...args], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  try {
    asPostgres('initdb', '--pgdata', data, '--auth', 'trust', '--username', 'postgres', '--no-sync', '--no-instructions');
    // The port only names the socket file (.s.PGSQL.5432): nothing listens on TCP. pg_ctl
    // hands the options to a shell: the directory is quoted.
    asPostgres('pg_ctl', '--pgdata', data, '--wait', '--silent', '--log', path.join(dir, 'log'), '--options', `-k '${dir}' -c listen_addresses='' -c fsync=off -p 5432`, 'start');
  } catch (error) {
    spawnSync('runuser', ['-u', 'postgres', '--', path.join(bin, 'pg_ctl'), '--pgdata', data, '--mode', 'immediate', 'stop'], { stdio: 'ignore' });
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`a private Postgres did not start: ${(error as { stderr?: Buffer }).stderr?.toString().trim() ?? String(error)}`, { cause: error });
  }
  const admin = `postgresql://postgres@/postgres?host=${encodeURIComponent(dir)}`;
  return {
    async database() {
      const name = `agent_pool_${process.pid}_${++databases}`;
      const client = new pg.Client({ connectionString: admin });
      await client.connect();
      await client.query(`CREATE DATABASE ${name}`);
      await client.end();
      return `postgresql://postgres@/${name}?host=${encodeURIComponent(dir)}`;
    },
    stop() {
      try {
        asPostgres('pg_ctl', '--pgdata', data, '--wait', '--silent', '--mode', 'immediate', 'stop');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
