import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Where `npm run build` puts the dashboard (Vite's output of `web/`): `dist/web` of the
 * package, whether this module runs compiled (dist/server) or from source (src/server).
 */
export const DASHBOARD_DIR = fileURLToPath(new URL('../../dist/web', import.meta.url));

/** Hashed assets never change under their name: cached for a year. */
const IMMUTABLE = 'public, max-age=31536000, immutable';

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json; charset=utf-8',
  '.woff2': 'font/woff2',
  '.map': 'application/json; charset=utf-8',
};

/**
 * What every page of the dashboard is sent with: it loads nothing from elsewhere, talks
 * only to its own origin, cannot be framed, and its address (which may hold the token in
 * `?token=`) is never sent as a referrer.
 */
const PAGE_HEADERS = {
  'content-security-policy':
    "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
} as const;

interface DashboardFile {
  body: Buffer;
  contentType: string;
  cacheControl: string;
}

/**
 * The built dashboard, read into memory once (it is a few hundred kB): `index.html` for
 * `/` and every `/stories/<id>` (the page routes itself), and the files under `assets/`
 * by their exact names, nothing else. A path is only ever looked up in that table, never
 * joined onto the file system, so no request can reach another file.
 */
export class DashboardFiles {
  readonly #files = new Map<string, DashboardFile>();
  readonly #index: DashboardFile | undefined;

  /** @param dir the built dashboard. @default DASHBOARD_DIR */
  constructor(readonly dir: string = DASHBOARD_DIR) {
    const indexFile = path.join(dir, 'index.html');
    if (!existsSync(indexFile)) return;
    this.#index = { body: readFileSync(indexFile), contentType: CONTENT_TYPES['.html']!, cacheControl: 'no-cache' };
    for (const relative of readdirSync(dir, { recursive: true, encoding: 'utf8' })) {
      const file = path.join(dir, relative);
      if (!statSync(file).isFile()) continue;
      const urlPath = `/${relative.split(path.sep).join('/')}`;
      if (urlPath === '/index.html') continue;
      this.#files.set(urlPath, {
        body: readFileSync(file),
        contentType: CONTENT_TYPES[path.extname(file)] ?? 'application/octet-stream',
        cacheControl: urlPath.startsWith('/assets/') ? IMMUTABLE : 'no-cache',
      });
    }
  }

  /** Whether the dashboard was built. */
  get built(): boolean {
    return this.#index !== undefined;
  }

  /**
   * Answers a GET or HEAD for a page or a file of the dashboard at `pathname` (the
   * request's path as sent, undecoded); returns false for any other request, which is not
   * the dashboard's.
   */
  serve(pathname: string, request: IncomingMessage, response: ServerResponse): boolean {
    if (request.method !== 'GET' && request.method !== 'HEAD') return false;
    const isPage = pathname === '/' || /^\/stories\/[^/]+\/?$/.test(pathname);
    const file = isPage ? this.#index : this.#files.get(pathname);
    if (isPage && !file) {
      response
        .writeHead(503, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-cache' })
        .end(`The dashboard is not built (${this.dir} has no index.html): run "npm run build", then reload.\n`);
      return true;
    }
    if (!file) return false;
    response.writeHead(200, {
      'content-type': file.contentType,
      'content-length': file.body.length,
      'cache-control': file.cacheControl,
      ...(isPage ? PAGE_HEADERS : { 'x-content-type-options': 'nosniff' }),
    });
    response.end(request.method === 'HEAD' ? undefined : file.body);
    return true;
  }
}
