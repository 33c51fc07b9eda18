import { readFileSync } from 'node:fs';

/** The version in agent-pool's own package.json (beside dist/ and src/ alike). */
export function packageVersion(): string {
  const manifest = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return manifest.version;
}
