// The real `rdmactl top` in a real terminal (tmux), used as a person would: the detail view of a
// process that is killed while it is open, scrolling a detail taller than a small terminal, and the
// sort direction (`--sort -KEY` / `+KEY`, key I).
import { spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { statusKb } from '../helpers/proc.js';
import { BIN, ROOT, builtOrThrow, exited, startRdmactl } from '../helpers/spawn.js';
import { paneOf, tmux } from '../helpers/tmux.js';

const hasTmux = spawnSync('tmux', ['-V']).status === 0;
const hasPrlimit = spawnSync('prlimit', ['--version']).status === 0;
const skip = !hasTmux ? 'tmux is not installed (apt-get install tmux)' : !hasPrlimit ? 'prlimit is not installed (util-linux)' : null;
if (skip) console.warn(`SKIPPING the rdmactl top detail and sort tests: ${skip}`);

const SESSION = `rdmactl-top-detail-${process.pid}`;
const pane = paneOf(SESSION);
const { capture } = pane;

async function until(what: string, timeoutMs: number, test: (screen: string) => boolean): Promise<string> {
  return (await pane.until(what, timeoutMs, test)).screen;
}

function keys(...names: string[]): void {
  tmux('send-keys', '-t', SESSION, ...names);
}

/** `rdmactl top ARGS` in a fresh tmux pane of COLUMNS x ROWS, once its first frame is drawn. */
async function startTop(columns: number, rows: number, args: string): Promise<void> {
  tmux('new-session', '-d', '-s', SESSION, '-x', String(columns), '-y', String(rows),
    `cd ${ROOT} && CI=true ${process.execPath} ${BIN} top --interval 500ms ${args}; echo EXIT=$?; sleep 600`);
  await until('the first frame', 20_000, (s) => s.includes('pinned history'));
  // Keys typed before the dashboard reads its input could be lost: wait until it answers one.
  keys('?');
  await until('the help', 10_000, (s) => s.includes('rdmactl top: keys'));
  keys('Escape');
  await until('the table', 10_000, (s) => /PID USER\s+COMM/.test(s));
}

/** Filter the table to `pid` and open its detail. */
async function openDetail(pid: number): Promise<string> {
  keys('/', ...String(pid).split(''), 'Enter');
  await until('the filter', 10_000, (s) => s.includes(`filter '${pid}'`));
  await until(`the row of ${pid}`, 15_000, (s) => new RegExp(`^[ +^]\\s+${pid} `, 'm').test(s));
  keys('Enter');
  return until(`the detail of ${pid}`, 10_000, (s) => s.includes(`pid ${pid} `));
}

/** Line index of the table row of `pid` (-1 when not shown). */
function rowIndex(screen: string, pid: number): number {
  return screen.split('\n').findIndex((line) => new RegExp(`^[ +^x]\\s+${pid} `).test(line));
}

/** The registered io_uring buffers of `pid` as the kernel lists them (fdinfo UserBufs entries): address → length. */
function uringBuffers(pid: number): Map<string, number> {
  const buffers = new Map<string, number>();
  for (const fd of readdirSync(`/proc/${pid}/fdinfo`)) {
    let text: string;
    try { text = readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'); } catch { continue; }
    if (!text.includes('UserBufs:')) continue;
    for (const m of text.matchAll(/^\s+\d+: (0x[0-9a-f]+)\/(\d+)$/gm)) buffers.set(m[1]!, Number(m[2]));
  }
  return buffers;
}

/** RLIMIT_MEMLOCK of `pid` from /proc/PID/limits: [soft, hard] in bytes. */
function memlockOf(pid: number): [number, number] {
  const m = /^Max locked memory\s+(\d+)\s+(\d+)\s+bytes\s*$/m.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'));
  if (!m) throw new Error(`no finite Max locked memory in /proc/${pid}/limits`);
  return [Number(m[1]), Number(m[2])];
}

describe.skipIf(skip !== null)('rdmactl top detail and sort, in a terminal', () => {
  const children: ChildProcessWithoutNullStreams[] = [];

  beforeAll(() => builtOrThrow());
  afterEach(async () => {
    try { tmux('kill-session', '-t', SESSION); } catch { /* already gone */ }
    for (const child of children.splice(0)) {
      child.kill('SIGTERM');
      await exited(child);
    }
  });

  it('the detail of a process killed while it is open says it has exited, when it was last seen, and no limit or size of it', async () => {
    const { child } = await startRdmactl(['reg', '1M', '--backend', 'mlock', '--json'], ['prlimit', '--memlock=4194304:8388608']);
    children.push(child);
    const pid = child.pid!;
    expect(memlockOf(pid)).toEqual([4 * 1024 * 1024, 8 * 1024 * 1024]);
    expect(statusKb(pid, 'VmLck')).toBe(1024);

    await startTop(120, 30, '');
    const live = await openDetail(pid);
    expect(live).toMatch(/^pinned 0\s+locked 1 MiB\s+RLIMIT_MEMLOCK soft 4 MiB, hard 8 MiB$/m);

    child.kill('SIGKILL');
    await exited(child);
    const gone = await until('the exited view', 10_000, (s) => s.includes(`process ${pid} `));
    // top may have looked between the SIGKILL and our reaping: then it also says the process is a zombie.
    expect(gone).toMatch(new RegExp(`^process ${pid} \\(\\S+, user \\S+\\) has exited( \\(a zombie: its parent has not reaped it yet\\))?\\s*$`, 'm'));
    expect(gone).toMatch(/^last seen \d\d:\d\d:\d\d, \d+ s ago\s*$/m);
    for (const stale of ['unlimited', 'RLIMIT_MEMLOCK', 'locked 1 MiB', 'Registrations', 'Locked ranges']) expect(gone).not.toContain(stale);
    // It stays so over the next refreshes (the pid is not looked up again).
    await sleep(1200);
    const later = capture();
    expect(later).toContain(`process ${pid} `);
    expect(later).not.toContain('unlimited');
    keys('Escape');
    await until('the table again', 5000, (s) => /PID USER\s+COMM/.test(s));
  }, 60_000);

  it('scrolls a detail taller than the terminal: every registration the kernel lists can be reached, with "lines a–b of n"', async () => {
    const { child } = await startRdmactl(['reg', '4K', '--backend', 'uring', '--count', '60', '--json']);
    children.push(child);
    const pid = child.pid!;
    const kernel = uringBuffers(pid);
    expect(kernel.size).toBe(60);

    await startTop(100, 24, '');
    const first = await openDetail(pid);
    expect(first).toContain(`Registrations (${kernel.size})`);
    expect(first).toContain('↑↓ PgUp PgDn Home End scroll'); // the footer says the keys
    const indicator = /^lines (\d+)–(\d+) of (\d+) /m;
    const [, from, to, total] = indicator.exec(first)!.map(Number);
    expect(from).toBe(1);
    // Everything fits in 24 rows: nothing wraps or pushes the header off.
    expect(first.trimEnd().split('\n').length).toBeLessThanOrEqual(24);
    expect(first).toMatch(/^rdmactl top /);
    expect(total).toBeGreaterThan(kernel.size);

    // Page down to the end, collecting the registrations seen on each page.
    const seen = new Map<string, string>();
    let screen = first;
    let lastFrom = 0;
    for (let page = 0; page < 40; page++) {
      for (const m of screen.matchAll(/^ {2}io_uring (0x[0-9a-f]+)\s+(\S+ \S+)/gm)) seen.set(m[1]!, m[2]!);
      const [, at, end, of] = indicator.exec(screen)!.map(Number);
      if (end === of) break;
      lastFrom = at!;
      keys('PageDown');
      screen = await until('the next page', 5000, (s) => Number(indicator.exec(s)?.[1]) > lastFrom);
    }
    expect([...seen.keys()].sort()).toEqual([...kernel.keys()].sort());
    for (const [addr, length] of seen) expect(length, addr).toBe(`${kernel.get(addr)! / 1024} KiB`);

    keys('Home');
    screen = await until('the top of the detail', 5000, (s) => indicator.exec(s)?.[1] === '1');
    expect(screen).toContain(`Registrations (${kernel.size})`);
    keys('j', 'j'); // past the blank line and the heading
    screen = await until('two lines down', 5000, (s) => indicator.exec(s)?.[1] === '3');
    expect(screen).not.toContain(`Registrations (${kernel.size})`);
    keys('End');
    screen = await until('the end', 5000, (s) => { const m = indicator.exec(s); return m !== null && m[2] === m[3]; });
    expect(Number(indicator.exec(screen)![2]) - Number(indicator.exec(screen)![1]) + 1).toBe(to! - from! + 1);
    // The head stays: who the process is.
    expect(screen).toContain(`pid ${pid} `);
  }, 90_000);

  it('--sort +KEY and -KEY set the direction, I inverts it, s goes to the next key in its own order', async () => {
    const small = await startRdmactl(['reg', '1M', '--backend', 'mlock', '--json']);
    children.push(small.child);
    const large = await startRdmactl(['reg', '3M', '--backend', 'mlock', '--json']);
    children.push(large.child);
    const [a, b] = [small.child.pid!, large.child.pid!];
    expect(statusKb(a, 'VmLck')).toBeLessThan(statusKb(b, 'VmLck'));

    await startTop(140, 50, '--sort +locked');
    let screen = await until('both rows', 15_000, (s) => rowIndex(s, a) >= 0 && rowIndex(s, b) >= 0);
    expect(screen).toContain('sort: locked asc');
    expect(rowIndex(screen, a)).toBeLessThan(rowIndex(screen, b));
    keys('I');
    screen = await until('locked desc', 5000, (s) => s.includes('sort: locked desc'));
    expect(rowIndex(screen, b)).toBeLessThan(rowIndex(screen, a));
    expect(screen).toContain('I invert');
    keys('s');
    screen = await until('the next key', 5000, (s) => s.includes('sort: headroom asc'));
    keys('q');
    expect(await until('EXIT=', 10_000, (s) => s.includes('EXIT='))).toContain('EXIT=0');
    tmux('kill-session', '-t', SESSION);

    await startTop(140, 50, '--sort -pid');
    screen = await until('both rows', 15_000, (s) => rowIndex(s, a) >= 0 && rowIndex(s, b) >= 0);
    expect(screen).toContain('sort: pid desc');
    const [lower, higher] = a < b ? [a, b] : [b, a];
    expect(rowIndex(screen, higher)).toBeLessThan(rowIndex(screen, lower));
    keys('I');
    screen = await until('pid asc', 5000, (s) => s.includes('sort: pid asc'));
    expect(rowIndex(screen, lower)).toBeLessThan(rowIndex(screen, higher));
  }, 90_000);
});
