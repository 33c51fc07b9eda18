/** Where the page keeps the token for the tab's session (a reload keeps it, a new tab asks again). */
const STORAGE_KEY = 'agent-pool.token';

/**
 * The token, taken once from the address the server printed (`/?token=…`) and then
 * removed from the address bar, so that it is neither bookmarked nor shown in a
 * screenshot; kept in sessionStorage for reloads of the tab.
 */
export function takeToken(): string | undefined {
  const url = new URL(window.location.href);
  const fromUrl = url.searchParams.get('token');
  if (fromUrl) {
    sessionStorage.setItem(STORAGE_KEY, fromUrl);
    url.searchParams.delete('token');
    window.history.replaceState(window.history.state, '', `${url.pathname}${url.search}${url.hash}`);
    return fromUrl;
  }
  return sessionStorage.getItem(STORAGE_KEY) ?? undefined;
}

/** Keeps a token a person typed in. */
export function saveToken(token: string): void {
  sessionStorage.setItem(STORAGE_KEY, token);
}

/** Forgets the token (it was refused). */
export function forgetToken(): void {
  sessionStorage.removeItem(STORAGE_KEY);
}
