import { useEffect, useRef } from 'react';

/** The shortest time between two reads of a story's work while its events flow. */
const REFRESH_MS = 2000;

/**
 * Reads a query again once `version` has moved on, at most once every REFRESH_MS (a
 * throttle: a story whose version moves every second is still read every REFRESH_MS, not
 * only once it goes quiet). A read that is already due covers later versions too, as it
 * reads the state of when it runs.
 */
export function useRefreshWhenMoved(version: string, refresh: (options: { requestPolicy: 'network-only' }) => void): void {
  const seen = useRef(version);
  const lastRead = useRef(performance.now());
  const due = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  useEffect(() => {
    if (version === seen.current || due.current !== undefined) return;
    seen.current = version;
    due.current = setTimeout(
      () => {
        due.current = undefined;
        lastRead.current = performance.now();
        refresh({ requestPolicy: 'network-only' });
      },
      Math.max(0, lastRead.current + REFRESH_MS - performance.now()),
    );
  }, [version, refresh]);
  useEffect(
    () => () => {
      clearTimeout(due.current);
      due.current = undefined;
    },
    [],
  );
}
