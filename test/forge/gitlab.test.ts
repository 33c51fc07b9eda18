import { inspect } from 'node:util';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createForge, type Forge, ForgeError, type ForgeSettings } from '../../src/forge/forge.js';
import { type FakeGitLab, startFakeGitLab } from '../support/fake-forge.js';

const TOKEN = 'glpat-fakeToken0123456789ab';
const REPO = 'group/subgroup/name';
const WEB = 'https://gitlab.com/group/subgroup/name/-/merge_requests';
const PROJECT_PATH = '/api/v4/projects/group%2Fsubgroup%2Fname';

async function fakeGitLab(): Promise<FakeGitLab> {
  const fake = await startFakeGitLab({ token: TOKEN, repo: REPO });
  onTestFinished(() => fake.close());
  return fake;
}

function gitLab(fake: { apiUrl: string }, settings: Partial<ForgeSettings> = {}): Forge {
  return createForge({
    kind: 'gitlab',
    apiUrl: fake.apiUrl,
    repo: REPO,
    token: TOKEN,
    tokenVariable: 'GITLAB_TOKEN',
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
  expect(inspect(forgeError, { depth: 10 })).not.toContain(TOKEN);
  return forgeError;
}

const A_REQUEST = { head: 'story/a', base: 'main', title: 'Story a', body: 'What story a did.', draft: false };

describe('the GitLab forge', () => {
  it('opens a merge request with GitLab\'s request shape, on the URL-encoded project path', async () => {
    const fake = await fakeGitLab();
    expect(await gitLab(fake).open(A_REQUEST)).toEqual({ url: `${WEB}/1`, number: 1, state: 'open' });
    const [request] = fake.requests;
    expect(request).toMatchObject({
      method: 'POST',
      path: `${PROJECT_PATH}/merge_requests`,
      body: { source_branch: 'story/a', target_branch: 'main', title: 'Story a', description: 'What story a did.' },
    });
    expect(request!.headers).toMatchObject({ 'private-token': TOKEN, 'user-agent': 'agent-pool/0.1.0' });
    expect(request!.headers.authorization).toBeUndefined();
    expect(fake.mergeRequests[0]).toMatchObject({ draft: false, title: 'Story a' });
  });

  it('opens a draft as a title that starts "Draft: ", without doubling a prefix it has', async () => {
    const fake = await fakeGitLab();
    const forge = gitLab(fake);
    await forge.open({ ...A_REQUEST, draft: true });
    await forge.open({ ...A_REQUEST, head: 'story/b', title: 'draft: Story b', draft: true });
    expect(fake.mergeRequests.map(({ title, draft }) => ({ title, draft }))).toEqual([
      { title: 'Draft: Story a', draft: true },
      { title: 'draft: Story b', draft: true },
    ]);
  });

  it('adopts the open merge request of the same branches when GitLab answers 409', async () => {
    const fake = await fakeGitLab();
    const forge = gitLab(fake);
    const first = await forge.open(A_REQUEST);
    expect(await forge.open({ ...A_REQUEST, title: 'Another title' })).toEqual(first);
    expect(fake.mergeRequests).toHaveLength(1);
    expect(fake.requests.map((request) => `${request.method} ${request.path}`)).toEqual([
      `POST ${PROJECT_PATH}/merge_requests`,
      `POST ${PROJECT_PATH}/merge_requests`,
      `GET ${PROJECT_PATH}/merge_requests`,
    ]);
    expect(fake.requests[2]!.query).toEqual({ source_branch: 'story/a', target_branch: 'main', state: 'opened' });
  });

  it('reports a 409 with nothing open to adopt in GitLab\'s words, and opens one once it can', async () => {
    const fake = await fakeGitLab();
    const forge = gitLab(fake);
    fake.answerNext({ status: 409, body: { message: ['Another open merge request already exists for this source branch: !12'] } });
    const error = await forgeError(forge.open(A_REQUEST));
    expect(error.status).toBe(409);
    expect(error.message).toBe(
      'GitLab answered 409 when opening a merge request of story/a into main on group/subgroup/name: Another open merge request already exists for this source branch: !12',
    );
    expect((await forge.open(A_REQUEST)).number).toBe(1);
  });

  it('updates only the title or the description it is given, and a draft stays a draft', async () => {
    const fake = await fakeGitLab();
    const forge = gitLab(fake);
    const { number } = await forge.open({ ...A_REQUEST, draft: true });
    expect(await forge.update(number, { title: 'New title' })).toEqual({ url: `${WEB}/1`, number: 1, state: 'open' });
    expect(fake.requests.at(-1)).toMatchObject({
      method: 'PUT',
      path: `${PROJECT_PATH}/merge_requests/1`,
      body: { title: 'Draft: New title' },
    });
    expect(fake.mergeRequests[0]).toMatchObject({ title: 'Draft: New title', draft: true, description: 'What story a did.' });
    await forge.update(number, { body: 'New description' });
    expect(fake.requests.at(-1)!.body).toEqual({ description: 'New description' });
    expect(fake.mergeRequests[0]).toMatchObject({ title: 'Draft: New title', description: 'New description' });
  });

  it('updates the title of a merge request that is not a draft as it is given', async () => {
    const fake = await fakeGitLab();
    const forge = gitLab(fake);
    const { number } = await forge.open(A_REQUEST);
    await forge.update(number, { title: 'New title', body: 'New description' });
    expect(fake.requests.at(-1)!.body).toEqual({ title: 'New title', description: 'New description' });
    expect(fake.mergeRequests[0]).toMatchObject({ title: 'New title', draft: false });
  });

  it.each([
    ['opened', 'open'],
    ['locked', 'open'],
    ['closed', 'closed'],
    ['merged', 'merged'],
  ] as const)('reads GitLab\'s state %s as %s', async (gitLabState, state) => {
    const fake = await fakeGitLab();
    const forge = gitLab(fake);
    const { number } = await forge.open(A_REQUEST);
    fake.setState(number, gitLabState);
    expect(await forge.get(number)).toEqual({ url: `${WEB}/1`, number: 1, state });
    expect(fake.requests.at(-1)).toMatchObject({ method: 'GET', path: `${PROJECT_PATH}/merge_requests/1` });
  });

  it('tells to check [forge] repo when the project is not there (404), and works with the right one', async () => {
    const fake = await fakeGitLab();
    const error = await forgeError(gitLab(fake, { repo: 'group/name' }).open(A_REQUEST));
    expect(error.status).toBe(404);
    expect(error.message).toBe(
      'GitLab answered 404 when opening a merge request of story/a into main on group/name: 404 Project Not Found. Check [forge] repo ("group/name") and api_url, and that the token in $GITLAB_TOKEN can see the repository',
    );
    expect((await gitLab(fake).open(A_REQUEST)).number).toBe(1);
  });

  it('says which merge request is not there (404)', async () => {
    const fake = await fakeGitLab();
    const error = await forgeError(gitLab(fake).get(7));
    expect(error.status).toBe(404);
    expect(error.message).toContain('404 Not found. There is no merge request !7 on group/subgroup/name');
  });

  it('reports a wrong token (401) naming its variable, never the token, and works with the right one', async () => {
    const fake = await fakeGitLab();
    const wrong = 'glpat-wrongToken9876543210zy';
    const error = await forgeError(gitLab(fake, { token: wrong }).get(1));
    expect(error.status).toBe(401);
    expect(error.message).toBe(
      'GitLab answered 401 when reading merge request !1 on group/subgroup/name: 401 Unauthorized. The token in $GITLAB_TOKEN is wrong or has expired: set the variable to a valid token and restart agent-pool',
    );
    expect(inspect(error, { depth: 10 })).not.toContain(wrong);
    expect((await gitLab(fake).open(A_REQUEST)).number).toBe(1);
  });

  it('joins GitLab\'s field errors into the message', async () => {
    const fake = await fakeGitLab();
    fake.answerNext({ status: 400, body: { message: { title: ['is too long (maximum is 255 characters)'] } } });
    const error = await forgeError(gitLab(fake).open(A_REQUEST));
    expect(error.message).toBe(
      'GitLab answered 400 when opening a merge request of story/a into main on group/subgroup/name: title is too long (maximum is 255 characters)',
    );
  });

  it('reports a server error (502) as FORGE_ERROR with its status, and the next request works', async () => {
    const fake = await fakeGitLab();
    const forge = gitLab(fake);
    fake.answerNext({ status: 502, body: { message: '502 Bad Gateway' } });
    const error = await forgeError(forge.open(A_REQUEST));
    expect(error.status).toBe(502);
    expect(error.message).toContain(': 502 Bad Gateway. GitLab failed: try again later');
    expect((await forge.open(A_REQUEST)).number).toBe(1);
  });
});
