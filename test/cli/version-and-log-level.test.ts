// `agent-pool --version`, and `--log-level` refused with the levels it takes.
import { readFileSync } from 'node:fs';
import { describe, expect, it, onTestFinished, vi } from 'vitest';
import { main } from '../../src/cli/main.js';
import { tempRepo } from '../support/temp.js';

const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

function consoleOf(method: 'log' | 'error') {
  const spy = vi.spyOn(console, method).mockImplementation(() => undefined);
  onTestFinished(() => spy.mockRestore());
  return spy;
}

describe('agent-pool --version', () => {
  it('prints the package version, as -v too', async () => {
    const log = consoleOf('log');
    expect(await main(['--version'])).toBe(0);
    expect(await main(['-v'])).toBe(0);
    expect(log.mock.calls).toEqual([[VERSION], [VERSION]]);
    expect(VERSION).toMatch(/^\d+\.\d+\.\d+/);
  });
});

describe('serve --log-level', () => {
  it('refuses a level it does not know, naming the ones it takes, before it does anything', async () => {
    const errors = consoleOf('error');
    const root = tempRepo();
    expect(await main(['serve', '--project', root, '--port', '0', '--log-level', 'verbose'])).toBe(2);
    expect(errors.mock.calls[0]![0]).toMatch(/^agent-pool: --log-level must be one of debug, info, warn, error, got "verbose"\n/);
  });
});
