import { useEffect, useMemo, useSyncExternalStore } from 'react';
import type { Connection } from './client.js';
import { EventWindow, type EventWindowState } from './event-window.js';

/** A story's history as the Events region shows it: the window's state, and the EventWindow that moves it. */
export function useStoryEvents(connection: Connection, storyId: string, showRaw: boolean): EventWindowState & { history: EventWindow } {
  // Made once per story, with the raw lines shown or not as they were then; a later choice
  // is passed on (setShowRaw) rather than making another.
  const history = useMemo(() => new EventWindow(connection, storyId, showRaw), [connection, storyId]);
  useEffect(() => {
    history.open();
    return () => history.close();
  }, [history]);
  useEffect(() => history.setShowRaw(showRaw), [history, showRaw]);
  const state = useSyncExternalStore(history.subscribe, history.getSnapshot);
  return { ...state, history };
}
