// Fake GitHub and GitLab REST APIs for the forge clients: real HTTP servers on a free port of
// 127.0.0.1 that speak the forges' request and response shapes (GitHub's pull objects and
// its error bodies, https://docs.github.com/rest/pulls/pulls; GitLab's merge request
// objects, https://docs.gitlab.com/api/merge_requests/), check the token as they do, and
// record every request. A test can close or merge a pull request, and make the next answer
// whatever it likes (a 500, a redirect, or none at all).
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A request the fake received, as recorded. */
export interface FakeForgeRequest {
  method: string;
  /** The path as sent, still percent-encoded (`/api/v4/projects/group%2Fname/merge_requests`), without the query. */
  path: string;
  /** The query's parameters. */
  query: Record<string, string>;
  headers: IncomingHttpHeaders;
  /** The parsed JSON body; the text when it is not JSON; undefined when empty. */
  body: unknown;
}

/** An answer a test forces on the next request, instead of what the fake would say. */
export type FakeAnswer =
  | {
      status: number;
      /** Sent as JSON, or as it is when a string. */
      body?: unknown;
      headers?: Record<string, string>;
    }
  /** Answer nothing at all, until the fake is closed. */
  | 'hang';

/** What both fakes have. */
export interface FakeForge {
  /** The base URL of the API, as `[forge] api_url` would be. */
  apiUrl: string;
  /** Every request received, in order. */
  requests: FakeForgeRequest[];
  /** Answers the next request with `answer` instead of what the forge would say (after recording it). */
  answerNext(answer: FakeAnswer): void;
  /** Stops the server and ends every connection, a hanging one included. */
  close(): Promise<void>;
}

/** A pull request as GitHub's REST API shows it (the fields the fake keeps). */
export interface GitHubPull {
  id: number;
  number: number;
  url: string;
  html_url: string;
  state: 'open' | 'closed';
  draft: boolean;
  title: string;
  body: string | null;
  head: { ref: string; label: string };
  base: { ref: string; label: string };
  created_at: string;
  updated_at: string;
  closed_at: string | null;
  merged_at: string | null;
}

/** The fake GitHub. */
export interface FakeGitHub extends FakeForge {
  /** Its pull requests, oldest first. */
  pulls: GitHubPull[];
  /** Closes, merges or reopens a pull request as someone on GitHub would. */
  setState(number: number, state: 'open' | 'closed' | 'merged'): void;
}

/** A merge request as GitLab's REST API shows it (the fields the fake keeps). */
export interface GitLabMergeRequest {
  id: number;
  iid: number;
  project_id: number;
  title: string;
  description: string | null;
  state: 'opened' | 'closed' | 'merged' | 'locked';
  draft: boolean;
  work_in_progress: boolean;
  source_branch: string;
  target_branch: string;
  web_url: string;
  created_at: string;
  updated_at: string;
  closed_at: string | null;
  merged_at: string | null;
}

/** The fake GitLab. */
export interface FakeGitLab extends FakeForge {
  /** Its merge requests, oldest first. */
  mergeRequests: GitLabMergeRequest[];
  /** Closes, merges, locks or reopens a merge request as someone on GitLab would. */
  setState(iid: number, state: GitLabMergeRequest['state']): void;
}

/** GitHub's own answer to a request without a User-Agent header. */
export const GITHUB_NO_USER_AGENT_TEXT =
  'Request forbidden by administrative rules. Please make sure your request has a User-Agent header (https://docs.github.com/en/rest/overview/resources-in-the-rest-api#user-agent-required). Check https://developer.github.com for other possible causes.';

/** The largest request body the fakes read. */
const MAX_BODY_BYTES = 1024 * 1024;

type Reply = (status: number, body: unknown, headers?: Record<string, string>) => void;

/** Starts an HTTP server on 127.0.0.1:0 that records each request, then hands it to `handle`. */
async function startFakeServer(
  handle: (request: FakeForgeRequest, reply: Reply) => void,
): Promise<{ port: number; requests: FakeForgeRequest[]; answerNext(answer: FakeAnswer): void; close(): Promise<void> }> {
  const requests: FakeForgeRequest[] = [];
  const forced: FakeAnswer[] = [];
  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    request.on('error', () => response.destroy());
    response.on('error', () => undefined);
    const chunks: Buffer[] = [];
    let size = 0;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        response.writeHead(413).end();
        request.destroy();
        return;
      }
      chunks.push(chunk);
    });
    request.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      let body: unknown = text === '' ? undefined : text;
      try {
        if (text !== '') body = JSON.parse(text);
      } catch {
        // kept as text
      }
      const target = request.url ?? '/';
      const queryStart = target.indexOf('?');
      const recorded: FakeForgeRequest = {
        method: request.method ?? '',
        path: queryStart === -1 ? target : target.slice(0, queryStart),
        query: Object.fromEntries(new URLSearchParams(queryStart === -1 ? '' : target.slice(queryStart + 1))),
        headers: request.headers,
        body,
      };
      requests.push(recorded);
      const reply: Reply = (status, answer, headers = {}) => {
        const isText = typeof answer === 'string';
        const text = answer === undefined ? '' : isText ? answer : JSON.stringify(answer);
        response.writeHead(status, {
          'Content-Type': isText ? 'text/plain; charset=utf-8' : 'application/json; charset=utf-8',
          ...headers,
        });
        response.end(text);
      };
      const next = forced.shift();
      if (next === 'hang') return;
      if (next !== undefined) {
        reply(next.status, next.body, next.headers);
        return;
      }
      handle(recorded, reply);
    });
  });
  server.on('error', () => undefined);
  server.on('clientError', (_error, socket) => socket.destroy());
  server.on('connection', (socket) => socket.on('error', () => undefined));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    requests,
    answerNext(answer) {
      forced.push(answer);
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function now(): string {
  return new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * Starts a fake GitHub REST API for one repository: `POST`, `GET` (one or a filtered list)
 * and `PATCH` of `/repos/{owner}/{repo}/pulls`. It refuses a request without a User-Agent
 * (403, GitHub's text) or without the token (401 "Bad credentials"), answers 404 for any
 * other repository, and 422 for a second open pull request of the same head and base.
 */
export async function startFakeGitHub(options: { token: string; repo: string }): Promise<FakeGitHub> {
  const [owner = '', name = ''] = options.repo.split('/');
  const pulls: GitHubPull[] = [];
  let apiUrl = '';
  const notFound = { message: 'Not Found', documentation_url: 'https://docs.github.com/rest', status: '404' };
  const serialize = (pull: GitHubPull, single: boolean): Record<string, unknown> =>
    // A list's pull objects have no `merged`; one pull's have.
    single ? { ...pull, merged: pull.merged_at !== null } : { ...pull };

  const server = await startFakeServer((request, reply) => {
    if (!request.headers['user-agent']) {
      reply(403, `${GITHUB_NO_USER_AGENT_TEXT}\n`);
      return;
    }
    const authorization = request.headers.authorization ?? '';
    if (authorization === '') {
      reply(401, { message: 'Requires authentication', documentation_url: 'https://docs.github.com/rest', status: '401' });
      return;
    }
    if (authorization !== `Bearer ${options.token}` && authorization !== `token ${options.token}`) {
      reply(401, { message: 'Bad credentials', documentation_url: 'https://docs.github.com/rest', status: '401' });
      return;
    }
    const match = /^\/repos\/([^/]+)\/([^/]+)\/pulls(?:\/([^/]+))?$/.exec(request.path);
    if (match === null) {
      reply(404, notFound);
      return;
    }
    // GitHub's names are case-insensitive.
    const sameRepo =
      decodeURIComponent(match[1]!).toLowerCase() === owner.toLowerCase() &&
      decodeURIComponent(match[2]!).toLowerCase() === name.toLowerCase();
    if (!sameRepo) {
      reply(404, { ...notFound, documentation_url: 'https://docs.github.com/rest/pulls/pulls' });
      return;
    }
    const numberText = match[3];
    if (numberText === undefined) {
      if (request.method === 'POST') createPull(request.body, reply);
      else if (request.method === 'GET') listPulls(request.query, reply);
      else reply(404, notFound);
      return;
    }
    const pull = pulls.find((candidate) => String(candidate.number) === numberText);
    if (pull === undefined) {
      reply(404, { ...notFound, documentation_url: 'https://docs.github.com/rest/pulls/pulls#get-a-pull-request' });
      return;
    }
    if (request.method === 'GET') reply(200, serialize(pull, true));
    else if (request.method === 'PATCH') updatePull(pull, request.body, reply);
    else reply(404, notFound);
  });

  function validationFailed(reply: Reply, message: string): void {
    reply(422, {
      message: 'Validation Failed',
      errors: [{ resource: 'PullRequest', code: 'custom', message }],
      documentation_url: 'https://docs.github.com/rest/pulls/pulls#create-a-pull-request',
      status: '422',
    });
  }

  function createPull(body: unknown, reply: Reply): void {
    if (!isRecord(body)) {
      reply(400, { message: 'Problems parsing JSON', documentation_url: 'https://docs.github.com/rest', status: '400' });
      return;
    }
    for (const field of ['head', 'base', 'title']) {
      if (typeof body[field] !== 'string') {
        reply(422, {
          message: `Invalid request.\n\n"${field}" wasn't supplied.`,
          documentation_url: 'https://docs.github.com/rest/pulls/pulls#create-a-pull-request',
          status: '422',
        });
        return;
      }
    }
    let head = body.head as string;
    if (head.startsWith(`${owner}:`)) head = head.slice(owner.length + 1);
    const base = body.base as string;
    if (head === base) {
      validationFailed(reply, `No commits between ${base} and ${head}`);
      return;
    }
    if (pulls.some((pull) => pull.state === 'open' && pull.head.ref === head && pull.base.ref === base)) {
      validationFailed(reply, `A pull request already exists for ${owner}:${head}.`);
      return;
    }
    const number = pulls.length + 1;
    const time = now();
    const pull: GitHubPull = {
      id: 1_000_000 + number,
      number,
      url: `${apiUrl}/repos/${owner}/${name}/pulls/${number}`,
      html_url: `https://github.com/${owner}/${name}/pull/${number}`,
      state: 'open',
      draft: body.draft === true,
      title: body.title as string,
      body: typeof body.body === 'string' ? body.body : null,
      head: { ref: head, label: `${owner}:${head}` },
      base: { ref: base, label: `${owner}:${base}` },
      created_at: time,
      updated_at: time,
      closed_at: null,
      merged_at: null,
    };
    pulls.push(pull);
    reply(201, serialize(pull, true), { Location: pull.url });
  }

  function listPulls(query: Record<string, string>, reply: Reply): void {
    const state = query.state ?? 'open';
    const found = pulls
      .filter((pull) => state === 'all' || pull.state === state)
      .filter((pull) => query.head === undefined || pull.head.label === query.head)
      .filter((pull) => query.base === undefined || pull.base.ref === query.base)
      .reverse();
    reply(200, found.map((pull) => serialize(pull, false)));
  }

  function updatePull(pull: GitHubPull, body: unknown, reply: Reply): void {
    if (!isRecord(body)) {
      reply(400, { message: 'Problems parsing JSON', documentation_url: 'https://docs.github.com/rest', status: '400' });
      return;
    }
    if (typeof body.title === 'string') pull.title = body.title;
    if (typeof body.body === 'string') pull.body = body.body;
    if (typeof body.base === 'string') pull.base = { ref: body.base, label: `${owner}:${body.base}` };
    if ((body.state === 'open' || body.state === 'closed') && pull.merged_at === null) {
      pull.state = body.state;
      pull.closed_at = body.state === 'closed' ? now() : null;
    }
    pull.updated_at = now();
    reply(200, serialize(pull, true));
  }

  apiUrl = `http://127.0.0.1:${server.port}`;
  return {
    apiUrl,
    requests: server.requests,
    pulls,
    answerNext: server.answerNext,
    close: server.close,
    setState(number, state) {
      const pull = pulls.find((candidate) => candidate.number === number);
      if (pull === undefined) throw new Error(`the fake GitHub has no pull request #${number}`);
      const time = now();
      pull.state = state === 'open' ? 'open' : 'closed';
      pull.closed_at = state === 'open' ? null : time;
      pull.merged_at = state === 'merged' ? time : null;
      pull.updated_at = time;
    },
  };
}

/** GitLab's draft title prefixes. */
const GITLAB_DRAFT = /^\s*(\[draft\]|\(draft\)|draft:|draft\s-\s)/i;

/**
 * Starts a fake GitLab REST API v4 for one project (`repo`, its path): `POST`, `GET` (one or
 * a filtered list) and `PUT` of `/api/v4/projects/{url-encoded path}/merge_requests`. It
 * refuses a request without the token (401), answers 404 for any other project, and 409 for
 * a second open merge request of the same source and target branches. A title that starts
 * "Draft:" makes a draft, as on GitLab.
 */
export async function startFakeGitLab(options: { token: string; repo: string }): Promise<FakeGitLab> {
  const mergeRequests: GitLabMergeRequest[] = [];
  const projectId = 4242;
  const server = await startFakeServer((request, reply) => {
    const token = request.headers['private-token'] ?? request.headers.authorization?.replace(/^Bearer /, '');
    if (token !== options.token) {
      reply(401, { message: '401 Unauthorized' });
      return;
    }
    const match = /^\/api\/v4\/projects\/([^/]+)\/merge_requests(?:\/([^/]+))?$/.exec(request.path);
    if (match === null) {
      reply(404, { error: '404 Not Found' });
      return;
    }
    let project: string;
    try {
      project = decodeURIComponent(match[1]!);
    } catch {
      reply(404, { message: '404 Project Not Found' });
      return;
    }
    if (project !== options.repo && project !== String(projectId)) {
      reply(404, { message: '404 Project Not Found' });
      return;
    }
    const iidText = match[2];
    if (iidText === undefined) {
      if (request.method === 'POST') createMergeRequest(request.body, reply);
      else if (request.method === 'GET') listMergeRequests(request.query, reply);
      else reply(405, { message: '405 Method Not Allowed' });
      return;
    }
    const mergeRequest = mergeRequests.find((candidate) => String(candidate.iid) === iidText);
    if (mergeRequest === undefined) {
      reply(404, { message: '404 Not found' });
      return;
    }
    if (request.method === 'GET') reply(200, mergeRequest);
    else if (request.method === 'PUT') updateMergeRequest(mergeRequest, request.body, reply);
    else reply(405, { message: '405 Method Not Allowed' });
  });

  function setTitle(mergeRequest: GitLabMergeRequest, title: string): void {
    mergeRequest.title = title;
    mergeRequest.draft = GITLAB_DRAFT.test(title);
    mergeRequest.work_in_progress = mergeRequest.draft;
  }

  function createMergeRequest(body: unknown, reply: Reply): void {
    const fields = isRecord(body) ? body : {};
    const missing = ['source_branch', 'target_branch', 'title'].filter((field) => typeof fields[field] !== 'string');
    if (missing.length > 0) {
      reply(400, { error: missing.map((field) => `${field} is missing`).join(', ') });
      return;
    }
    const source = fields.source_branch as string;
    const target = fields.target_branch as string;
    if (source === target) {
      reply(422, { message: ['You can\'t use same project/branch for source and target'] });
      return;
    }
    const open = mergeRequests.find(
      (candidate) => candidate.state === 'opened' && candidate.source_branch === source && candidate.target_branch === target,
    );
    if (open !== undefined) {
      reply(409, { message: [`Another open merge request already exists for this source branch: !${open.iid}`] });
      return;
    }
    const iid = mergeRequests.length + 1;
    const time = new Date().toISOString();
    const mergeRequest: GitLabMergeRequest = {
      id: 90_000 + iid,
      iid,
      project_id: projectId,
      title: '',
      description: typeof fields.description === 'string' ? fields.description : null,
      state: 'opened',
      draft: false,
      work_in_progress: false,
      source_branch: source,
      target_branch: target,
      web_url: `https://gitlab.com/${options.repo}/-/merge_requests/${iid}`,
      created_at: time,
      updated_at: time,
      closed_at: null,
      merged_at: null,
    };
    setTitle(mergeRequest, fields.title as string);
    mergeRequests.push(mergeRequest);
    reply(201, mergeRequest);
  }

  function listMergeRequests(query: Record<string, string>, reply: Reply): void {
    const state = query.state ?? 'all';
    const found = mergeRequests
      .filter((mergeRequest) => state === 'all' || mergeRequest.state === state)
      .filter((mergeRequest) => query.source_branch === undefined || mergeRequest.source_branch === query.source_branch)
      .filter((mergeRequest) => query.target_branch === undefined || mergeRequest.target_branch === query.target_branch)
      .reverse();
    reply(200, found);
  }

  function updateMergeRequest(mergeRequest: GitLabMergeRequest, body: unknown, reply: Reply): void {
    const fields = isRecord(body) ? body : {};
    if (!['title', 'description', 'state_event', 'target_branch'].some((field) => field in fields)) {
      reply(400, { error: 'title, description, state_event, target_branch are missing, at least one parameter must be provided' });
      return;
    }
    if (typeof fields.title === 'string') setTitle(mergeRequest, fields.title);
    if (typeof fields.description === 'string') mergeRequest.description = fields.description;
    if (typeof fields.target_branch === 'string') mergeRequest.target_branch = fields.target_branch;
    if (fields.state_event === 'close' && mergeRequest.state === 'opened') mergeRequest.state = 'closed';
    if (fields.state_event === 'reopen' && mergeRequest.state === 'closed') mergeRequest.state = 'opened';
    mergeRequest.updated_at = new Date().toISOString();
    reply(200, mergeRequest);
  }

  return {
    apiUrl: `http://127.0.0.1:${server.port}/api/v4`,
    requests: server.requests,
    mergeRequests,
    answerNext: server.answerNext,
    close: server.close,
    setState(iid, state) {
      const mergeRequest = mergeRequests.find((candidate) => candidate.iid === iid);
      if (mergeRequest === undefined) throw new Error(`the fake GitLab has no merge request !${iid}`);
      const time = new Date().toISOString();
      mergeRequest.state = state;
      mergeRequest.closed_at = state === 'closed' ? time : null;
      mergeRequest.merged_at = state === 'merged' ? time : null;
      mergeRequest.updated_at = time;
    },
  };
}
