// SIGINT/SIGTERM/SIGHUP while scenarios run: the handler only records the signal; the runner stops
// at its next checkpoint, its finally blocks kill and reap the child and release the registration,
// and the command fails with 128 + the signal number (130 for SIGINT, 143 for SIGTERM).

import { constants } from 'node:os';
import { RdmactlError, type ExitCode } from '../lib/errors.js';

const SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

export class InterruptedError extends RdmactlError {
  readonly signal: NodeJS.Signals;
  constructor(signal: NodeJS.Signals) {
    const code = 128 + (constants.signals[signal] ?? 2);
    // Not one of EXIT's codes: a run stopped by a signal exits the way shells report one (128 + n).
    super(`interrupted by ${signal}: stopped the run after the current step, killed and reaped the processes it started, released its registrations, mappings and files`, code as ExitCode);
    this.name = 'InterruptedError';
    this.signal = signal;
  }
}

/** Signals that arrived while `fn` ran are recorded in the AbortSignal it gets; listeners are removed afterwards. */
export async function withInterrupts<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const onSignal = (sig: NodeJS.Signals): void => {
    if (!controller.signal.aborted) controller.abort(sig);
  };
  for (const s of SIGNALS) process.on(s, onSignal);
  try {
    const result = await fn(controller.signal);
    throwIfInterrupted(controller.signal);
    return result;
  } finally {
    for (const s of SIGNALS) process.removeListener(s, onSignal);
  }
}

export function throwIfInterrupted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new InterruptedError(signal.reason as NodeJS.Signals);
}

/** Let the event loop run once (so signal listeners fire), then stop if interrupted. */
export async function checkpoint(signal: AbortSignal | undefined, delayMs = 0): Promise<void> {
  if (delayMs > 0 && !signal?.aborted) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, delayMs);
      function done(): void {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        resolve();
      }
      signal?.addEventListener('abort', done, { once: true });
    });
  } else {
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  throwIfInterrupted(signal);
}
