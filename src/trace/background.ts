// A trace session run in the background of a longer-lived command (exporter --trace, top's events
// pane). The embedding command keeps its own signal handling and ends the session with stop(), which
// resolves once the instance and probes are removed: the session installs no signal handlers.

import { runTraceSession, type SessionOptions, type SessionResult } from './session.js';
import type { SourceAvailability } from './types.js';

export interface BackgroundTrace {
  /** The sources in use once tracing is on; rejects with why tracing cannot start (UnsupportedError, PermissionError). */
  readonly started: Promise<readonly SourceAvailability[]>;
  /** Settles when the session has ended and cleaned up: after stop(), or rejected when it failed. */
  readonly ended: Promise<SessionResult>;
  /** Ends the session; resolves when tracefs holds nothing of it any more (null when it had failed). Idempotent. */
  stop(): Promise<SessionResult | null>;
}

export function startBackgroundTrace(options: Omit<SessionOptions, 'stop' | 'durationMs'>): BackgroundTrace {
  const controller = new AbortController();
  let onStarted: (sources: readonly SourceAvailability[]) => void = () => undefined;
  let onFailed: (err: unknown) => void = () => undefined;
  const started = new Promise<readonly SourceAvailability[]>((resolve, reject) => {
    onStarted = resolve;
    onFailed = reject;
  });
  const ended = runTraceSession({
    ...options,
    durationMs: null,
    stop: controller.signal,
    onStart: (sources) => {
      options.onStart?.(sources);
      onStarted(sources);
    },
  });
  // A session that fails before it starts rejects `started` (a no-op once started resolved).
  ended.catch(onFailed);
  // Whoever embeds the session awaits these when it needs them; neither is an unhandled rejection meanwhile.
  started.catch(() => undefined);
  ended.catch(() => undefined);
  return {
    started,
    ended,
    stop: async () => {
      controller.abort();
      return ended.catch(() => null);
    },
  };
}
