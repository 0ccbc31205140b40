// Starts the dashboard on the terminal: alternate screen, ink render, restore on every way out.
// Loaded only by `rdmactl top` (through a dynamic import, usually of the esbuild bundle).

import { render } from 'ink';
import type { SortKey } from '../../commands/stat.js';
import type { DashboardActions, SnapshotSource } from '../types.js';
import { App } from './App.js';

const ENTER_ALT_SCREEN = '\u001B[?1049h\u001B[H';
const LEAVE_ALT_SCREEN = '\u001B[?1049l';
const SHOW_CURSOR = '\u001B[?25h';

export interface RunOptions {
  source: SnapshotSource;
  actions: DashboardActions;
  count?: number;
  initialSort?: SortKey;
  stdout?: NodeJS.WriteStream;
  stdin?: NodeJS.ReadStream;
}

/** Renders until the person quits (or --count refreshes, or SIGTERM/SIGHUP); the terminal is restored. */
export async function runDashboard(options: RunOptions): Promise<void> {
  const stdout = options.stdout ?? process.stdout;
  const stdin = options.stdin ?? process.stdin;
  let restored = false;
  const restore = (): void => {
    if (restored) return;
    restored = true;
    stdout.write(LEAVE_ALT_SCREEN + SHOW_CURSOR);
  };
  stdout.write(ENTER_ALT_SCREEN);
  process.once('exit', restore);
  const instance = render(
    <App
      source={options.source}
      actions={options.actions}
      {...(options.count !== undefined ? { count: options.count } : {})}
      {...(options.initialSort ? { initialSort: options.initialSort } : {})}
    />,
    { stdout, stdin, exitOnCtrlC: false, patchConsole: true, maxFps: 30 },
  );
  const onSignal = (): void => instance.unmount();
  const signals: NodeJS.Signals[] = ['SIGTERM', 'SIGHUP', 'SIGINT'];
  for (const signal of signals) process.on(signal, onSignal);
  try {
    await instance.waitUntilExit();
  } finally {
    for (const signal of signals) process.off(signal, onSignal);
    instance.cleanup();
    restore();
    process.off('exit', restore);
  }
}
