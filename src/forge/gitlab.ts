import type { Forge, ForgeSettings, OpenPullRequest, PullRequestInfo } from './forge.js';
import { DEFAULT_FORGE_TIMEOUT_MS, type ForgeAnswer, ForgeHttp } from './forge-http.js';

/** The title prefixes that make a GitLab merge request a draft (GitLab reads them case-insensitively). */
const DRAFT_PREFIX = /^\s*(\[draft\]|\(draft\)|draft:|draft\s-\s)/i;

/**
 * Merge requests on GitLab (gitlab.com or your own) over its REST API v4:
 * `POST /projects/{path}/merge_requests`, `PUT` and `GET` of `/merge_requests/{iid}`.
 * A draft is a title that starts "Draft: ", as GitLab has it.
 */
export class GitLabForge implements Forge {
  readonly #http: ForgeHttp;
  readonly #settings: ForgeSettings;
  /** `/projects/{url-encoded path}`. */
  readonly #projectPath: string;

  constructor(settings: ForgeSettings) {
    this.#settings = settings;
    this.#projectPath = `/projects/${encodeURIComponent(settings.repo)}`;
    this.#http = new ForgeHttp({
      forgeName: 'GitLab',
      apiUrl: settings.apiUrl,
      repo: settings.repo,
      token: settings.token,
      tokenVariable: settings.tokenVariable,
      timeoutMs: settings.timeoutMs ?? DEFAULT_FORGE_TIMEOUT_MS,
      headers: {
        'PRIVATE-TOKEN': settings.token,
        Accept: 'application/json',
        'User-Agent': settings.userAgent,
      },
    });
  }

  /** Opens the merge request, or adopts the open one of the same branches (GitLab's 409 "already exists"). */
  async open(request: OpenPullRequest): Promise<PullRequestInfo> {
    const doing = `opening a merge request of ${request.head} into ${request.base} on ${this.#settings.repo}`;
    const answer = await this.#http.request({
      method: 'POST',
      path: `${this.#projectPath}/merge_requests`,
      body: {
        source_branch: request.head,
        target_branch: request.base,
        title: request.draft ? asDraft(request.title) : request.title,
        description: request.body,
      },
      doing,
    });
    if (answer.status === 201 || answer.status === 200) return this.#mergeRequest(answer, doing);
    if (answer.status === 409) {
      const existing = await this.#findOpen(request.head, request.base);
      if (existing !== undefined) return existing;
    }
    throw this.#http.refusal(answer, doing);
  }

  /**
   * PUTs the title and/or description; with neither, only reads the merge request. A new
   * title of a draft gets "Draft: " so that it stays a draft, as it would on GitHub.
   */
  async update(number: number, changes: { title?: string; body?: string }): Promise<PullRequestInfo> {
    const put: Record<string, string> = {};
    if (changes.title !== undefined) {
      const draft = changes.title !== asDraft(changes.title) && (await this.#read(number)).draft;
      put.title = draft ? asDraft(changes.title) : changes.title;
    }
    if (changes.body !== undefined) put.description = changes.body;
    if (Object.keys(put).length === 0) return this.get(number);
    const doing = `updating merge request !${number} on ${this.#settings.repo}`;
    const answer = await this.#http.request({ method: 'PUT', path: this.#mergeRequestPath(number), body: put, doing });
    if (answer.status !== 200) throw this.#http.refusal(answer, doing, { notFound: this.#notFound(number) });
    return this.#mergeRequest(answer, doing);
  }

  /** `GET /projects/{path}/merge_requests/{iid}`. */
  async get(number: number): Promise<PullRequestInfo> {
    return (await this.#read(number)).pullRequest;
  }

  async #read(number: number): Promise<{ pullRequest: PullRequestInfo; draft: boolean }> {
    const doing = `reading merge request !${number} on ${this.#settings.repo}`;
    const answer = await this.#http.request({ method: 'GET', path: this.#mergeRequestPath(number), doing });
    if (answer.status !== 200) throw this.#http.refusal(answer, doing, { notFound: this.#notFound(number) });
    const pullRequest = this.#mergeRequest(answer, doing);
    const mergeRequest = answer.body as Record<string, unknown>;
    const draft =
      mergeRequest.draft === true ||
      mergeRequest.work_in_progress === true ||
      (typeof mergeRequest.title === 'string' && DRAFT_PREFIX.test(mergeRequest.title));
    return { pullRequest, draft };
  }

  /** The open merge request of `head` into `base`, if there is one. */
  async #findOpen(head: string, base: string): Promise<PullRequestInfo | undefined> {
    const doing = `looking for the open merge request of ${head} into ${base} on ${this.#settings.repo}`;
    const answer = await this.#http.request({
      method: 'GET',
      path: `${this.#projectPath}/merge_requests`,
      query: { source_branch: head, target_branch: base, state: 'opened' },
      doing,
    });
    if (answer.status !== 200) throw this.#http.refusal(answer, doing);
    if (!Array.isArray(answer.body)) throw this.#http.unexpected(answer, doing, 'a list of merge requests');
    const first: unknown = answer.body[0];
    if (first === undefined) return undefined;
    const mergeRequest = mergeRequestOf(first);
    if (mergeRequest === undefined) throw this.#http.unexpected(answer, doing, 'a list of merge requests');
    return mergeRequest;
  }

  #mergeRequestPath(number: number): string {
    return `${this.#projectPath}/merge_requests/${encodeURIComponent(String(number))}`;
  }

  #notFound(number: number): string {
    return `There is no merge request !${number} on ${this.#settings.repo}, or the project is not there: check [forge] repo and api_url, and that the token in $${this.#settings.tokenVariable} can see the project`;
  }

  #mergeRequest(answer: ForgeAnswer, doing: string): PullRequestInfo {
    const mergeRequest = mergeRequestOf(answer.body);
    if (mergeRequest === undefined) throw this.#http.unexpected(answer, doing, 'a merge request');
    return mergeRequest;
  }
}

/** The title with GitLab's draft prefix, unless it has one already. */
function asDraft(title: string): string {
  return DRAFT_PREFIX.test(title) ? title : `Draft: ${title}`;
}

/** GitLab's states in the contract's words: "locked" (a merge request being merged) is still open. */
const STATES: Readonly<Record<string, PullRequestInfo['state']>> = {
  opened: 'open',
  locked: 'open',
  closed: 'closed',
  merged: 'merged',
};

/** A pull request from GitLab's merge request object: `web_url`, `iid`, `state`. */
function mergeRequestOf(value: unknown): PullRequestInfo | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const { web_url: url, iid, state } = value as Record<string, unknown>;
  if (typeof url !== 'string' || typeof iid !== 'number' || !Number.isInteger(iid)) return undefined;
  const mapped = typeof state === 'string' && Object.hasOwn(STATES, state) ? STATES[state] : undefined;
  return mapped === undefined ? undefined : { url, number: iid, state: mapped };
}
