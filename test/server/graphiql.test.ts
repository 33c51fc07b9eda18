import { describe, expect, it } from 'vitest';
import { launchBrowser } from '../support/browser.js';
import { startTestServer } from '../support/server.js';

describe('GraphiQL in a real browser', () => {
  it('opened from the printed URL renders its editor, runs a subscription with the token, and loads nothing from another origin', async (context) => {
    const browser = await launchBrowser(context);
    const server = await startTestServer();
    const page = await browser.newPage();
    const requests: string[] = [];
    const graphqlAuthorizations: Array<string | undefined> = [];
    page.on('request', (request) => {
      requests.push(request.url());
      if (request.url().startsWith(server.url) && request.method() !== 'GET') {
        graphqlAuthorizations.push(request.headers().authorization);
      }
    });

    const subscription =
      'subscription { agentEvents(storyId: "S-1") { seq __typename ... on AgentDoneEvent { exitCode } } }';
    // The URL line the server prints, with GraphiQL's own ?query= for the operation to run.
    await page.goto(`${server.url}?token=${server.token}&query=${encodeURIComponent(subscription)}`);
    await page.locator('.graphiql-container').first().waitFor();
    await page.locator('.monaco-editor').first().waitFor();
    await page.locator('.graphiql-execute-button').first().click();
    await expect.poll(() => server.pool.eventLog.openReaders, { timeout: 20_000 }).toBe(1);

    await server.request('mutation { startAgent(storyId: "S-1", prompt: "say hello from the agent") { status } }');
    // GraphiQL shows a subscription's newest result: the run's terminal event, with its seq.
    const lastSeq = () => server.pool.get('S-1')?.lastSeq;
    await expect.poll(() => server.pool.get('S-1')?.status, { timeout: 20_000 }).toBe('COMPLETED');

    // Monaco renders spaces as no-break spaces: compare with whitespace collapsed.
    const response = async () => (await page.locator('.graphiql-response').first().innerText()).replace(/\s+/g, ' ');
    await expect
      .poll(response, { timeout: 20_000 })
      .toContain(`"seq": ${lastSeq()}, "__typename": "AgentDoneEvent", "exitCode": 0`);
    await page.screenshot({ path: 'test-results/graphiql.png' });

    const origin = new URL(server.url).origin;
    const foreign = requests.filter((url) => !url.startsWith(origin) && !/^(data|blob):/.test(url));
    expect(foreign).toEqual([]);
    expect(graphqlAuthorizations.length).toBeGreaterThan(0);
    expect(graphqlAuthorizations.every((value) => value === `Bearer ${server.token}`)).toBe(true);
  });
});
