// The exposition against the kernel: a held io_uring registration and an mlock, read back through the
// exporter's metrics and compared with /proc read by the test itself.
import { readdirSync, readFileSync } from 'node:fs';
import { release } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Scraper } from '../../src/exporter/scrape.js';
import { builtOrThrow } from '../helpers/spawn.js';
import { statusKb } from '../helpers/proc.js';
import { becomeSubreaper, killAndReap, rdmactlBin, tempRuntime } from '../held/helpers.js';
import { find, one, parseExposition, promtool, type Sample } from './helpers.js';

const MiB = 1024 * 1024;

function pinCounters(): string {
  const text = readFileSync('/proc/vmstat', 'utf8');
  return `${/^nr_foll_pin_acquired (\d+)$/m.exec(text)?.[1]}/${/^nr_foll_pin_released (\d+)$/m.exec(text)?.[1]}`;
}

function pageBytes(): number {
  // Independent of rdmactl's auxv reading: the kernel's KernelPageSize of our first mapping.
  return Number(/^KernelPageSize:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/smaps', 'utf8'))![1]) * 1024;
}

/** RLIMIT_MEMLOCK soft limit of pid from /proc/PID/limits (null = unlimited). */
function memlockSoft(pid: number): number | null {
  const line = readFileSync(`/proc/${pid}/limits`, 'utf8').split('\n').find((l) => l.startsWith('Max locked memory'))!;
  const soft = line.slice('Max locked memory'.length).trim().split(/\s+/)[0]!;
  return soft === 'unlimited' ? null : Number(soft);
}

describe('exporter metrics', () => {
  const runtime = tempRuntime();
  const holders: number[] = [];
  let uringPid = 0;
  let mlockPid = 0;

  function detach(size: string, backend: string): number {
    const result = rdmactlBin(['reg', size, '--backend', backend, '--detach', '--json'], runtime.env);
    expect(result.status, result.stderr).toBe(0);
    const pid = (JSON.parse(result.stdout) as { pid: number }).pid;
    holders.push(pid);
    return pid;
  }

  beforeAll(() => {
    builtOrThrow();
    becomeSubreaper();
    uringPid = detach('2M', 'uring');
    mlockPid = detach('3M', 'mlock');
  });
  afterAll(async () => {
    await killAndReap(holders);
    runtime.cleanup();
  });

  async function scrape(maxProcesses = 100): Promise<Sample[]> {
    return parseExposition((await new Scraper({ version: 'test', maxProcesses }).collectNow()).text);
  }

  it('per-process series equal VmPin, VmLck and RLIMIT_MEMLOCK read from /proc', async () => {
    const samples = await scrape();
    const uring = { pid: String(uringPid) };
    expect(one(samples, 'rdmactl_process_pinned_bytes', uring)).toBe(statusKb(uringPid, 'VmPin') * 1024);
    expect(statusKb(uringPid, 'VmPin') * 1024).toBe(2 * MiB);
    expect(one(samples, 'rdmactl_process_io_uring_bytes', uring)).toBe(2 * MiB);
    expect(find(samples, 'rdmactl_process_pinned_bytes', uring)[0]!.labels).toMatchObject({ comm: expect.any(String), user: 'root' });
    const mlock = { pid: String(mlockPid) };
    expect(one(samples, 'rdmactl_process_locked_bytes', mlock)).toBe(statusKb(mlockPid, 'VmLck') * 1024);
    expect(statusKb(mlockPid, 'VmLck') * 1024).toBe(3 * MiB);
    expect(one(samples, 'rdmactl_process_pinned_bytes', mlock)).toBe(0);
    const limit = memlockSoft(mlockPid);
    expect(one(samples, 'rdmactl_process_memlock_limit_bytes', mlock)).toBe(limit ?? Infinity);
    expect(one(samples, 'rdmactl_process_memlock_headroom_bytes', mlock)).toBe(limit === null ? Infinity : limit - 3 * MiB);
    expect(one(samples, 'rdmactl_process_double_counted_bytes', uring)).toBe(0);
  });

  it('registrations by source include the held io_uring buffer and the locked range', async () => {
    const samples = await scrape();
    expect(one(samples, 'rdmactl_registrations', { source: 'io_uring' })).toBeGreaterThanOrEqual(1);
    expect(one(samples, 'rdmactl_registration_bytes', { source: 'io_uring' })).toBeGreaterThanOrEqual(2 * MiB);
    expect(one(samples, 'rdmactl_registration_bytes', { source: 'mlock' })).toBeGreaterThanOrEqual(3 * MiB);
    expect(one(samples, 'rdmactl_registration_source_available', { source: 'io_uring' })).toBe(1);
    expect(one(samples, 'rdmactl_user_io_uring_bytes', { user: 'root', uid: '0' })).toBeGreaterThanOrEqual(2 * MiB);
  });

  it('system totals: outstanding kernel pins from /proc/vmstat and the VmPin sum, while no pin moves', async () => {
    // Other work on the machine pins and unpins; compare only when the counters stood still around the scrape.
    for (let attempt = 0; attempt < 20; attempt++) {
      // /proc/vmstat folds each CPU's pin deltas only every second: acquired on one CPU and released on
      // another can read below what is held. Reading stat_refresh (root) folds them now.
      readFileSync('/proc/sys/vm/stat_refresh');
      const before = pinCounters();
      const vmPinSum = sumStatus('VmPin');
      const samples = await scrape();
      if (pinCounters() !== before || sumStatus('VmPin') !== vmPinSum) continue;
      const [acquired, released] = before.split('/').map(Number) as [number, number];
      expect(one(samples, 'rdmactl_kernel_pinned_bytes')).toBe((acquired - released) * pageBytes());
      expect(one(samples, 'rdmactl_pinned_bytes')).toBe(vmPinSum);
      expect(one(samples, 'rdmactl_kernel_pinned_bytes')).toBeGreaterThanOrEqual(2 * MiB);
      return;
    }
    throw new Error('the pin counters moved during every one of 20 scrapes');
  });

  it('copy_on_fork says what the kernel does (pinned pages copied at fork since 5.9)', async () => {
    const [major, minor] = release().split('.').map(Number) as [number, number];
    expect(one(await scrape(), 'rdmactl_copy_on_fork')).toBe(major > 5 || (major === 5 && minor >= 9) ? 1 : 0);
  });

  it('--max-processes bounds per-process series; the rest are summed into pid="other"', async () => {
    const samples = await scrape(1);
    const series = find(samples, 'rdmactl_process_locked_bytes');
    const holding = one(samples, 'rdmactl_processes_holding');
    expect(holding).toBeGreaterThanOrEqual(2);
    expect(series).toHaveLength(2);
    expect(one(samples, 'rdmactl_processes_folded')).toBe(holding - 1);
    const shown = series.find((s) => s.labels['pid'] !== 'other')!;
    const other = series.find((s) => s.labels['pid'] === 'other')!;
    expect(other.labels).toEqual({ pid: 'other', comm: 'other', user: 'other', unit: 'other', container: 'other', pod: 'other' });
    expect(shown.value + other.value).toBe(one(samples, 'rdmactl_locked_bytes'));
    expect(one(samples, 'rdmactl_process_pinned_bytes', { pid: 'other' }) + one(samples, 'rdmactl_process_pinned_bytes', { pid: shown.labels['pid']! }))
      .toBe(one(samples, 'rdmactl_pinned_bytes'));
  });

  it('build info, scan bookkeeping and promtool accepts the exposition', async () => {
    const text = (await new Scraper({ version: 'test', maxProcesses: 10 }).collectNow()).text;
    const samples = parseExposition(text);
    expect(one(samples, 'rdmactl_build_info', { version: 'test', nodejs_version: process.versions.node })).toBe(1);
    expect(one(samples, 'rdmactl_scrape_full_scan')).toBe(1);
    expect(one(samples, 'rdmactl_scrape_duration_seconds')).toBeGreaterThan(0);
    expect(one(samples, 'rdmactl_processes_scanned')).toBeGreaterThan(1);
    const check = promtool(['check', 'metrics'], text);
    expect(check.status, check.output).toBe(0);
  });

  it('a released registration leaves no series behind', async () => {
    const pid = detach('1M', 'uring');
    expect(find(await scrape(), 'rdmactl_process_pinned_bytes', { pid: String(pid) })).toHaveLength(1);
    process.kill(pid, 'SIGTERM');
    await killAndReap([pid]);
    expect(find(await scrape(), 'rdmactl_process_pinned_bytes', { pid: String(pid) })).toHaveLength(0);
  });
});

function sumStatus(field: 'VmPin' | 'VmLck'): number {
  let total = 0;
  for (const name of readdirNumeric()) {
    try {
      const match = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(readFileSync(`/proc/${name}/status`, 'utf8'));
      if (match) total += Number(match[1]) * 1024;
    } catch { /* exited */ }
  }
  return total;
}

function readdirNumeric(): string[] {
  return readdirSync('/proc').filter((n) => /^\d+$/.test(n));
}
