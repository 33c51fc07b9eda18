import { readFileSync, writeFileSync } from 'node:fs';
import { printSdl } from '../schema/index.js';

/**
 * `agent-pool schema`: prints the SDL; `--write FILE` writes it there; `--check FILE`
 * exits 1 when FILE differs from it (a stale `schema.graphql`).
 */
export function schemaCommand(options: { write?: string; check?: string }): number {
  const sdl = printSdl();
  if (options.check !== undefined) {
    let current = '';
    try {
      current = readFileSync(options.check, 'utf8');
    } catch {
      // missing counts as stale
    }
    if (current === sdl) return 0;
    console.error(`${options.check} is stale: run \`npm run schema\` to print it again from the code`);
    return 1;
  }
  if (options.write !== undefined) {
    writeFileSync(options.write, sdl);
    return 0;
  }
  process.stdout.write(sdl);
  return 0;
}
