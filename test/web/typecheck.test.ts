// The dashboard's types come from schema.graphql (gql.tada), so a change of the schema that
// breaks the page fails `npm run typecheck`. Here the web project is type-checked as
// typecheck does it (generate the introspection, tsc, gql-tada check), in a copy whose
// schema.graphql lost fields the page uses: it must fail and name them. Its honest twin,
// the same copy with the real schema, must pass. tsc alone would not do: a field the page
// only selects is no type error, and a missing one it reads is typed {}, an error only
// where {} does not fit; gql-tada check validates every document against the schema.
import { execFile } from 'node:child_process';
import { cpSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../support/temp.js';

const run = promisify(execFile);
const require = createRequire(import.meta.url);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const TSC = require.resolve('typescript/bin/tsc');
const GQL_TADA = path.join(path.dirname(require.resolve('gql.tada/package.json')), 'bin', 'cli.js');

/** What a command printed and whether it succeeded. */
interface Outcome {
  ok: boolean;
  output: string;
}

async function outcome(args: string[], cwd: string): Promise<Outcome> {
  try {
    const { stdout, stderr } = await run(process.execPath, args, { cwd, maxBuffer: 16 * 1024 * 1024 });
    return { ok: true, output: stdout + stderr };
  } catch (error) {
    const failed = error as { stdout?: string; stderr?: string; message: string };
    return { ok: false, output: `${failed.stdout ?? ''}${failed.stderr ?? failed.message}` };
  }
}

/**
 * A copy of the web project (web/src without its generated types, web/tsconfig.json) next
 * to `schema`, type-checked as `npm run typecheck` does: the types generated from that
 * schema, then tsc and gql-tada check (which validates each document against the schema).
 */
async function typecheckWith(schema: string): Promise<{ tsc: Outcome; check: Outcome }> {
  const dir = tempDir('agent-pool-web-types-');
  cpSync(path.join(ROOT, 'web', 'src'), path.join(dir, 'web', 'src'), {
    recursive: true,
    filter: (source) => path.basename(source) !== 'graphql-env.d.ts',
  });
  cpSync(path.join(ROOT, 'web', 'tsconfig.json'), path.join(dir, 'web', 'tsconfig.json'));
  writeFileSync(path.join(dir, 'schema.graphql'), schema);
  symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'));
  const generated = await outcome([GQL_TADA, 'generate', 'output', '-c', 'web/tsconfig.json'], dir);
  expect(generated, generated.output).toMatchObject({ ok: true });
  const [tsc, check] = await Promise.all([
    outcome([TSC, '--noEmit', '--pretty', 'false', '-p', 'web'], dir),
    outcome([GQL_TADA, 'check', '-c', 'web/tsconfig.json'], dir),
  ]);
  return { tsc, check };
}

/** `schema` without the field `field` of `type`, and its description. */
function withoutField(schema: string, type: string, field: string): string {
  const lines = schema.split('\n');
  const typeLine = lines.findIndex((line) => line.startsWith(`type ${type} `));
  expect(typeLine, `type ${type} in schema.graphql`).toBeGreaterThan(-1);
  const fieldLine = lines.findIndex((line, index) => index > typeLine && /^ {2}\w/.test(line) && line.trim().startsWith(`${field}:`));
  expect(lines.slice(typeLine, fieldLine).some((line) => line === '}'), `${type}.${field} in schema.graphql`).toBe(false);
  let first = fieldLine;
  // Its description: one line """…""", or lines from """ to """.
  if (lines[first - 1]?.trim().startsWith('"""')) {
    first--;
    if (lines[first]!.trim() === '"""') while (lines[--first]!.trim() !== '"""');
  }
  return [...lines.slice(0, first), ...lines.slice(fieldLine + 1)].join('\n');
}

describe('the dashboard type-checked against schema.graphql', () => {
  const schema = readFileSync(path.join(ROOT, 'schema.graphql'), 'utf8');

  it('passes with the real schema', async () => {
    const { tsc, check } = await typecheckWith(schema);
    expect(tsc, tsc.output).toMatchObject({ ok: true });
    expect(check, check.output).toMatchObject({ ok: true });
  }, 180_000);

  it('fails, naming the field, with a schema that lost fields the page uses', async () => {
    // Agent.title the page reads; AgentToolCallEvent.callId it only selects (a query that
    // asks for a field the server does not have is refused whole, so it breaks the page too).
    const broken = withoutField(withoutField(schema, 'Agent', 'title'), 'AgentToolCallEvent', 'callId');
    // Exactly those: title's three lines of description and callId's one, and the fields.
    expect(schema.split('\n').length - broken.split('\n').length).toBe(4 + 2);
    expect(broken).not.toMatch(/\n {2}title: String/);
    const { tsc, check } = await typecheckWith(broken);
    // tsc fails where the page reads the field (gql.tada types a field the schema lacks as
    // {}, which is no ReactNode); gql-tada check names it, and the one only selected.
    expect(tsc.ok).toBe(false);
    expect(tsc.output).toMatch(/StoryList\.tsx\(\d+,\d+\): error TS/);
    expect(check.ok).toBe(false);
    expect(check.output).toContain('Cannot query field "title" on type "Agent"');
    expect(check.output).toContain('Cannot query field "callId" on type "AgentToolCallEvent"');
  }, 180_000);
});
