import { useSyncExternalStore } from 'react';

/** The page's two places: the list of stories, and one story. */
export type Route = { page: 'list' } | { page: 'story'; storyId: string };

/** A path segment decoded, or as it is when it is no valid percent-encoding (the server then names what is wrong with it). */
function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

function parse(pathname: string): Route {
  const match = /^\/stories\/([^/]+)\/?$/.exec(pathname);
  if (match) return { page: 'story', storyId: decodeSegment(match[1]!) };
  return { page: 'list' };
}

const listeners = new Set<() => void>();
window.addEventListener('popstate', () => {
  for (const listener of listeners) listener();
});

function subscribe(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/** The address of a story's own view. */
export function storyPath(storyId: string): string {
  return `/stories/${encodeURIComponent(storyId)}`;
}

/** Goes to a place of the page, as a link would, without reloading it. */
export function navigate(path: string): void {
  if (path === window.location.pathname) return;
  window.history.pushState(null, '', path);
  for (const listener of listeners) listener();
}

/** The current place, following the history (back and forward too). */
export function useRoute(): Route {
  const pathname = useSyncExternalStore(subscribe, () => window.location.pathname);
  return parse(pathname);
}
