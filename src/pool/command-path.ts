import { accessSync, constants, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** agent-pool's own package folder (this file is in `<package>/{src,dist}/pool/`). */
const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * The folders that hold the executables of agent-pool's own dependencies: its
 * `node_modules/.bin`, and the one it is hoisted into when installed as a dependency.
 */
export function packageBinDirs(): string[] {
  const dirs = [path.join(PACKAGE_ROOT, 'node_modules', '.bin')];
  const parent = path.dirname(PACKAGE_ROOT);
  if (path.basename(parent) === 'node_modules') dirs.push(path.join(parent, '.bin'));
  return dirs;
}

function isExecutableFile(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return statSync(file).isFile();
  } catch {
    return false;
  }
}

/**
 * Finds the executable of an agent command: a path (with a `/`) is taken relative to the
 * project root; a bare name is looked up on `PATH`, then in agent-pool's own
 * `node_modules/.bin` (so the bundled Claude Code CLI works without a global install).
 * @returns the absolute path, or undefined when there is none.
 */
export function resolveCommand(command: string, options: { path: string | undefined; projectRoot: string }): string | undefined {
  if (command.includes('/')) {
    const file = path.resolve(options.projectRoot, command);
    return isExecutableFile(file) ? file : undefined;
  }
  const searchPath = (options.path ?? '').split(path.delimiter).filter(Boolean);
  for (const dir of [...searchPath, ...packageBinDirs()]) {
    const file = path.join(dir, command);
    if (isExecutableFile(file)) return file;
  }
  return undefined;
}
