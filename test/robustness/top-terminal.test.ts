// `rdmactl top` whose terminal goes away (the tmux session is killed) ends quietly: no "Unhandled
// 'error' event … EIO", no Node assertion, and with stderr redirected to a file nothing lands there —
// not even the cursor sequence ink's exit hook would write. A normal quit leaves the file empty too.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, ROOT, builtOrThrow } from '../helpers/spawn.js';
import { becomeSubreaper, reap, running } from '../held/helpers.js';

const hasTmux = spawnSync('tmux', ['-V']).status === 0;
if (!hasTmux) console.warn('SKIPPING the lost-terminal test of rdmactl top: tmux is not installed (apt-get install tmux)');

const SESSION = `rdmactl-top-lost-${process.pid}`;
const tmux = (...args: string[]) => spawnSync('tmux', args, { encoding: 'utf8' });

/** The pid of the `rdmactl top` in the session's pane (the pane's shell exec'd it). */
function topPid(): number | null {
  const pid = Number(tmux('display-message', '-p', '-t', SESSION, '#{pane_pid}').stdout.trim());
  return pid > 0 ? pid : null;
}

describe.skipIf(!hasTmux)('rdmactl top when its terminal goes away', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rdmactl-top-lost-'));
  beforeAll(() => {
    builtOrThrow();
    becomeSubreaper(); // the dashboard is re-parented to us when tmux dies, so we can reap it
  });
  afterAll(() => {
    tmux('kill-session', '-t', SESSION);
    rmSync(dir, { recursive: true, force: true });
  });

  it.each(['kill-session', 'q'] as const)('%s: top exits by itself and writes nothing to the redirected stderr', async (how) => {
    const errFile = join(dir, `${how}.stderr`);
    const started = tmux('new-session', '-d', '-s', SESSION, '-x', '150', '-y', '40', `cd ${ROOT} && exec ${process.execPath} ${BIN} top --interval 200ms 2>${errFile}`);
    expect(started.status, started.stderr).toBe(0);
    let pid: number | null = null;
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      pid ??= topPid();
      if (pid !== null && tmux('capture-pane', '-p', '-t', SESSION).stdout.includes('rdmactl top')) break;
      await sleep(100);
    }
    expect(pid, 'the dashboard never drew its first frame').not.toBeNull();
    if (how === 'q') tmux('send-keys', '-t', SESSION, 'q');
    else tmux('kill-session', '-t', SESSION);
    // Generous: a loaded 2-core CI machine schedules late; a top that hangs on EIO never exits at all.
    const gone = Date.now() + 10_000;
    while (Date.now() < gone && running(pid!)) await sleep(20);
    expect(running(pid!)).toBe(false);
    const status = await reap(pid!, 2_000).catch(() => null);
    if (status !== null) expect(status.signal).toBeNull(); // ended by itself, not killed by SIGABRT
    expect(readFileSync(errFile, 'utf8')).toBe('');
    tmux('kill-session', '-t', SESSION);
  });
});
