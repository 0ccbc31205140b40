// The real `rdmactl top` in a real terminal (tmux): a holder's row appears with its size, is marked
// exiting after the holder ends, disappears, and `q` exits 0 with the terminal restored.
import { spawnSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { statusKb } from '../helpers/proc.js';
import { BIN, ROOT, builtOrThrow, exited, startRdmactl } from '../helpers/spawn.js';

const MiB = 1024 * 1024;
const hasTmux = spawnSync('tmux', ['-V']).status === 0;
if (!hasTmux) console.warn('SKIPPING the rdmactl top end-to-end test: tmux is not installed (apt-get install tmux)');

const SESSION = `rdmactl-top-e2e-${process.pid}`;
const INTERVAL_MS = 1000;

function tmux(...args: string[]): string {
  const result = spawnSync('tmux', args, { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`tmux ${args.join(' ')}: ${result.stderr}`);
  return result.stdout;
}

const capture = (): string => tmux('capture-pane', '-p', '-t', SESSION);
const paneFlag = (name: string): string => tmux('display-message', '-p', '-t', SESSION, `#{${name}}`).trim();

async function until(what: string, timeoutMs: number, test: (screen: string) => boolean): Promise<{ screen: string; ms: number }> {
  const started = performance.now();
  let screen = '';
  while (performance.now() - started < timeoutMs) {
    screen = capture();
    if (test(screen)) return { screen, ms: performance.now() - started };
    await sleep(50);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; screen:\n${screen}`);
}

/** The table line of `pid` (mark character, pid, …), or undefined. */
function rowOf(screen: string, pid: number): string | undefined {
  return screen.split('\n').find((line) => new RegExp(`^[ +^x]\\s+${pid} `).test(line));
}

describe.skipIf(!hasTmux)('rdmactl top in a terminal', () => {
  let holder: Awaited<ReturnType<typeof startRdmactl>> | null = null;

  beforeAll(() => builtOrThrow());
  afterAll(async () => {
    try { tmux('kill-session', '-t', SESSION); } catch { /* already gone */ }
    if (holder && holder.child.exitCode === null) {
      holder.child.kill('SIGKILL');
      await exited(holder.child);
    }
  });

  it('shows a holder with its size, marks it exiting, drops it, and quits cleanly on q', async () => {
    holder = await startRdmactl(['reg', '8M', '--backend', 'uring', '--json']);
    const pid = holder.child.pid!;
    expect(statusKb(pid, 'VmPin') * 1024).toBe(8 * MiB);

    tmux('new-session', '-d', '-s', SESSION, '-x', '140', '-y', '40',
      `cd ${ROOT} && CI=true ${process.execPath} ${BIN} top --interval ${INTERVAL_MS}ms; echo EXIT=$?; sleep 600`);
    await until('the first frame', 20_000, (s) => s.includes('pinned history'));
    expect(paneFlag('alternate_on')).toBe('1');

    // Within two refreshes the holder's row is there with 8 MiB pinned (as /proc/PID/status says).
    const { screen } = await until(`pid ${pid} with 8 MiB`, 2 * INTERVAL_MS + 1500, (s) => /8 MiB/.test(rowOf(s, pid) ?? ''));
    expect(rowOf(screen, pid)).toMatch(new RegExp(`^[ +]\\s+${pid} \\S+\\s+\\S+\\s+8 MiB `));
    expect(screen).toMatch(/^pinned\s+\[.*\] \d/m);
    // Each refresh replaces the whole frame: one header, one table heading, nothing left over.
    expect(screen.match(/^rdmactl top /gm)).toHaveLength(1);
    expect(screen.match(/^\s+PID USER\s+COMM/gm)).toHaveLength(1);

    // Filter to the holder: exercises `/`, and keeps its row on screen whatever else runs here.
    tmux('send-keys', '-t', SESSION, '/', ...String(pid).split(''), 'Enter');
    await until('the filter', 5000, (s) => s.includes(`filter '${pid}'`));

    holder.child.kill('SIGTERM');
    await exited(holder.child);
    // Kept one more refresh, marked exiting ('x'), then swept.
    await until(`pid ${pid} marked exiting`, 3 * INTERVAL_MS + 2000, (s) => rowOf(s, pid)?.startsWith('x') === true);
    await until(`pid ${pid} gone`, 3 * INTERVAL_MS + 2000, (s) => rowOf(s, pid) === undefined);

    tmux('send-keys', '-t', SESSION, 'q');
    const end = await until('EXIT=', 10_000, (s) => s.includes('EXIT='));
    expect(end.screen).toContain('EXIT=0');
    // The alternate screen was left (the dashboard is gone from the pane) and the cursor is visible.
    expect(end.screen).not.toContain('pinned history');
    expect(paneFlag('alternate_on')).toBe('0');
    expect(paneFlag('cursor_flag')).toBe('1');
  }, 60_000);
});
