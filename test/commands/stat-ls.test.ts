// `stat` and `ls` against real processes with known pins: an rdmactl holder and a plain C program.
// Every expectation is checked against /proc read by the test itself.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rdmactl, rdmactlWith } from '../helpers/run.js';
import { statusKb } from '../helpers/proc.js';
import { UNPRIVILEGED, builtOrThrow, exited, runSync, startRdmactl, BIN, unprivilegedUnavailable } from '../helpers/spawn.js';
import { buildPinner, findCompiler, makeTempDir, startPinner, type Pinner } from '../proc/helpers/children.js';

const MiB = 1024 * 1024;
const cc = findCompiler();
if (!cc) console.warn('SKIPPING the non-rdmactl pinner part of stat/ls tests: no C compiler (install gcc)');

type Json = Record<string, unknown>;

function sumOfVmPinKb(): number {
  let total = 0;
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const match = /^VmPin:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${name}/status`, 'utf8'));
      if (match) total += Number(match[1]);
    } catch { /* exited */ }
  }
  return total;
}

/** Linux's PID_MAX_LIMIT: no pid is ever above it. */
const PID_MAX_LIMIT = 4_194_304;

/** A pid no process has: above pid_max where it can be, else a child of ours that has been reaped. */
function pidThatDoesNotExist(): number {
  const pidMax = Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8'));
  if (pidMax < PID_MAX_LIMIT) return pidMax + 1;
  const reaped = spawnSync('true').pid;
  if (reaped === undefined) throw new Error('could not start true(1) for a reaped pid');
  return reaped;
}

/** The numbers of one column of bare (-rn -b) lines. */
const column = (stdout: string, index: number): string[] => stdout.trim().split('\n').map((line) => line.split(' ')[index]!);

describe('stat and ls with known pins', () => {
  let holder: Awaited<ReturnType<typeof startRdmactl>>;
  let holderRecord: Json;
  let pinner: Pinner | null = null;
  let dir: string | null = null;

  beforeAll(async () => {
    builtOrThrow();
    holder = await startRdmactl(['reg', '4M', '--backend', 'uring', '--overlap', '--dontfork', '--json']);
    holderRecord = JSON.parse(holder.firstLine) as Json;
    if (cc) {
      dir = makeTempDir('rdmactl-statls-');
      pinner = await startPinner(buildPinner(cc, dir), [String(MiB), String(2 * MiB)]);
    }
  });

  afterAll(async () => {
    holder.child.kill('SIGTERM');
    await exited(holder.child);
    await pinner?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('stat --json reports each process exactly as /proc/PID/status says, with limits and flags', async () => {
    const sumBefore = sumOfVmPinKb() * 1024;
    const result = await rdmactl('stat', '--json');
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout) as { processes: Json[]; users: Json[]; system: Json; unreadableProcesses: number };
    const holderRow = report.processes.find((p) => p['pid'] === holder.child.pid)!;
    expect(holderRow).toBeDefined();
    expect(holderRow['pinnedBytes']).toBe(statusKb(holder.child.pid!, 'VmPin') * 1024);
    expect(holderRow['pinnedBytes']).toBe(8 * MiB);
    expect(holderRow['lockedBytes']).toBe(statusKb(holder.child.pid!, 'VmLck') * 1024);
    expect(holderRow['doubleCountedBytes']).toBe(4 * MiB);
    expect(holderRow['flags']).toEqual(expect.arrayContaining(['overlap', 'dontfork', 'io_uring']));
    const limit = /^Max locked memory\s+(\d+|unlimited)/m.exec(readFileSync(`/proc/${holder.child.pid}/limits`, 'utf8'))![1];
    expect(holderRow['memlockLimitBytes']).toBe(limit === 'unlimited' ? null : Number(limit));
    if (pinner) {
      const row = report.processes.find((p) => p['pid'] === pinner!.pid)!;
      expect(row['pinnedBytes']).toBe(statusKb(pinner.pid, 'VmPin') * 1024);
      expect(row['lockedBytes']).toBe(statusKb(pinner.pid, 'VmLck') * 1024);
      expect(row['lockedBytes']).toBe(MiB);
      expect(row['comm']).toBe('pinner');
    }
    // Other processes may pin or unpin while we look: compare only when the machine held still.
    const sumAfter = sumOfVmPinKb() * 1024;
    if (sumAfter === sumBefore) expect(report.system['pinnedBytes']).toBe(sumAfter);
    else console.warn('system.pinnedBytes not compared: another process changed its pins during the scan');
    expect(report.system['memTotalBytes']).toBe(Number(/^MemTotal:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'))![1]) * 1024);
    const root = report.users.find((u) => u['uid'] === 0)!;
    expect(root['uringBytes']).toBeGreaterThanOrEqual(8 * MiB);
  });

  it('stat PID shows only that process; bad pids and sort keys are usage errors', async () => {
    const result = await rdmactl('stat', String(holder.child.pid), '--json');
    const report = JSON.parse(result.stdout) as { processes: Json[] };
    expect(report.processes.map((p) => p['pid'])).toEqual([holder.child.pid]);
    expect((await rdmactl('stat', 'x1')).code).toBe(2);
    expect((await rdmactl('stat', '--sort', 'size')).code).toBe(2);
  });

  it('stat on a terminal shows the holder, then the user and system totals', async () => {
    const result = await rdmactlWith({ tty: true }, 'stat', '--sort', 'pid');
    expect(result.stdout).toMatch(new RegExp(`│ +${holder.child.pid} +│ +root +│ +node +│ +8 MiB +│`));
    expect(result.stdout).toMatch(/│ UID +│ USER +│ PROCS +│/);
    expect(result.stdout).toContain('pinned (sum of VmPin)');
  });

  it('stat PID: the user totals are labelled as the listed processes only, the system totals as the whole machine (terminal, pipe, --json)', async () => {
    const pid = String(holder.child.pid);
    const listed = JSON.parse((await rdmactl('stat', pid, '--json')).stdout) as { users: Json[]; usersCover: string; system: Json };
    expect(listed.usersCover).toBe('listed-processes');
    expect(listed.users).toMatchObject([{ uid: 0, processes: 1, pinnedBytes: statusKb(holder.child.pid!, 'VmPin') * 1024 }]);
    expect(JSON.parse((await rdmactl('stat', '--json')).stdout)).toMatchObject({ usersCover: 'all-processes' });
    expect(JSON.parse((await rdmactl('stat', '--user', 'root', '--json')).stdout)).toMatchObject({ usersCover: 'all-processes' });

    // On a terminal: a title above each totals table, after the process table.
    const onTerminal = (await rdmactlWith({ tty: true }, 'stat', pid)).stdout;
    expect(onTerminal).toMatch(/\nusers \(only the listed processes\)\n┌[─┬]+┐\n│ UID +│ USER +│ PROCS/);
    expect(onTerminal).toMatch(/\nsystem \(whole machine\)\n┌[─┬]+┐\n│ pinned \(sum of VmPin\) /);
    expect(onTerminal.indexOf('users (')).toBeGreaterThan(onTerminal.indexOf(`│ ${pid} `));
    expect(onTerminal.indexOf('system (')).toBeGreaterThan(onTerminal.indexOf('users ('));
    const everyone = (await rdmactlWith({ tty: true }, 'stat')).stdout;
    expect(everyone).toContain('\nusers (all processes)\n');
    expect(everyone).toContain('\nsystem (whole machine)\n');
    expect((await rdmactlWith({ tty: true }, 'stat', '--by', 'user', pid)).stdout).toMatch(/^users \(only the listed processes\)\n┌/);
    expect((await rdmactlWith({ tty: true }, 'stat', '--summary', pid)).stdout).toMatch(/^users \(only the listed processes\)\n┌[^]*\nsystem \(whole machine\)\n┌/);

    // In a pipe the tables stay bare; with --summary of listed processes a note on stderr says which is which.
    const piped = await rdmactl('stat', '--summary', pid);
    expect(piped.stdout).not.toMatch(/users \(|system \(/);
    expect(piped.stdout).toMatch(/^UID +USER +PROCS/);
    expect(piped.stderr).toContain('rdmactl: the user totals count only the listed processes; the system totals are the whole machine\'s');
    expect((await rdmactl('stat', '--summary')).stderr).not.toContain('only the listed processes');
    // -r / -n: records only, no title anywhere.
    expect((await rdmactlWith({ tty: true }, 'stat', '--summary', pid, '-rn')).stdout).not.toMatch(/users \(|system \(/);
  });

  it('stat in a pipe prints one table, the processes, like ps: `stat | awk \'{print $1}\'` gives PID and pids only', async () => {
    const result = await rdmactl('stat', '--sort', 'pid');
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(new RegExp(`^${holder.child.pid} +root +node +8M `, 'm'));
    const [header, ...rows] = column(result.stdout.replace(/ +/g, ' '), 0);
    expect(header).toBe('PID');
    expect(rows.every((pid) => /^\d+$/.test(pid)), result.stdout).toBe(true);
    expect(rows).toContain(String(holder.child.pid));
    expect(result.stdout).not.toContain('pinned (sum of VmPin)');
    expect(result.stdout).not.toMatch(/PROCS|processes (only partly|not) readable/);
  });

  it('stat --summary: the user and system totals without the process table; with -rn -b one line of system numbers', async () => {
    const summary = await rdmactl('stat', '--summary');
    expect(summary.code, summary.stderr).toBe(0);
    expect(summary.stdout).toMatch(/^UID +USER +PROCS +PINNED/m);
    expect(summary.stdout).toMatch(/^0 +root +\d+ /m);
    expect(summary.stdout).toContain('pinned (sum of VmPin)');
    expect(summary.stdout).not.toMatch(/^PID /m);
    expect(summary.stdout).not.toMatch(new RegExp(`^${holder.child.pid} `, 'm'));
    const sumBefore = sumOfVmPinKb() * 1024;
    const bare = await rdmactl('stat', '--summary', '-rn', '-b');
    const sumAfter = sumOfVmPinKb() * 1024;
    const values = bare.stdout.trim().split(' ');
    expect(bare.stdout.trim().split('\n')).toHaveLength(1);
    expect(values).toHaveLength(7);
    expect(Number(values[4])).toBe(Number(/^MemTotal:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'))![1]) * 1024);
    if (sumAfter === sumBefore) expect(Number(values[0])).toBe(sumAfter);
    else console.warn('stat --summary pinned total not compared: another process changed its pins during the scan');
    expect(Number(values[0])).toBeGreaterThanOrEqual(8 * MiB);
    expect((await rdmactl('stat', '--summary', '--by', 'user')).code).toBe(2);
  });

  it('stat --by user -rn -b prints the user rows as the records (they were dropped as totals before)', async () => {
    const result = await rdmactl('stat', '--by', 'user', '-rn', '-b');
    expect(result.code, result.stderr).toBe(0);
    const root = result.stdout.split('\n').find((line) => line.startsWith('0 root '));
    expect(root, result.stdout).toBeDefined();
    // uid user procs pinned locked io_uring: root's io_uring bytes hold the holder's 8 MiB.
    expect(Number(root!.split(' ')[5])).toBeGreaterThanOrEqual(8 * MiB);
    expect(result.stdout).not.toContain('pinned');
  });

  it('a pid that names no process: exit 1, one line on stderr naming it, nothing on stdout (stat, ls --pid, --json too)', async () => {
    const gone = pidThatDoesNotExist();
    for (const args of [['stat', String(gone)], ['stat', '--pid', String(gone), '--json'], ['ls', '--pid', String(gone)], ['ls', '--pid', String(gone), '--json']]) {
      const result = await rdmactl(...args);
      expect(result.code, args.join(' ')).toBe(1);
      expect(result.stdout, args.join(' ')).toBe('');
      expect(result.stderr, args.join(' ')).toBe(`rdmactl: no such process: ${gone}\n`);
    }
  });

  it('some pids exist, some not: those that exist are printed, the missing are named on stderr, exit 1 (as ps -p)', async () => {
    const gone = pidThatDoesNotExist();
    const stat = await rdmactl('stat', String(holder.child.pid), String(gone), '--json');
    expect(stat.code).toBe(1);
    expect((JSON.parse(stat.stdout) as { processes: Json[] }).processes.map((p) => p['pid'])).toEqual([holder.child.pid]);
    expect(stat.stderr).toBe(`rdmactl: no such process: ${gone}\n`);
    const text = await rdmactl('stat', '--pid', `${gone},${holder.child.pid}`);
    expect(text.code).toBe(1);
    expect(text.stdout).toMatch(new RegExp(`^${holder.child.pid} +root +node +8M `, 'm'));
    expect(text.stderr).toContain(`no such process: ${gone}`);
    const ls = await rdmactl('ls', '--pid', `${holder.child.pid},${gone}`, '--json');
    expect(ls.code).toBe(1);
    expect((JSON.parse(ls.stdout) as { registrations: Json[] }).registrations.filter((r) => r['source'] === 'io_uring')).toHaveLength(2);
    expect(ls.stderr).toBe(`rdmactl: no such process: ${gone}\n`);
  });

  it('stat --pid LIST and -p as in ls; with PID arguments the two merge, each process once', async () => {
    const only = await rdmactl('stat', '--pid', String(holder.child.pid), '--json');
    expect(only.code, only.stderr).toBe(0);
    expect((JSON.parse(only.stdout) as { processes: Json[] }).processes.map((p) => p['pid'])).toEqual([holder.child.pid]);
    const merged = await rdmactl('stat', String(process.pid), '-p', `${holder.child.pid},${process.pid}`, '--json');
    expect(merged.code, merged.stderr).toBe(0);
    const pids = (JSON.parse(merged.stdout) as { processes: Json[] }).processes.map((p) => p['pid'] as number);
    expect([...pids].sort((a, b) => a - b)).toEqual([holder.child.pid!, process.pid].sort((a, b) => a - b));
    const bad = await rdmactl('stat', '--pid', 'abc');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^rdmactl: invalid --pid 'abc'/);
  });

  it('stat --sort by any column key or label, -KEY descending, several keys; sizes by value', async () => {
    const pinned = (await rdmactl('stat', '--sort=-pinned', '-rn', '-b', '-o', 'pid,pinnedBytes')).stdout;
    const down = column(pinned, 1).map(Number);
    expect(down).toEqual([...down].sort((a, b) => b - a));
    expect(pinned.split('\n')).toContain(`${holder.child.pid} ${statusKb(holder.child.pid!, 'VmPin') * 1024}`);
    const up = column((await rdmactl('stat', '--sort', 'pinnedBytes', '-rn', '-b', '-o', 'pinnedBytes')).stdout, 0).map(Number);
    expect(up).toEqual([...up].sort((a, b) => a - b));
    const reversed = column((await rdmactl('stat', '--sort', 'PINNED', '--reverse', '-rn', '-b', '-o', 'pinnedBytes')).stdout, 0).map(Number);
    expect(reversed).toEqual([...reversed].sort((a, b) => b - a));
    // user ascending, then most pinned first within each user
    const rows = (await rdmactl('stat', '-a', '--sort', 'user,-pinned', '-rn', '-b', '-o', 'user,pinnedBytes')).stdout.trim().split('\n').map((l) => l.split(' '));
    for (let i = 1; i < rows.length; i++) {
      const [user, bytes] = rows[i]!;
      const [previousUser, previousBytes] = rows[i - 1]!;
      expect(previousUser! <= user!, `${previousUser} before ${user}`).toBe(true);
      if (previousUser === user) expect(Number(previousBytes)).toBeGreaterThanOrEqual(Number(bytes));
    }
    // headroom: least first, unlimited (null) last
    const headroom = (JSON.parse((await rdmactl('stat', '-a', '--sort', 'headroom', '-o', 'headroomBytes', '--json')).stdout) as { processes: Json[] }).processes.map((p) => p['headroomBytes'] as number | null);
    const limited = headroom.filter((h) => h !== null);
    expect(headroom).toEqual([...limited.sort((a, b) => a! - b!), ...headroom.filter((h) => h === null)]);
    const unknown = await rdmactl('stat', '--sort', 'pid,size');
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/^rdmactl: unknown key 'size' for --sort: valid keys are pid, user, .*pinnedBytes/);
    expect(unknown.stderr.trim().split('\n')).toHaveLength(1);
  });

  it.skipIf(!cc)('ls --sort: largest registrations first across processes; an unknown key is a usage error', async () => {
    const result = await rdmactl('ls', '--pid', `${holder.child.pid},${pinner!.pid}`, '--source', 'io_uring,mlock', '--sort=-length', '-rn', '-b', '-o', 'pid,source,length');
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout.trim().split('\n')).toEqual([
      `${holder.child.pid} io_uring ${4 * MiB}`,
      `${holder.child.pid} io_uring ${4 * MiB}`,
      `${pinner!.pid} io_uring ${2 * MiB}`,
      `${pinner!.pid} mlock ${MiB}`,
    ]);
    const byAddress = await rdmactl('ls', '--pid', String(pinner!.pid), '--source', 'io_uring,mlock', '--sort', 'RANGE', '--reverse', '-rn', '-o', 'addr');
    const expected = [pinner!.pinnedAddress, pinner!.lockedAddress].sort((a, b) => (a < b ? 1 : a > b ? -1 : 0)).map((a) => `0x${a.toString(16)}`);
    expect(byAddress.stdout.trim().split('\n')).toEqual(expected);
    const unknown = await rdmactl('ls', '--sort', 'bytes');
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/^rdmactl: unknown key 'bytes' for --sort: valid keys are source, pid, comm, addr/);
  });

  it('ls --json: one row per io_uring buffer, overlap and the bytes counted twice, fork protection', async () => {
    const result = await rdmactl('ls', '--json', '--pid', String(holder.child.pid));
    expect(result.code).toBe(0);
    const { registrations } = JSON.parse(result.stdout) as { registrations: Json[] };
    const uring = registrations.filter((r) => r['source'] === 'io_uring');
    expect(uring).toHaveLength(2);
    for (const row of uring) {
      expect(row).toMatchObject({ pid: holder.child.pid, addr: holderRecord['addr'], length: 4 * MiB, overlap: true, forkProtection: 'dontfork' });
    }
    expect(uring.map((r) => r['doubleCountedBytes']).sort()).toEqual([0, 4 * MiB]);
  });

  it.skipIf(!cc)('ls sees a non-rdmactl process: its io_uring buffer and its locked VMA at the addresses it reported', async () => {
    const result = await rdmactl('ls', '--json', '--pid', String(pinner!.pid));
    const { registrations } = JSON.parse(result.stdout) as { registrations: Json[] };
    expect(registrations.find((r) => r['source'] === 'io_uring')).toMatchObject({ addr: `0x${pinner!.pinnedAddress.toString(16)}`, length: 2 * MiB, overlap: false, doubleCountedBytes: 0 });
    expect(registrations.find((r) => r['source'] === 'mlock')).toMatchObject({ addr: `0x${pinner!.lockedAddress.toString(16)}`, length: MiB, pages: 256 });
  });

  it('ls --ndjson prints one registration per line; --source filters', async () => {
    const result = await rdmactl('ls', '--ndjson', '--source', 'io_uring');
    const lines = result.stdout.trim().split('\n').map((l) => JSON.parse(l) as Json);
    expect(lines.length).toBeGreaterThanOrEqual(2);
    expect(new Set(lines.map((l) => l['source']))).toEqual(new Set(['io_uring']));
  });

  it.each([
    [['ls', '--source', 'dma'], /invalid --source 'dma'/],
    [['ls', '--json', '--ndjson'], /choose one of --json and --ndjson/],
    [['ls', '--pid', 'abc'], /invalid --pid 'abc'/],
  ])('%j → exit 2', async (args, message) => {
    const result = await rdmactl(...args);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(message);
  });

  const unprivileged = unprivilegedUnavailable();
  it.skipIf(unprivileged !== null || !cc)(`an unprivileged view is partial, says how much, and does not fail ${unprivileged ? `(SKIPPED: ${unprivileged})` : ''}`, () => {
    const stat = runSync([...UNPRIVILEGED, process.execPath, BIN, 'stat', '--json']);
    expect(stat.status, stat.stderr).toBe(0);
    const report = JSON.parse(stat.stdout) as { processes: Json[]; unreadableProcesses: number };
    expect(report.unreadableProcesses).toBeGreaterThan(0);
    // status is world-readable: the numbers are still there, the flags say what is missing.
    const row = report.processes.find((p) => p['pid'] === pinner!.pid)!;
    expect(row['lockedBytes']).toBe(MiB);
    expect(row['flags']).toContain('unreadable');
    const text = runSync([...UNPRIVILEGED, process.execPath, BIN, 'ls']);
    expect(text.status).toBe(0);
    expect(text.stderr).toMatch(/\d+ process(es)? only partly readable; run as root for all\./);
  });
});
