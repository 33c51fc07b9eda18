#!/usr/bin/env node
// The `agent-pool` command. It runs the compiled dist/: in a clone, `npm install` builds it
// (the package's `prepare` script); the packed package (`npm pack`) ships it built, and
// `npm install -g` of that tarball never runs `prepare`.
let main;
try {
  ({ main } = await import('../dist/cli/main.js'));
} catch (error) {
  if (error?.code !== 'ERR_MODULE_NOT_FOUND') throw error;
  console.error('agent-pool is not built: run `npm install` (or `npm run build`) in its folder first.');
  process.exit(2);
}
process.exitCode = await main(process.argv.slice(2));
