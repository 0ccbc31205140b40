// The real `rdmactl top` in a real terminal (tmux): a held registration (`reg --detach`) appears
// within two refreshes with the size /proc reports, `d` + `y` deregisters it from the dashboard, its
// row is marked exiting and then swept, and `q` exits 0 with the terminal restored.
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonLines } from '../helpers/run.js';
import { statusKb } from '../helpers/proc.js';
import { BIN, ROOT, builtOrThrow } from '../helpers/spawn.js';
import { becomeSubreaper, killAndReap, rdmactlBin, reap, tempRuntime } from '../held/helpers.js';
import { paneOf, tmux } from '../helpers/tmux.js';

const MiB = 1024 * 1024;
const hasTmux = spawnSync('tmux', ['-V']).status === 0;
if (!hasTmux) console.warn('SKIPPING the rdmactl top end-to-end test: tmux is not installed (apt-get install tmux)');

const SESSION = `rdmactl-top-e2e-${process.pid}`;
const INTERVAL_MS = 1000;

const { paneFlag, until } = paneOf(SESSION);

/** The table line of `pid` (mark character, pid, …), or undefined. */
function rowOf(screen: string, pid: number): string | undefined {
  return screen.split('\n').find((line) => new RegExp(`^[ +^x]\\s+${pid} `).test(line));
}

describe.skipIf(!hasTmux)('rdmactl top in a terminal', () => {
  const runtime = tempRuntime();
  const holders = new Set<number>();

  beforeAll(() => {
    builtOrThrow();
    becomeSubreaper(); // the detached holder is re-parented to us, so we can reap it
  });
  afterAll(async () => {
    try { tmux('kill-session', '-t', SESSION); } catch { /* already gone */ }
    await killAndReap(holders);
    runtime.cleanup();
  });

  it('shows a held registration with its size, deregisters it on d + y, marks it exiting, drops it, quits on q', async () => {
    const detached = rdmactlBin(['reg', '8M', '--backend', 'uring', '--detach', '--json'], runtime.env);
    expect(detached.status, detached.stderr).toBe(0);
    const { id, pid } = jsonLines(detached.stdout)[0] as { id: string; pid: number };
    holders.add(pid);
    expect(statusKb(pid, 'VmPin') * 1024).toBe(8 * MiB);

    // CI=true: ink must still draw live frames in a real terminal.
    tmux('new-session', '-d', '-s', SESSION, '-x', '140', '-y', '40',
      `cd ${ROOT} && XDG_RUNTIME_DIR=${runtime.dir} CI=true ${process.execPath} ${BIN} top --interval ${INTERVAL_MS}ms; echo EXIT=$?; sleep 600`);
    await until('the first frame', 20_000, (s) => s.includes('pinned history'));
    expect(paneFlag('alternate_on')).toBe('1');

    // Within two refreshes (plus slack for a loaded machine) the holder's row is there with 8 MiB pinned (as /proc/PID/status says).
    const { screen } = await until(`pid ${pid} with 8 MiB`, 2 * INTERVAL_MS + 5000, (s) => /8 MiB/.test(rowOf(s, pid) ?? ''));
    expect(rowOf(screen, pid)).toMatch(new RegExp(`^[ +]\\s+${pid} \\S+\\s+\\S+\\s+8 MiB `));
    expect(screen).toMatch(/^pinned\s+\[.*\] \d/m);
    expect(screen).toMatch(/held: 1\b/);
    // Each refresh replaces the whole frame: one header, one table heading, nothing left over.
    expect(screen.match(/^rdmactl top /gm)).toHaveLength(1);
    expect(screen.match(/^\s+PID USER\s+COMM/gm)).toHaveLength(1);

    // Filter to the holder (exercises `/`; its row is then the selected one), then d, y.
    tmux('send-keys', '-t', SESSION, '/', ...String(pid).split(''), 'Enter');
    await until('the filter', 5000, (s) => s.includes(`filter '${pid}'`));
    tmux('send-keys', '-t', SESSION, 'd');
    await until('the confirmation', 5000, (s) => s.includes(`Deregister held registration ${id} of pid ${pid}? (y/n)`));
    tmux('send-keys', '-t', SESSION, 'y');
    // The release takes a refresh or two, which go on meanwhile: the row is marked exiting ('x') for
    // one refresh and then swept, and the footer reports the release.
    let sawExiting = false;
    await until(`pid ${pid} exiting, then gone, and the release reported`, 4 * INTERVAL_MS + 10_000, (s) => {
      if (rowOf(s, pid)?.startsWith('x')) sawExiting = true;
      return rowOf(s, pid) === undefined && s.includes(`${id}: released`);
    });
    expect(sawExiting).toBe(true);
    expect(await reap(pid)).not.toBeNull(); // the holder really exited
    holders.delete(pid);

    tmux('send-keys', '-t', SESSION, 'q');
    const end = await until('EXIT=', 10_000, (s) => s.includes('EXIT='));
    expect(end.screen).toContain('EXIT=0');
    // The alternate screen was left (the dashboard is gone from the pane) and the cursor is visible.
    expect(end.screen).not.toContain('pinned history');
    expect(paneFlag('alternate_on')).toBe('0');
    expect(paneFlag('cursor_flag')).toBe('1');
  }, 60_000);
});
