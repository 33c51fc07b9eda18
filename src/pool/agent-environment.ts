import { RUN_MARKER_VARIABLE } from './run-processes.js';

/**
 * The shortest secret value looked for in other variables: shorter ones would match by
 * chance (a port, a flag).
 */
const MIN_SECRET_LENGTH = 8;

/** What agents, setup commands and services must never get from the server's environment. */
export interface ServerSecrets {
  /** Variables that hold secrets (beyond `AGENT_POOL_TOKEN`, always removed). */
  names?: readonly string[];
  /** Secret values (the server's token): any variable that holds one is removed too. */
  values?: readonly string[];
}

/**
 * The server's environment as agents inherit it: without agent-pool's secrets (the token,
 * by name and wherever its value is; the variables `secrets` names) and npm's script
 * variables.
 */
export function inheritedEnvironment(env: NodeJS.ProcessEnv, secrets: ServerSecrets = {}): Record<string, string> {
  const secretNames = new Set(['AGENT_POOL_TOKEN', ...(secrets.names ?? [])]);
  const secretValues = (secrets.values ?? []).filter((value) => value.length >= MIN_SECRET_LENGTH);
  const inherited: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined) continue;
    if (secretNames.has(name) || name === RUN_MARKER_VARIABLE) continue;
    if (secretValues.some((secret) => value.includes(secret))) continue;
    // How the server itself was started (npm start), not how an agent's commands should run.
    if (name.startsWith('npm_') || name === 'INIT_CWD') continue;
    // Agents print plain text for the parser; NO_COLOR is set, and FORCE_COLOR would win.
    if (name === 'FORCE_COLOR') continue;
    inherited[name] = value;
  }
  return inherited;
}

/** `env` without the variables named (the secrets the configuration names, read at each start). */
export function withoutVariables(env: Readonly<Record<string, string>>, names: readonly string[]): Record<string, string> {
  const kept = { ...env };
  for (const name of names) delete kept[name];
  return kept;
}
