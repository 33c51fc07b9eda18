import type { Forge, ForgeSettings, OpenPullRequest, PullRequestInfo } from './forge.js';
import { DEFAULT_FORGE_TIMEOUT_MS, type ForgeAnswer, ForgeHttp } from './forge-http.js';


/**
 * Pull requests on GitHub (github.com or GitHub Enterprise Server) over its REST API:
 * `POST /repos/{owner}/{repo}/pulls`, `PATCH` and `GET` of `/pulls/{number}`.
 */
export class GitHubForge implements Forge {
  readonly #http: ForgeHttp;
  readonly #settings: ForgeSettings;
  /** `/repos/{owner}/{repo}`, encoded. */
  readonly #repoPath: string;
  readonly #owner: string;

  constructor(settings: ForgeSettings) {
    this.#settings = settings;
    const [owner = '', name = ''] = settings.repo.split('/');
    this.#owner = owner;
    this.#repoPath = `/repos/${encodeURIComponent(owner)}/${encodeURIComponent(name)}`;
    this.#http = new ForgeHttp({
      forgeName: 'GitHub',
      apiUrl: settings.apiUrl,
      repo: settings.repo,
      token: settings.token,
      tokenVariable: settings.tokenVariable,
      timeoutMs: settings.timeoutMs ?? DEFAULT_FORGE_TIMEOUT_MS,
      headers: {
        Authorization: `Bearer ${settings.token}`,
        Accept: 'application/vnd.github+json',
        'User-Agent': settings.userAgent,
        'X-GitHub-Api-Version': '2022-11-28',
      },
    });
  }

  /** Opens the pull request, or adopts the open one of the same head and base (GitHub's 422 "already exists"). */
  async open(request: OpenPullRequest): Promise<PullRequestInfo> {
    const doing = `opening a pull request of ${request.head} into ${request.base} on ${this.#settings.repo}`;
    const answer = await this.#http.request({
      method: 'POST',
      path: `${this.#repoPath}/pulls`,
      body: { head: request.head, base: request.base, title: request.title, body: request.body, draft: request.draft },
      doing,
    });
    if (answer.status === 201 || answer.status === 200) return this.#pullRequest(answer, doing);
    if (answer.status === 422 && alreadyExists(answer.body)) {
      const existing = await this.#findOpen(request.head, request.base);
      if (existing !== undefined) return existing;
    }
    throw this.#http.refusal(answer, doing);
  }

  /** PATCHes the title and/or body; with neither, only reads the pull request. */
  async update(number: number, changes: { title?: string; body?: string }): Promise<PullRequestInfo> {
    const patch: Record<string, string> = {};
    if (changes.title !== undefined) patch.title = changes.title;
    if (changes.body !== undefined) patch.body = changes.body;
    if (Object.keys(patch).length === 0) return this.get(number);
    const doing = `updating pull request #${number} on ${this.#settings.repo}`;
    const answer = await this.#http.request({ method: 'PATCH', path: this.#pullPath(number), body: patch, doing });
    if (answer.status !== 200) throw this.#http.refusal(answer, doing, { notFound: this.#notFound(number) });
    return this.#pullRequest(answer, doing);
  }

  /** `GET /repos/{owner}/{repo}/pulls/{number}`. */
  async get(number: number): Promise<PullRequestInfo> {
    const doing = `reading pull request #${number} on ${this.#settings.repo}`;
    const answer = await this.#http.request({ method: 'GET', path: this.#pullPath(number), doing });
    if (answer.status !== 200) throw this.#http.refusal(answer, doing, { notFound: this.#notFound(number) });
    return this.#pullRequest(answer, doing);
  }

  /** The open pull request of `head` into `base`, if there is one. */
  async #findOpen(head: string, base: string): Promise<PullRequestInfo | undefined> {
    const doing = `looking for the open pull request of ${head} into ${base} on ${this.#settings.repo}`;
    const answer = await this.#http.request({
      method: 'GET',
      path: `${this.#repoPath}/pulls`,
      query: { head: `${this.#owner}:${head}`, base, state: 'open' },
      doing,
    });
    if (answer.status !== 200) throw this.#http.refusal(answer, doing);
    if (!Array.isArray(answer.body)) throw this.#http.unexpected(answer, doing, 'a list of pull requests');
    const first: unknown = answer.body[0];
    if (first === undefined) return undefined;
    const pull = pullRequestOf(first);
    if (pull === undefined) throw this.#http.unexpected(answer, doing, 'a list of pull requests');
    return pull;
  }

  #pullPath(number: number): string {
    return `${this.#repoPath}/pulls/${encodeURIComponent(String(number))}`;
  }

  #notFound(number: number): string {
    return `There is no pull request #${number} on ${this.#settings.repo}, or the repository is not there: check [forge] repo and api_url, and that the token in $${this.#settings.tokenVariable} can see the repository`;
  }

  #pullRequest(answer: ForgeAnswer, doing: string): PullRequestInfo {
    const pull = pullRequestOf(answer.body);
    if (pull === undefined) throw this.#http.unexpected(answer, doing, 'a pull request');
    return pull;
  }
}

/** A pull request from GitHub's pull object: `html_url`, `number`, `state`, and `merged_at` (or `merged`). */
function pullRequestOf(value: unknown): PullRequestInfo | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const pull = value as Record<string, unknown>;
  const { html_url: url, number, state } = pull;
  if (typeof url !== 'string' || typeof number !== 'number' || !Number.isInteger(number)) return undefined;
  if (state !== 'open' && state !== 'closed') return undefined;
  // A list's pull objects have no `merged`; `merged_at` is in both.
  const merged = (pull.merged_at !== null && pull.merged_at !== undefined) || pull.merged === true;
  return { url, number, state: merged ? 'merged' : state };
}

/** Whether a 422 says that the pull request already exists (rather than, say, "No commits between"). */
function alreadyExists(body: unknown): boolean {
  if (typeof body !== 'object' || body === null) return false;
  const errors = (body as Record<string, unknown>).errors;
  if (!Array.isArray(errors)) return false;
  return errors.some(
    (item: unknown) =>
      typeof item === 'object' &&
      item !== null &&
      typeof (item as Record<string, unknown>).message === 'string' &&
      /pull request already exists/i.test((item as Record<string, unknown>).message as string),
  );
}
