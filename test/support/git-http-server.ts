// A git remote over smart HTTP on 127.0.0.1, as a forge serves one: git's own
// `git http-backend` (the CGI program git ships for this) behind a node:http server. Pushes
// go through the real protocol, as they would to GitHub or GitLab, and never run a
// program the repository's configuration names on the pushing side.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { onTestFinished } from 'vitest';
import { tempDir } from './temp.js';

const execFileAsync = promisify(execFile);

/** A bare repository served over HTTP. */
export interface GitHttpRemote {
  /** Its URL, as `git remote add origin <url>` takes it. */
  url: string;
  /** The bare repository's folder, to read with git. */
  dir: string;
  /**
   * Runs git in `cwd` without blocking this process, whose event loop serves the remote
   * (a synchronous git talking to it would wait forever).
   */
  git(cwd: string, ...args: string[]): Promise<string>;
}

/**
 * Serves a new bare repository at `http://127.0.0.1:<port>/<name>.git`, pushes allowed;
 * stopped when the test finishes.
 */
export async function startGitHttpRemote(name = 'origin'): Promise<GitHttpRemote> {
  const root = tempDir('agent-pool-git-http-');
  const dir = path.join(root, `${name}.git`);
  execFileSync('git', ['init', '--quiet', '--bare', dir]);
  execFileSync('git', ['-C', dir, 'config', 'http.receivepack', 'true']);
  const backend = path.join(execFileSync('git', ['--exec-path'], { encoding: 'utf8' }).trim(), 'git-http-backend');

  const server = createServer((request, response) => {
    request.on('error', () => response.destroy());
    response.on('error', () => undefined);
    const url = new URL(request.url ?? '/', 'http://localhost');
    const cgi = spawn(backend, [], {
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        GIT_PROJECT_ROOT: root,
        GIT_HTTP_EXPORT_ALL: '1',
        REQUEST_METHOD: request.method ?? 'GET',
        PATH_INFO: decodeURIComponent(url.pathname),
        QUERY_STRING: url.search.slice(1),
        CONTENT_TYPE: request.headers['content-type'] ?? '',
        HTTP_CONTENT_ENCODING: request.headers['content-encoding'] ?? '',
        GIT_PROTOCOL: String(request.headers['git-protocol'] ?? ''),
        REMOTE_ADDR: '127.0.0.1',
      },
      stdio: ['pipe', 'pipe', 'ignore'],
    });
    cgi.on('error', () => response.destroy());
    cgi.stdin.on('error', () => undefined);
    request.pipe(cgi.stdin);
    // The CGI answer: headers ("Status: 200 OK" among them), a blank line, the body.
    let head = Buffer.alloc(0);
    let headersDone = false;
    cgi.stdout.on('data', (chunk: Buffer) => {
      if (headersDone) {
        response.write(chunk);
        return;
      }
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end === -1) return;
      headersDone = true;
      let status = 200;
      for (const line of head.subarray(0, end).toString('latin1').split('\r\n')) {
        const colon = line.indexOf(':');
        const field = line.slice(0, colon).trim();
        const value = line.slice(colon + 1).trim();
        if (field.toLowerCase() === 'status') status = Number.parseInt(value, 10);
        else response.setHeader(field, value);
      }
      response.statusCode = status;
      response.write(head.subarray(end + 4));
    });
    cgi.stdout.on('end', () => response.end());
  });
  server.on('error', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onTestFinished(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/${name}.git`,
    dir,
    git: async (cwd, ...args) => (await execFileAsync('git', args, { cwd, encoding: 'utf8' })).stdout.trim(),
  };
}
