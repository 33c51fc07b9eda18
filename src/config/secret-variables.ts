import { isPlainObject } from '../plain-object.js';

/**
 * The environment variables a configuration names as holding secrets: the value of every
 * key that ends in `_env` (`token_env`, `secret_env`, `url_env`, at any depth), whose
 * variable holds a token, a signing secret or a URL with a password. The server reads them;
 * agents, setup commands and services never get them (a profile's own `env` may still set
 * one on purpose).
 */
export function secretVariables(config: unknown): string[] {
  const names = new Set<string>();
  const visit = (value: unknown): void => {
    if (Array.isArray(value)) {
      for (const item of value) visit(item);
      return;
    }
    if (typeof value !== 'object' || value === null) return;
    for (const [key, inner] of Object.entries(value)) {
      if (key.endsWith('_env') && typeof inner === 'string' && inner !== '') names.add(inner);
      else visit(inner);
    }
  };
  // With no forge configured, [forge] token_env (GITHUB_TOKEN by default) holds no token of
  // agent-pool's: agents that use one of their own keep it.
  const forge = isPlainObject(config) && isPlainObject(config.forge) ? config.forge : undefined;
  visit(forge && (forge.kind ?? 'none') === 'none' && isPlainObject(config) ? { ...config, forge: undefined } : config);
  return [...names];
}
