import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { STATE_DIR_NAME } from '../worktree/project.js';

/**
 * What `.agent-pool/server.json` says of the project's running server, for the clients
 * on this machine that find it there (`agent-pool mcp`): its addresses, never its token.
 */
export interface ServerInfo {
  /** `http://HOST:PORT/graphql` */
  url: string;
  /** `http://HOST:PORT/mcp` */
  mcpUrl: string;
  /** `http://HOST:PORT/` */
  dashboardUrl: string;
  pid: number;
  startedAt: string;
}

export function serverInfoFile(projectRoot: string): string {
  return path.join(projectRoot, STATE_DIR_NAME, 'server.json');
}

/** Writes the file whole (a reader never sees half of it). */
export function writeServerInfo(projectRoot: string, info: ServerInfo): void {
  const file = serverInfoFile(projectRoot);
  const temporary = `${file}.${process.pid}.tmp`;
  writeFileSync(temporary, `${JSON.stringify(info, null, 2)}\n`);
  renameSync(temporary, file);
}

/** Removes the file if it is still this process's. */
export function removeServerInfo(projectRoot: string): void {
  if (readServerInfo(projectRoot)?.pid === process.pid) rmSync(serverInfoFile(projectRoot), { force: true });
}

/** The file's content; undefined when there is none or it is not one agent-pool wrote. */
export function readServerInfo(projectRoot: string): ServerInfo | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(serverInfoFile(projectRoot), 'utf8'));
  } catch {
    return undefined;
  }
  const info = parsed as Partial<ServerInfo> | null;
  if (typeof info?.mcpUrl !== 'string' || typeof info.url !== 'string' || typeof info.pid !== 'number') return undefined;
  return info as ServerInfo;
}
