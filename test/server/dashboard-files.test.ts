import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DASHBOARD_DIR, DashboardFiles } from '../../src/server/dashboard-files.js';
import { startTestServer } from '../support/server.js';
import { tempDir } from '../support/temp.js';

/** A built dashboard of our own: the page, a hashed asset and a public file. */
function builtDashboard(): string {
  const dir = tempDir('agent-pool-web-');
  mkdirSync(path.join(dir, 'assets'));
  writeFileSync(path.join(dir, 'index.html'), '<!doctype html><script src="/assets/index-AbC123.js"></script>');
  writeFileSync(path.join(dir, 'assets', 'index-AbC123.js'), 'console.log("dashboard")');
  writeFileSync(path.join(dir, 'favicon.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>');
  writeFileSync(path.join(path.dirname(dir), `${path.basename(dir)}-secret.txt`), 'outside');
  return dir;
}

describe('the dashboard files', () => {
  it('serves the page at / and at every /stories/<id>, without the token, never cached, locked down', async () => {
    const server = await startTestServer({ dashboard: new DashboardFiles(builtDashboard()) });
    for (const pathname of ['/', '/?token=abc', '/stories/PROJ-142', '/stories/PROJ-142/']) {
      const response = await fetch(`${server.server.origin}${pathname}`);
      expect(response.status, pathname).toBe(200);
      expect(response.headers.get('content-type')).toBe('text/html; charset=utf-8');
      expect(response.headers.get('cache-control')).toBe('no-cache');
      expect(response.headers.get('content-security-policy')).toContain("default-src 'self'");
      expect(response.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
      expect(response.headers.get('referrer-policy')).toBe('no-referrer');
      expect(response.headers.get('x-frame-options')).toBe('DENY');
      expect(await response.text()).toContain('/assets/index-AbC123.js');
    }
  });

  it('serves hashed assets with a year of cache and other files revalidated; HEAD has no body', async () => {
    const server = await startTestServer({ dashboard: new DashboardFiles(builtDashboard()) });
    const asset = await fetch(`${server.server.origin}/assets/index-AbC123.js`);
    expect(asset.status).toBe(200);
    expect(asset.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(asset.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(await asset.text()).toBe('console.log("dashboard")');

    const icon = await fetch(`${server.server.origin}/favicon.svg`);
    expect(icon.headers.get('content-type')).toBe('image/svg+xml');
    expect(icon.headers.get('cache-control')).toBe('no-cache');

    const head = await fetch(`${server.server.origin}/assets/index-AbC123.js`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe(String('console.log("dashboard")'.length));
    expect(await head.text()).toBe('');
  });

  it('answers 404 for any other path, and nothing outside the built folder is reachable', async () => {
    const dir = builtDashboard();
    const server = await startTestServer({ dashboard: new DashboardFiles(dir) });
    const secret = `${path.basename(dir)}-secret.txt`;
    for (const pathname of ['/assets/missing.js', '/index.html/x', `/../${secret}`, `/%2e%2e/${secret}`, `/assets/..%2f..%2f${secret}`, '/stories/a/b']) {
      const response = await fetch(`${server.server.origin}${pathname}`);
      expect(response.status, pathname).toBe(404);
      expect(await response.text()).not.toContain('outside');
    }
  });

  it('keeps the Host and Origin checks in front of the page', async () => {
    const server = await startTestServer({ dashboard: new DashboardFiles(builtDashboard()) });
    const { port } = new URL(server.server.origin);
    // fetch() will not set Host; a raw request does, as a DNS-rebinding page would.
    const status = await new Promise<number>((resolve, reject) => {
      request({ host: '127.0.0.1', port, path: '/', headers: { host: `evil.example:${port}` } }, (response) => {
        response.resume();
        resolve(response.statusCode ?? 0);
      })
        .on('error', reject)
        .end();
    });
    expect(status).toBe(403);
  });

  it('says how to build the dashboard when it is not built, and the API still works', async () => {
    const server = await startTestServer({ dashboard: new DashboardFiles(tempDir('agent-pool-unbuilt-')) });
    const page = await fetch(`${server.server.origin}/stories/S-1`);
    expect(page.status).toBe(503);
    expect(await page.text()).toContain('run "npm run build"');
    expect(server.logs.some((line) => line.includes('the dashboard is not built'))).toBe(true);
    expect((await server.request('{ agents { storyId } }')).data).toEqual({ agents: [] });
  });

  it('serves the real build: the page and every asset it names', async () => {
    const server = await startTestServer();
    const html = await (await fetch(server.server.origin)).text();
    expect(html).toBe(readFileSync(path.join(DASHBOARD_DIR, 'index.html'), 'utf8'));
    const assets = [...html.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)].map((match) => match[1]!);
    expect(assets.length).toBeGreaterThanOrEqual(2); // the script and the stylesheet
    for (const asset of assets) {
      const response = await fetch(`${server.server.origin}${asset}`);
      expect(response.status, asset).toBe(200);
      expect(response.headers.get('cache-control')).toContain('immutable');
    }
  });
});
