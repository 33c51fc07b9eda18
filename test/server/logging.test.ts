// What `agent-pool serve` logs: one info line per run start, finish and stop; a client's
// mistakes one line at debug, not at all by default.
import { describe, expect, it } from 'vitest';
import { runCli, serverUrl, wsClientOf } from '../support/cli.js';
import { writeFakeAgentConfig } from '../support/fake-agent.js';
import { tempRepo } from '../support/temp.js';

/** Posts an operation with the URL line's token. */
async function post(url: URL, query: string): Promise<{ data?: unknown; errors?: Array<{ message: string }> }> {
  const response = await fetch(`${url.origin}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${url.searchParams.get('token')}` },
    body: JSON.stringify({ query }),
  });
  return (await response.json()) as { data?: unknown; errors?: Array<{ message: string }> };
}

/** Waits, over a subscription, for a story's first event of a type (its run's end by default). */
async function untilEnded(url: URL, storyId: string, typename = 'AgentDoneEvent'): Promise<void> {
  const events = wsClientOf(url).iterate<{ agentEvents: { __typename: string } }>({
    query: `subscription ($s: ID!) { agentEvents(storyId: $s) { __typename } }`,
    variables: { s: storyId },
  });
  for await (const event of events) if (event.data?.agentEvents.__typename === typename) break;
}

/** The server's records (lines that start with a time), without their time. */
const records = (stderr: string) =>
  stderr
    .split('\n')
    .filter((line) => /^\d{4}-/.test(line))
    .map((line) => line.slice(line.indexOf(' ') + 1));

async function serve(level?: string) {
  const root = tempRepo();
  writeFakeAgentConfig(root);
  const cli = runCli(['serve', '--project', root, '--port', '0', ...(level ? ['--log-level', level] : [])]);
  return { cli, url: await serverUrl(cli) };
}

describe('the server log', () => {
  it('has one info line per start, finish (status, duration, cost) and stop, and nothing for a client\'s mistakes', async () => {
    const { cli, url } = await serve();
    await post(url, 'mutation { startAgent(storyId: "S-1", prompt: "say hi", title: "T") { status } }');
    await untilEnded(url, 'S-1');
    await post(url, 'mutation { startAgent(storyId: "S-2", prompt: "say ready; wait") { status } }');
    await untilEnded(url, 'S-2', 'AgentOutputEvent');
    await post(url, 'mutation { stopAgent(storyId: "S-2") { status } }');
    // Mistakes: an unknown field, a story never started, a syntax error.
    expect((await post(url, '{ agents { nope } }')).errors?.[0]?.message).toContain('nope');
    expect((await post(url, 'mutation { stopAgent(storyId: "none") { status } }')).errors?.[0]?.message).toContain('never been started');
    expect((await post(url, '{ agents {')).errors).toBeDefined();
    cli.child.kill('SIGTERM');
    expect(await cli.exited).toBe(0);

    const lines = records(cli.stderr());
    expect(lines.filter((line) => line.includes('story S-1'))).toEqual([
      expect.stringMatching(/^info story S-1 run 1: agent "default" \(claude\) started, pid \d+$/),
      expect.stringMatching(/^info story S-1 run 1: COMPLETED after \d+\.\d s, cost \$0\.0123, exit code 0$/),
    ]);
    expect(lines.filter((line) => line.includes('story S-2'))).toEqual([
      expect.stringMatching(/^info story S-2 run 1: agent "default" \(claude\) started, pid \d+$/),
      'info story S-2 run 1: stop requested (RUNNING)',
      expect.stringMatching(/^info story S-2 run 1: STOPPED after \d+\.\d s, .*by request$/),
    ]);
    expect(lines.every((line) => line.startsWith('info '))).toBe(true);
    expect(cli.stderr()).not.toContain('nope');
    expect(cli.stderr()).not.toContain('never been started');
  });

  it('has a client\'s mistakes at --log-level debug, one line each without the query', async () => {
    const { cli, url } = await serve('debug');
    await post(url, '{ agents { nope } }');
    await post(url, 'mutation { stopAgent(storyId: "none") { status } }');
    cli.child.kill('SIGTERM');
    expect(await cli.exited).toBe(0);
    const debug = records(cli.stderr()).filter((line) => line.startsWith('debug '));
    // (A query that fails validation is answered and not logged at all.)
    expect(debug).toEqual([
      'debug a client\'s request was refused: story none has never been started: start it with startAgent first',
    ]);
    expect(cli.stderr()).not.toContain('GraphQL request:');
  });

  it('at --log-level warn, has no info lines', async () => {
    const { cli, url } = await serve('warn');
    await post(url, 'mutation { startAgent(storyId: "S-1", prompt: "say hi") { status } }');
    await untilEnded(url, 'S-1');
    cli.child.kill('SIGTERM');
    expect(await cli.exited).toBe(0);
    expect(records(cli.stderr())).toEqual([]);
  });
});
