import { existsSync, readFileSync } from 'node:fs';

/**
 * The version in agent-pool's own package.json: the nearest one above this module, which
 * is one folder up from src/ and dist/, and two from the benchmark's dist-bench/src/.
 */
export function packageVersion(): string {
  for (let up = '../'; up.length <= 12; up += '../') {
    const file = new URL(`${up}package.json`, import.meta.url);
    if (!existsSync(file)) continue;
    const manifest = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version: string };
    if (manifest.name === 'agent-pool') return manifest.version;
  }
  throw new Error(`agent-pool's package.json was not found above ${import.meta.url}`);
}
