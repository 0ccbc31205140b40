// React hooks over the sampler (outside React) and the terminal. Components only render what these give.

import { useEffect, useState, useSyncExternalStore } from 'react';
import { useStdout } from 'ink';
import type { EventsSnapshot, EventsSource, Snapshot, SnapshotSource } from './types.js';

/** The sampler's latest snapshot; re-renders on every refresh. */
export function useSnapshot(source: SnapshotSource): Snapshot | null {
  return useSyncExternalStore(source.subscribe, source.getSnapshot, source.getSnapshot);
}

const noEvents = (): null => null;
const noSubscription = (): (() => void) => () => undefined;

/** The events feed's latest snapshot (throttled by the feed); null when top has no feed. */
export function useEvents(source: EventsSource | undefined): EventsSnapshot | null {
  return useSyncExternalStore(source?.subscribe ?? noSubscription, source?.getSnapshot ?? noEvents, source?.getSnapshot ?? noEvents);
}

export interface TerminalSize {
  columns: number;
  rows: number;
}

/** Terminal size, updated on resize. `override` (tests, fixed layouts) wins over the terminal. */
export function useTerminalSize(override?: Partial<TerminalSize>): TerminalSize {
  const { stdout } = useStdout();
  const read = (): TerminalSize => ({
    columns: override?.columns ?? (stdout.columns || 80),
    rows: override?.rows ?? (stdout.rows || 24),
  });
  const [size, setSize] = useState(read);
  useEffect(() => {
    const onResize = (): void => setSize(read());
    stdout.on('resize', onResize);
    return () => {
      stdout.off('resize', onResize);
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [stdout, override?.columns, override?.rows]);
  return override?.columns !== undefined || override?.rows !== undefined ? read() : size;
}
