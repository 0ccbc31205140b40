// Holding a registration: wait for Ctrl-C, SIGTERM, SIGHUP or a deadline, whichever comes first.
// (If the process dies instead, the kernel drops every pin and lock with its files and mm.)

const RELEASE_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/** Resolves with the signal that arrived, or null when `millis` passed. */
export function waitForRelease(millis: number | null): Promise<NodeJS.Signals | null> {
  return new Promise((resolve) => {
    let timer: NodeJS.Timeout | undefined;
    // Signal listeners alone do not keep Node's event loop alive: hold it open until released.
    const keepAlive = setInterval(() => undefined, 1 << 30);
    const finish = (signal: NodeJS.Signals | null): void => {
      if (timer) clearTimeout(timer);
      clearInterval(keepAlive);
      for (const s of RELEASE_SIGNALS) process.removeListener(s, onSignal);
      resolve(signal);
    };
    const onSignal = (signal: NodeJS.Signals): void => finish(signal);
    for (const s of RELEASE_SIGNALS) process.on(s, onSignal);
    if (millis !== null) timer = setTimeout(() => finish(null), millis);
  });
}
