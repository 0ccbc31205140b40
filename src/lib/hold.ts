// Waiting for a signal to stop: Ctrl-C, SIGTERM, SIGHUP or a deadline, whichever comes first. One
// shape for every command that holds something until told to stop (reg holding a registration, the
// exporter serving or writing). (If the process dies instead, the kernel drops every pin and lock
// with its files and mm.)

/** The signals that end a hold: Ctrl-C, kill, and a closed terminal. */
export const RELEASE_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

export interface SignalWait {
  /** The first signal to arrive; null when the deadline passed (or the wait was disposed first). */
  readonly signalled: Promise<NodeJS.Signals | null>;
  /** Stops listening and clears the deadline; safe to call any number of times. */
  dispose(): void;
}

export interface SignalWaitOptions {
  /** Default RELEASE_SIGNALS. */
  signals?: readonly NodeJS.Signals[];
  /** Resolve with null after this many milliseconds; null or absent: no deadline. */
  timeoutMs?: number | null;
  /**
   * Hold the event loop open while waiting: signal listeners alone do not keep Node alive, so a
   * process with nothing else to do would exit instead of waiting.
   */
  keepAlive?: boolean;
}

/**
 * Listens for `signals` until disposed. Each listener is a once-listener: the signal that arrived is
 * no longer caught, the others stay caught until dispose(), so another signal during the shutdown
 * that follows is ignored until then.
 */
export function untilSignal(options: SignalWaitOptions = {}): SignalWait {
  const signals = options.signals ?? RELEASE_SIGNALS;
  let finish: (signal: NodeJS.Signals | null) => void = () => undefined;
  const signalled = new Promise<NodeJS.Signals | null>((resolve) => {
    finish = resolve;
  });
  const keepAlive = options.keepAlive ? setInterval(() => undefined, 1 << 30) : undefined;
  const timer = options.timeoutMs === null || options.timeoutMs === undefined ? undefined : setTimeout(() => stop(null), options.timeoutMs);
  const onSignal = (signal: NodeJS.Signals): void => stop(signal);
  function stop(signal: NodeJS.Signals | null): void {
    if (timer) clearTimeout(timer);
    if (keepAlive) clearInterval(keepAlive);
    finish(signal);
  }
  for (const signal of signals) process.once(signal, onSignal);
  return {
    signalled,
    dispose: () => {
      for (const signal of signals) process.off(signal, onSignal);
      stop(null);
    },
  };
}

/** Resolves with the release signal that arrived, or null when `millis` passed; listens for nothing afterwards. */
export function waitForRelease(millis: number | null): Promise<NodeJS.Signals | null> {
  const wait = untilSignal({ timeoutMs: millis, keepAlive: true });
  return wait.signalled.finally(wait.dispose);
}
