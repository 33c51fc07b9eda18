// agent-pool reads /proc (a run's processes, the server lock): `serve` refuses to start
// anywhere but Linux, with one line, before it does anything.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it, onTestFinished, vi } from 'vitest';
import { main, unsupportedPlatform } from '../../src/cli/main.js';
import { tempRepo } from '../support/temp.js';

const DARWIN = 'agent-pool runs on Linux only (it reads /proc to find and end every process of a run); this is darwin';

/** Makes `process.platform` read `platform` until the test ends. */
function pretendPlatform(platform: NodeJS.Platform): void {
  const real = Object.getOwnPropertyDescriptor(process, 'platform')!;
  Object.defineProperty(process, 'platform', { ...real, value: platform });
  onTestFinished(() => {
    Object.defineProperty(process, 'platform', real);
  });
}

describe('the platform', () => {
  it('is refused with one line naming it when it is not Linux', () => {
    expect(unsupportedPlatform('darwin')).toBe(DARWIN);
    expect(unsupportedPlatform('win32')).toBe(
      'agent-pool runs on Linux only (it reads /proc to find and end every process of a run); this is win32',
    );
    expect(unsupportedPlatform('freebsd')).toMatch(/this is freebsd$/);
  });

  it('is accepted on Linux (the honest twin)', () => {
    expect(unsupportedPlatform('linux')).toBeUndefined();
    expect(unsupportedPlatform(process.platform)).toBeUndefined();
  });

  it('makes `serve` exit 2 with that line before it does anything (no state dir, no lock, no server)', async () => {
    const root = tempRepo();
    const errors = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    onTestFinished(() => errors.mockRestore());
    pretendPlatform('darwin');
    expect(await main(['serve', '--project', root, '--port', '0'])).toBe(2);
    expect(errors.mock.calls).toEqual([[DARWIN]]);
    expect(existsSync(path.join(root, '.agent-pool'))).toBe(false);
  });
});
