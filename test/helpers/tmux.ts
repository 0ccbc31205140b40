// tmux as the dashboard tests' terminal: a detached session of the test's own, read back as a person
// would see it (capture-pane) and through tmux's own view of the pane (display-message formats).
import { spawnSync } from 'node:child_process';

/** Runs tmux; throws with its stderr when it fails. */
export function tmux(...args: string[]): string {
  const result = spawnSync('tmux', args, { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`tmux ${args.join(' ')}: ${result.stderr}`);
  return result.stdout;
}

/** The screen of `session`'s pane and one of its format variables (e.g. pane_title). */
export function paneOf(session: string): { capture(): string; paneFlag(name: string): string } {
  return {
    capture: () => tmux('capture-pane', '-p', '-t', session),
    paneFlag: (name) => tmux('display-message', '-p', '-t', session, `#{${name}}`).trim(),
  };
}
