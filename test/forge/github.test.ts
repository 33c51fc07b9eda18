import { request as httpRequest } from 'node:http';
import { inspect } from 'node:util';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createForge, type Forge, ForgeError, type ForgeSettings } from '../../src/forge/forge.js';
import { type FakeGitHub, GITHUB_NO_USER_AGENT_TEXT, startFakeGitHub } from '../support/fake-forge.js';

const TOKEN = 'ghp_fakeToken0123456789abcdefABCDEF01';
const REPO = 'owner/name';

async function fakeGitHub(): Promise<FakeGitHub> {
  const fake = await startFakeGitHub({ token: TOKEN, repo: REPO });
  onTestFinished(() => fake.close());
  return fake;
}

function gitHub(fake: { apiUrl: string }, settings: Partial<ForgeSettings> = {}): Forge {
  return createForge({
    kind: 'github',
    apiUrl: fake.apiUrl,
    repo: REPO,
    token: TOKEN,
    tokenVariable: 'GITHUB_TOKEN',
    userAgent: 'agent-pool/0.1.0',
    ...settings,
  });
}

async function forgeError(promise: Promise<unknown>): Promise<ForgeError> {
  const error = await promise.then(
    () => undefined,
    (error: unknown) => error,
  );
  expect(error).toBeInstanceOf(ForgeError);
  const forgeError = error as ForgeError;
  expect(forgeError.code).toBe('FORGE_ERROR');
  expect(forgeError.extensions.status).toBe(forgeError.status);
  // Never the token, in the message, the cause or anything else the error holds.
  expect(inspect(forgeError, { depth: 10 })).not.toContain(TOKEN);
  return forgeError;
}

const A_PULL = { head: 'story/a', base: 'main', title: 'Story a', body: 'What story a did.', draft: false };

/** Sends a request with no User-Agent header at all (fetch always sends one). */
function requestWithoutUserAgent(url: string, headers: Record<string, string>): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(url, { method: 'GET', headers }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString() }));
      response.on('error', reject);
    });
    request.on('error', reject);
    request.end();
  });
}

describe('the GitHub forge', () => {
  it('opens a pull request with GitHub\'s request shape and returns its page, number and state', async () => {
    const fake = await fakeGitHub();
    const pull = await gitHub(fake).open(A_PULL);
    expect(pull).toEqual({ url: 'https://github.com/owner/name/pull/1', number: 1, state: 'open' });
    expect(fake.requests).toHaveLength(1);
    const [request] = fake.requests;
    expect(request).toMatchObject({
      method: 'POST',
      path: '/repos/owner/name/pulls',
      body: { head: 'story/a', base: 'main', title: 'Story a', body: 'What story a did.', draft: false },
    });
    expect(request!.headers).toMatchObject({
      authorization: `Bearer ${TOKEN}`,
      accept: 'application/vnd.github+json',
      'user-agent': 'agent-pool/0.1.0',
      'x-github-api-version': '2022-11-28',
      'content-type': 'application/json',
    });
    expect(fake.pulls[0]).toMatchObject({ draft: false, head: { ref: 'story/a' }, base: { ref: 'main' } });
  });

  it('opens a draft with GitHub\'s draft flag', async () => {
    const fake = await fakeGitHub();
    const pull = await gitHub(fake).open({ ...A_PULL, draft: true });
    expect(pull.state).toBe('open');
    expect(fake.requests[0]!.body).toMatchObject({ draft: true, title: 'Story a' });
    expect(fake.pulls[0]).toMatchObject({ draft: true, title: 'Story a' });
  });

  it('adopts the open pull request of the same branches when GitHub says one already exists', async () => {
    const fake = await fakeGitHub();
    const forge = gitHub(fake);
    const first = await forge.open(A_PULL);
    const again = await forge.open({ ...A_PULL, title: 'Another title' });
    expect(again).toEqual(first);
    expect(fake.pulls).toHaveLength(1);
    expect(fake.pulls[0]!.title).toBe('Story a');
    expect(fake.requests.map((request) => `${request.method} ${request.path}`)).toEqual([
      'POST /repos/owner/name/pulls',
      'POST /repos/owner/name/pulls',
      'GET /repos/owner/name/pulls',
    ]);
    expect(fake.requests[2]!.query).toEqual({ head: 'owner:story/a', base: 'main', state: 'open' });
  });

  it('opens a new pull request once the branch\'s last one is closed', async () => {
    const fake = await fakeGitHub();
    const forge = gitHub(fake);
    await forge.open(A_PULL);
    fake.setState(1, 'closed');
    expect(await forge.open(A_PULL)).toEqual({ url: 'https://github.com/owner/name/pull/2', number: 2, state: 'open' });
  });

  it('reports a 422 that is not about an existing pull request with GitHub\'s words', async () => {
    const fake = await fakeGitHub();
    const error = await forgeError(gitHub(fake).open({ ...A_PULL, head: 'main' }));
    expect(error.status).toBe(422);
    expect(error.message).toBe(
      'GitHub answered 422 when opening a pull request of main into main on owner/name: Validation Failed: No commits between main and main',
    );
    // Nothing to adopt was looked for.
    expect(fake.requests).toHaveLength(1);
  });

  it('updates only the title or the body it is given', async () => {
    const fake = await fakeGitHub();
    const forge = gitHub(fake);
    const { number } = await forge.open(A_PULL);
    expect(await forge.update(number, { title: 'New title' })).toEqual({
      url: 'https://github.com/owner/name/pull/1',
      number: 1,
      state: 'open',
    });
    expect(fake.requests.at(-1)).toMatchObject({ method: 'PATCH', path: '/repos/owner/name/pulls/1', body: { title: 'New title' } });
    expect(fake.pulls[0]).toMatchObject({ title: 'New title', body: 'What story a did.' });
    await forge.update(number, { body: 'New body' });
    expect(fake.requests.at(-1)!.body).toEqual({ body: 'New body' });
    expect(fake.pulls[0]).toMatchObject({ title: 'New title', body: 'New body' });
  });

  it('reads a pull request\'s state: open, closed, or merged', async () => {
    const fake = await fakeGitHub();
    const forge = gitHub(fake);
    const { number } = await forge.open(A_PULL);
    expect((await forge.get(number)).state).toBe('open');
    expect(fake.requests.at(-1)).toMatchObject({ method: 'GET', path: '/repos/owner/name/pulls/1' });
    fake.setState(number, 'closed');
    expect((await forge.get(number)).state).toBe('closed');
    fake.setState(number, 'merged');
    expect(await forge.get(number)).toEqual({ url: 'https://github.com/owner/name/pull/1', number: 1, state: 'merged' });
  });

  it('takes a merged pull request of a list, which has merged_at and no merged, as merged', async () => {
    const fake = await fakeGitHub();
    const forge = gitHub(fake);
    await forge.open(A_PULL);
    // A merge the forge has not finished: the pull request is still open, with merged_at set.
    fake.pulls[0]!.merged_at = '2025-01-01T00:00:00Z';
    expect(await forge.open(A_PULL)).toMatchObject({ number: 1, state: 'merged' });
  });

  it('says which pull request is not there (404), and reads one that is', async () => {
    const fake = await fakeGitHub();
    const forge = gitHub(fake);
    await forge.open(A_PULL);
    const error = await forgeError(forge.get(99));
    expect(error.status).toBe(404);
    expect(error.message).toContain('There is no pull request #99 on owner/name');
    expect((await forge.get(1)).number).toBe(1);
  });

  it('tells to check [forge] repo when the repository is not there (404), and works with the right one', async () => {
    const fake = await fakeGitHub();
    const error = await forgeError(gitHub(fake, { repo: 'owner/other' }).open(A_PULL));
    expect(error.status).toBe(404);
    expect(error.message).toBe(
      'GitHub answered 404 when opening a pull request of story/a into main on owner/other: Not Found. Check [forge] repo ("owner/other") and api_url, and that the token in $GITHUB_TOKEN can see the repository',
    );
    expect((await gitHub(fake).open(A_PULL)).number).toBe(1);
  });

  it('reports a wrong token (401) naming its variable, never the token, and works with the right one', async () => {
    const fake = await fakeGitHub();
    const wrong = 'ghp_wrongToken9876543210zyxwvuZYXWVU';
    const error = await forgeError(gitHub(fake, { token: wrong }).open(A_PULL));
    expect(error.status).toBe(401);
    expect(error.message).toBe(
      'GitHub answered 401 when opening a pull request of story/a into main on owner/name: Bad credentials. The token in $GITHUB_TOKEN is wrong or has expired: set the variable to a valid token and restart agent-pool',
    );
    expect(inspect(error, { depth: 10 })).not.toContain(wrong);
    expect(fake.requests[0]!.headers.authorization).toBe(`Bearer ${wrong}`);
    expect((await gitHub(fake).open(A_PULL)).number).toBe(1);
  });

  it('cuts the token out of what the forge says back', async () => {
    const fake = await fakeGitHub();
    fake.answerNext({ status: 403, body: { message: `token ${TOKEN} may not do this` } });
    const error = await forgeError(gitHub(fake).open(A_PULL));
    expect(error.status).toBe(403);
    expect(error.message).toContain('token [token] may not do this. The token in $GITHUB_TOKEN is missing rights on owner/name');
  });

  it('the fake GitHub refuses a request without a User-Agent, as GitHub does, and answers one with it', async () => {
    const fake = await fakeGitHub();
    const url = `${fake.apiUrl}/repos/owner/name/pulls`;
    const refused = await requestWithoutUserAgent(url, { Authorization: `Bearer ${TOKEN}` });
    expect(refused.status).toBe(403);
    expect(refused.text.trim()).toBe(GITHUB_NO_USER_AGENT_TEXT);
    expect(fake.requests[0]!.headers['user-agent']).toBeUndefined();
    const answered = await requestWithoutUserAgent(url, { Authorization: `Bearer ${TOKEN}`, 'User-Agent': 'agent-pool/0.1.0' });
    expect(answered).toEqual({ status: 200, text: '[]' });
  });

  it('reports GitHub\'s refusal of a request without a User-Agent in its own words', async () => {
    const fake = await fakeGitHub();
    const error = await forgeError(gitHub(fake, { userAgent: '' }).open(A_PULL));
    expect(error.status).toBe(403);
    expect(error.message).toContain(`: ${GITHUB_NO_USER_AGENT_TEXT}. The token in $GITHUB_TOKEN`);
  });

  it('reports a server error (500) as FORGE_ERROR with its status, and the next request works', async () => {
    const fake = await fakeGitHub();
    const forge = gitHub(fake);
    fake.answerNext({ status: 500, body: '<html><body>Internal error</body></html>', headers: { 'Content-Type': 'text/html' } });
    const error = await forgeError(forge.open(A_PULL));
    expect(error.status).toBe(500);
    expect(error.message).toBe(
      'GitHub answered 500 when opening a pull request of story/a into main on owner/name: (an HTML page). GitHub failed: try again later',
    );
    expect((await forge.open(A_PULL)).number).toBe(1);
  });

  it('never follows a redirect with the token: it is FORGE_ERROR with the 3xx status', async () => {
    const fake = await fakeGitHub();
    const elsewhere = await startFakeGitHub({ token: TOKEN, repo: REPO });
    onTestFinished(() => elsewhere.close());
    fake.answerNext({ status: 307, headers: { Location: `${elsewhere.apiUrl}/repos/owner/name/pulls` } });
    const error = await forgeError(gitHub(fake).open(A_PULL));
    expect(error.status).toBe(307);
    expect(error.message).toBe(
      `GitHub answered 307 with a redirect to ${elsewhere.apiUrl}/repos/owner/name/pulls when opening a pull request of story/a into main on owner/name: agent-pool does not follow a redirect with the token; set [forge] api_url to the API's own address`,
    );
    expect(elsewhere.requests).toEqual([]);
    expect((await gitHub(elsewhere).open(A_PULL)).number).toBe(1);
  });

  it('gives up on a forge that does not answer in time, with status null, and the next request works', async () => {
    const fake = await fakeGitHub();
    const forge = gitHub(fake, { timeoutMs: 200 });
    fake.answerNext('hang');
    const error = await forgeError(forge.get(1));
    expect(error.status).toBeNull();
    expect(error.message).toBe(
      `GitHub did not answer within 0.2 s when reading pull request #1 on owner/name: it is slow or unreachable; try again later, or check [forge] api_url (${fake.apiUrl})`,
    );
    expect((await forge.open(A_PULL)).number).toBe(1);
  });

  it('reports a forge it cannot reach with status null', async () => {
    const gone = await startFakeGitHub({ token: TOKEN, repo: REPO });
    await gone.close();
    const error = await forgeError(gitHub(gone).open(A_PULL));
    expect(error.status).toBeNull();
    expect(error.message).toBe(
      `could not reach GitHub at ${gone.apiUrl} when opening a pull request of story/a into main on owner/name (fetch failed: ECONNREFUSED): check [forge] api_url and the network, then try again`,
    );
    expect(error.cause).toBeInstanceOf(Error);
  });

  it('refuses an answer that is not a pull request', async () => {
    const fake = await fakeGitHub();
    fake.answerNext({ status: 201, body: { hello: 'world' } });
    const error = await forgeError(gitHub(fake).open(A_PULL));
    expect(error.status).toBe(201);
    expect(error.message).toBe(
      'GitHub answered 201 when opening a pull request of story/a into main on owner/name, but not with a pull request: check that [forge] api_url is GitHub\'s API',
    );
  });
});
