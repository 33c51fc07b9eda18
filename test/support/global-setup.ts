// The CLI tests run bin/agent-pool.js as users do, which runs the compiled dist/, and the
// browser tests load the dashboard from dist/web: build both from the current sources
// first so that they never test a stale build.
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';

export default function setup(): void {
  // vitest runs a global setup once per project (the suite's and the bench's): build once.
  if (process.env.AGENT_POOL_TESTS_BUILT) return;
  process.env.AGENT_POOL_TESTS_BUILT = '1';
  const require = createRequire(import.meta.url);
  execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.build.json'], {
    stdio: 'inherit',
  });
  // In a process of its own, as `npm run build` runs it: vitest's NODE_ENV=test would give
  // the page React's development build.
  const vite = path.join(path.dirname(require.resolve('vite/package.json')), 'bin', 'vite.js');
  execFileSync(process.execPath, [vite, 'build', 'web', '--logLevel', 'warn'], {
    stdio: 'inherit',
    env: { ...process.env, NODE_ENV: 'production' },
  });
}
