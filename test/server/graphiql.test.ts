import { parse, validate } from 'graphql';
import { describe, expect, it } from 'vitest';
import { schema } from '../../src/schema/index.js';
import { GRAPHIQL_EXAMPLE } from '../../src/server/graphiql-page.js';
import { launchBrowser } from '../support/browser.js';
import { startTestServer } from '../support/server.js';

describe('GraphiQL\'s first text', () => {
  it('is agent-pool\'s own operations, valid against the schema', () => {
    const document = parse(GRAPHIQL_EXAMPLE);
    expect(validate(schema, document)).toEqual([]);
    expect(document.definitions.map((definition) => ('name' in definition ? definition.name?.value : undefined))).toEqual([
      'StartStory',
      'WatchStory',
      'Stories',
    ]);
  });
});

describe('GraphiQL in a real browser', () => {
  it('opened from the printed URL renders its editor, sends the token with a mutation and a subscription, and loads nothing from another origin', async (context) => {
    const browser = await launchBrowser(context);
    const server = await startTestServer();
    const requests: string[] = [];
    const graphqlAuthorizations: Array<string | undefined> = [];
    const watch = (page: import('playwright-core').Page) =>
      page.on('request', (request) => {
        requests.push(request.url());
        if (request.url().startsWith(server.url) && request.method() !== 'GET') {
          graphqlAuthorizations.push(request.headers().authorization);
        }
      });
    const page = await browser.newPage();
    watch(page);
    // The page's content security policy must not stop GraphiQL itself.
    const violations: string[] = [];
    const watchPolicy = (each: import('playwright-core').Page) =>
      each.on('console', (message) => {
        if (/Content Security Policy/i.test(message.text())) violations.push(message.text());
      });
    watchPolicy(page);

    const subscription =
      'subscription { agentEvents(storyId: "S-1") { seq __typename ... on AgentDoneEvent { exitCode } } }';
    // The URL line the server prints, with GraphiQL's own ?query= for the operation to run.
    await page.goto(`${server.url}?token=${server.token}&query=${encodeURIComponent(subscription)}`);
    await page.locator('.graphiql-container').first().waitFor();
    await page.locator('.monaco-editor').first().waitFor();
    await page.locator('.graphiql-execute-button').first().click();
    await expect.poll(() => server.pool.eventLog.openReaders, { timeout: 20_000 }).toBe(1);

    // A second tab runs the mutation that starts the agent.
    const mutationPage = await browser.newPage();
    watch(mutationPage);
    watchPolicy(mutationPage);
    const mutation = 'mutation { startAgent(storyId: "S-1", prompt: "say hello from the agent") { status } }';
    await mutationPage.goto(`${server.url}?token=${server.token}&query=${encodeURIComponent(mutation)}`);
    await mutationPage.locator('.monaco-editor').first().waitFor();
    // The token left the address bar (and so the history) once the page had it.
    expect(mutationPage.url()).not.toContain('token=');
    expect(mutationPage.url()).toContain('query=');
    await mutationPage.locator('.graphiql-execute-button').first().click();
    await expect
      .poll(async () => (await mutationPage.locator('.graphiql-response').first().innerText()).replace(/\s+/g, ' '), {
        timeout: 20_000,
      })
      .toContain('"startAgent": { "status": "PENDING" }');
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
    expect(violations).toEqual([]);

    // A reload of the tab keeps the token (sessionStorage): the operation still carries it.
    const before = graphqlAuthorizations.length;
    await mutationPage.reload();
    await mutationPage.locator('.monaco-editor').first().waitFor();
    await mutationPage.locator('.graphiql-execute-button').first().click();
    await expect.poll(() => graphqlAuthorizations.length, { timeout: 20_000 }).toBeGreaterThan(before);
    expect(graphqlAuthorizations.at(-1)).toBe(`Bearer ${server.token}`);
  });

  it('opens on the agent-pool example, whose mutation runs as it is', async (context) => {
    const browser = await launchBrowser(context);
    const server = await startTestServer();
    const page = await browser.newPage();
    await page.goto(`${server.url}?token=${server.token}`);
    await page.locator('.monaco-editor').first().waitFor();
    const editor = () => page.locator('.graphiql-query-editor .monaco-editor').first().innerText();
    await expect.poll(async () => (await editor()).replace(/\s+/g, ' '), { timeout: 20_000 }).toContain('mutation StartStory {');
    expect(await page.locator('body').innerText()).not.toMatch(/Welcome to GraphiQL/i);

    // The run button asks which operation: StartStory.
    await page.locator('.graphiql-execute-button').first().click();
    await page.getByRole('menuitem', { name: 'StartStory' }).click();
    await expect.poll(() => server.pool.get('graphiql-1')?.title, { timeout: 20_000 }).toBe('A first story');
    const response = async () => (await page.locator('.graphiql-response').first().innerText()).replace(/\s+/g, ' ');
    await expect.poll(response, { timeout: 20_000 }).toContain('"title": "A first story"');
  });
});
