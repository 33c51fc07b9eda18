/**
 * `text` as a URL (against `base`, when given), or undefined when it is none: URL.parse,
 * which Node has only from 22.1 and 20.18.
 */
export function parseUrl(text: string, base?: URL | string): URL | undefined {
  try {
    return new URL(text, base);
  } catch {
    return undefined;
  }
}

/**
 * A Postgres URL with its password, if any, replaced (in its user part, whatever it holds,
 * up to the last "@"; and a `password` or `sslpassword` of its query): for messages.
 */
export function withoutPassword(url: string, mask = '***'): string {
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(url)?.[0];
  if (!scheme) return 'the [store] url';
  const rest = url.slice(scheme.length);
  const query = rest.search(/[?#]/);
  const beforeQuery = query === -1 ? rest : rest.slice(0, query);
  const at = beforeQuery.lastIndexOf('@');
  const colon = beforeQuery.indexOf(':');
  const user = at !== -1 && colon !== -1 && colon < at ? `${beforeQuery.slice(0, colon)}:${mask}${beforeQuery.slice(at)}` : beforeQuery;
  const tail = query === -1 ? '' : rest.slice(query).replace(/([?&](?:ssl)?password=)[^&#]*/gi, (_, name: string) => `${name}${mask}`);
  return `${scheme}${user}${tail}`;
}

/** Whether a Postgres URL holds a password (in its user part or its query). */
export function urlHasPassword(url: string): boolean {
  // Masked with a character no URL holds, so that a password that is itself "***" is seen.
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(url) && withoutPassword(url, '\n') !== url;
}
