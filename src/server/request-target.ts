/** The path and query of a request, as the client sent them (nothing decoded). */
export interface RequestTarget {
  /** Starts with `/`; never percent-decoded, so it is compared as sent. */
  pathname: string;
  /** The query string without its `?` ("" when none). */
  query: string;
}

/**
 * The target of a request in origin form (`/path?query`, RFC 9112 section 3.2.1), or
 * undefined for any other form: absolute form (`http://host/path`), authority form and
 * `*`, none of which this server answers. It never builds a `URL` from client input, so
 * no target can make it throw (`//a:b:c/` is a path here, not a host).
 */
export function parseRequestTarget(target: string | undefined): RequestTarget | undefined {
  if (target === undefined || !target.startsWith('/')) return undefined;
  const hash = target.indexOf('#');
  const sent = hash === -1 ? target : target.slice(0, hash);
  const queryAt = sent.indexOf('?');
  if (queryAt === -1) return { pathname: sent, query: '' };
  return { pathname: sent.slice(0, queryAt), query: sent.slice(queryAt + 1) };
}
