// The real `rdmactl top` in a real terminal (tmux) while a process of uid 65534 named
// `x<ESC>]0;PWNED<BEL><ESC>[2J` (its comm) mlocks memory: the terminal's title is not set, the
// screen is not cleared, and the row shows the name as \xNN.
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, ROOT, UNPRIVILEGED, builtOrThrow, exited, unprivilegedUnavailable } from '../helpers/spawn.js';
import { paneOf, tmux } from '../helpers/tmux.js';

const hasTmux = spawnSync('tmux', ['-V']).status === 0;
const unprivileged = unprivilegedUnavailable();
const skip = !hasTmux ? 'tmux is not installed (apt-get install tmux)' : unprivileged;
if (skip) console.warn(`SKIPPING the rdmactl top hostile-name test: ${skip}`);

const SESSION = `rdmactl-top-names-${process.pid}`;
const TITLE = 'x\x1b]0;PWNED\x07\x1b[2J';

const pane = paneOf(SESSION);
const { capture, paneFlag } = pane;

async function until(what: string, timeoutMs: number, test: (screen: string) => boolean): Promise<string> {
  return (await pane.until(what, timeoutMs, test)).screen;
}

describe.skipIf(skip !== null)('rdmactl top with a hostile process name', () => {
  let dir: string;
  let named: ChildProcessWithoutNullStreams;

  beforeAll(async () => {
    builtOrThrow();
    dir = mkdtempSync(join(tmpdir(), 'rdmactl-top-names-'));
    chmodSync(dir, 0o755);
    const link = join(dir, TITLE);
    symlinkSync(process.execPath, link);
    named = spawn(UNPRIVILEGED[0]!, [...UNPRIVILEGED.slice(1), link, BIN, 'reg', '1M', '--backend', 'mlock', '--json'], { stdio: 'pipe' });
    await new Promise<void>((resolve, reject) => {
      named.stdout.once('data', () => resolve());
      named.once('exit', (code) => reject(new Error(`the named process exited (${code}) before registering`)));
    });
  });

  afterAll(async () => {
    try { tmux('kill-session', '-t', SESSION); } catch { /* already gone */ }
    named.kill('SIGTERM');
    await exited(named);
    rmSync(dir, { recursive: true, force: true });
  });

  it('neither sets the title nor clears the screen; the row shows the name escaped', async () => {
    tmux('new-session', '-d', '-s', SESSION, '-x', '140', '-y', '40',
      `cd ${ROOT} && CI=true ${process.execPath} ${BIN} top --interval 500ms; echo EXIT=$?; sleep 600`);
    const titleBefore = paneFlag('pane_title');
    // Filter to the process: its row is then the only one, whatever else runs on the machine.
    await until('the first frame', 20_000, (s) => s.includes('pinned history'));
    tmux('send-keys', '-t', SESSION, '/', ...String(named.pid).split(''), 'Enter');
    const screen = await until(`pid ${named.pid}`, 15_000, (s) => new RegExp(`^[ +^]\\s+${named.pid} `, 'm').test(s));
    // Let a few more frames be drawn: each would carry the sequence again.
    await sleep(1500);
    const later = capture();
    expect(paneFlag('pane_title')).not.toContain('PWNED');
    expect(paneFlag('pane_title')).toBe(titleBefore);
    expect(later).toContain('pinned history'); // not cleared
    expect(later.match(/^rdmactl top /gm)).toHaveLength(1);
    expect(screen).toMatch(new RegExp(`^[ +^]\\s+${named.pid} nobody\\s+x\\\\x1b]0;PWNED\\\\…`, 'm'));
    tmux('send-keys', '-t', SESSION, 'q');
    expect(await until('EXIT=', 10_000, (s) => s.includes('EXIT='))).toContain('EXIT=0');
  }, 60_000);
});
