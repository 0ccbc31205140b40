// Starts the dashboard on the terminal: alternate screen, ink render, restore on every way out.
// Loaded only by `rdmactl top` (through a dynamic import, usually of the esbuild bundle).

import { render } from 'ink';
import type { SortOrder } from '../format.js';
import type { DashboardActions, EventsSource, SnapshotSource } from '../types.js';
import { App } from './App.js';

const ENTER_ALT_SCREEN = '\u001B[?1049h\u001B[H';
const LEAVE_ALT_SCREEN = '\u001B[?1049l';
const SHOW_CURSOR = '\u001B[?25h';

export interface RunOptions {
  source: SnapshotSource;
  actions: DashboardActions;
  count?: number;
  initialSort?: SortOrder;
  /** The events pane's feed (run and stopped by the caller). */
  events?: EventsSource;
  stdout?: NodeJS.WriteStream;
  stdin?: NodeJS.ReadStream;
}

/**
 * The terminal is gone: point every stdio fd that is a terminal at /dev/null. Node restores the
 * terminal modes of its stdio at exit and aborts with an assertion when that fails (EIO on a closed
 * pty); it leaves alone an fd that no longer refers to the file it saw at start.
 */
async function detachFromTerminal(): Promise<void> {
  const { closeSync, fstatSync, openSync } = await import('node:fs');
  const { isatty } = await import('node:tty');
  const { dup2 } = await import('../../ffi/libc.js');
  const devNull = openSync('/dev/null', 'r+');
  try {
    for (const fd of [0, 1, 2]) {
      try {
        const st = fstatSync(fd);
        if (isatty(fd) || (st.isCharacterDevice() && st.rdev !== 0x103)) dup2(devNull, fd);
      } catch {
        // closed: nothing to restore there
      }
    }
  } finally {
    closeSync(devNull);
  }
}

/** Renders until the person quits (or --count refreshes, or SIGTERM/SIGHUP); the terminal is restored. */
export async function runDashboard(options: RunOptions): Promise<void> {
  const stdout = options.stdout ?? process.stdout;
  const stdin = options.stdin ?? process.stdin;
  let restored = false;
  let terminalGone = false;
  const restore = (): void => {
    if (restored || terminalGone) return;
    restored = true;
    try {
      stdout.write(LEAVE_ALT_SCREEN + SHOW_CURSOR);
    } catch {
      // the terminal went away meanwhile: nothing left to restore
    }
  };
  stdout.write(ENTER_ALT_SCREEN);
  process.once('exit', restore);
  const instance = render(
    <App
      source={options.source}
      actions={options.actions}
      {...(options.count !== undefined ? { count: options.count } : {})}
      {...(options.initialSort ? { initialSort: options.initialSort } : {})}
      {...(options.events ? { events: options.events } : {})}
    />,
    { stdout, stdin, exitOnCtrlC: false, patchConsole: true, maxFps: 30 },
  );
  const onSignal = (): void => instance.unmount();
  const signals: NodeJS.Signals[] = ['SIGTERM', 'SIGHUP', 'SIGINT'];
  for (const signal of signals) process.on(signal, onSignal);
  // The terminal went away (its window closed: EIO; a pty whose reader ended: EPIPE): end quietly —
  // there is no screen left to restore and nobody to tell.
  const onStreamError = (): void => {
    terminalGone = true;
    try {
      instance.unmount();
    } catch {
      // ink's cleanup (setRawMode) fails the same way on a terminal that is gone
    }
  };
  stdout.on('error', onStreamError);
  stdin.on('error', onStreamError);
  try {
    await instance.waitUntilExit();
  } catch (err) {
    if (!terminalGone) throw err;
  } finally {
    for (const signal of signals) process.off(signal, onSignal);
    try {
      instance.cleanup();
    } catch (err) {
      if (!terminalGone) throw err;
    }
    if (terminalGone) await detachFromTerminal();
    restore();
    process.off('exit', restore);
    // Writes already queued can still fail after we return: keep swallowing them.
    if (!terminalGone) {
      stdout.off('error', onStreamError);
      stdin.off('error', onStreamError);
    }
  }
}
