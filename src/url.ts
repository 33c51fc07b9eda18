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
