import { existsSync } from 'node:fs';
import { type Browser, chromium } from 'playwright-core';
import { onTestFinished, type TestContext } from 'vitest';
import { VARIABLE } from './no-leftover-processes.js';

/** Debian's Chromium, which `.ci/run` installs with apt-get. */
const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((file) => existsSync(file));

/**
 * A headless Chromium for this test, closed when it ends. Without Chromium the test is
 * skipped with the reason when run by hand, and fails under CI, where it must be there.
 */
export async function launchBrowser(context: TestContext): Promise<Browser> {
  if (!CHROMIUM) {
    const reason = 'Chromium is not installed (.ci/run installs it: apt-get install chromium)';
    if (process.env.CI) throw new Error(reason);
    context.skip(reason);
  }
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    // Without the test file's marker: the browser is no process of an agent, and it is
    // closed when the test ends; leftovers() then sees only what the server started.
    env: Object.fromEntries(Object.entries(process.env).filter(([name]) => name !== VARIABLE)) as Record<string, string>,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  onTestFinished(() => browser.close());
  return browser;
}
