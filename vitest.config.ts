import { createRequire } from 'node:module';
import { configDefaults, defineConfig } from 'vitest/config';

const require = createRequire(import.meta.url);

export default defineConfig({
  resolve: {
    // Node resolves `graphql` to its CommonJS build for every importer; vitest would give ESM
    // importers the .mjs build, and two copies of graphql cannot share a schema.
    alias: { graphql: require.resolve('graphql') },
  },
  test: {
    globalSetup: ['test/support/global-setup.ts'],
    setupFiles: ['test/support/no-leftover-processes.ts'],
    // Two files at a time on this 2-core machine: most tests wait on processes (agents, git,
    // a browser, a compiler), and one at a time took the suite to 14 minutes.
    maxWorkers: 2,
    // Deadlines for a test that hangs, not measures of speed: generous, for a busy machine.
    testTimeout: 120_000,
    // A poll waits for something a process or a browser does: on a busy machine that can
    // take longer than vitest's default second.
    expect: { poll: { timeout: 20_000 } },
    hookTimeout: 120_000,
    projects: [
      { extends: true, test: { name: 'suite', include: ['test/**/*.test.ts'], exclude: [...configDefaults.exclude, 'test/bench/**'] } },
      // The quick bench starts once the rest has finished, with the machine to itself: run
      // beside the browser tests on two cores it slowed them into failures.
      { extends: true, test: { name: 'bench', include: ['test/bench/**/*.test.ts'], sequence: { groupOrder: 1 } } },
    ],
  },
});
