import { existsSync, writeFileSync } from 'node:fs';
import { configPath } from '../config/config.js';
import { renderInitFile } from '../config/init-file.js';

/**
 * `agent-pool init [--force]`: writes a commented `agent-pool.toml` with every default at
 * the project root. Refuses to overwrite an existing file unless `force`.
 * @returns the exit code.
 */
export function initCommand(projectRoot: string, options: { force: boolean }): number {
  const file = configPath(projectRoot);
  if (existsSync(file) && !options.force) {
    console.error(`${file} already exists; pass --force to overwrite it with the defaults`);
    return 2;
  }
  writeFileSync(file, renderInitFile());
  console.log(`wrote ${file}`);
  return 0;
}
