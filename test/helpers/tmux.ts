// tmux as the dashboard tests' terminal: a detached session of the test's own, read back as a person
// would see it (capture-pane) and through tmux's own view of the pane (display-message formats).
import { spawnSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';

/** Runs tmux; throws with its stderr when it fails. */
export function tmux(...args: string[]): string {
  const result = spawnSync('tmux', args, { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`tmux ${args.join(' ')}: ${result.stderr}`);
  return result.stdout;
}

export interface Pane {
  /** The screen as a person sees it. */
  capture(): string;
  /** One of tmux's format variables of the pane (e.g. pane_title). */
  paneFlag(name: string): string;
  /** Polls the screen every 50 ms until `test` holds: the screen then and how long it took; throws with the last screen. */
  until(what: string, timeoutMs: number, test: (screen: string) => boolean): Promise<{ screen: string; ms: number }>;
}

/** The pane of `session`. */
export function paneOf(session: string): Pane {
  const capture = (): string => tmux('capture-pane', '-p', '-t', session);
  return {
    capture,
    paneFlag: (name) => tmux('display-message', '-p', '-t', session, `#{${name}}`).trim(),
    until: async (what, timeoutMs, test) => {
      const started = performance.now();
      let screen = '';
      while (performance.now() - started < timeoutMs) {
        screen = capture();
        if (test(screen)) return { screen, ms: performance.now() - started };
        await sleep(50);
      }
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; screen:\n${screen}`);
    },
  };
}
