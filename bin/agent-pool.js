#!/usr/bin/env node
// The `agent-pool` command. The TypeScript sources are compiled to dist/ by `npm install`
// (the package's `prepare` script).
let main;
try {
  ({ main } = await import('../dist/cli/main.js'));
} catch (error) {
  if (error?.code !== 'ERR_MODULE_NOT_FOUND') throw error;
  console.error('agent-pool is not built: run `npm install` (or `npm run build`) in its folder first.');
  process.exit(2);
}
process.exitCode = await main(process.argv.slice(2));
