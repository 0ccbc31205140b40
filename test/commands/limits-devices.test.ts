// `limits` against /proc/PID/limits read by the test, --set through prlimit on a real child, and the
// answers a machine without RDMA gives (`devices`, `reg --backend verbs`).
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rdmactl } from '../helpers/run.js';
import { BIN, UNPRIVILEGED, builtOrThrow, exited, runSync, unprivilegedUnavailable } from '../helpers/spawn.js';

type Json = Record<string, unknown>;

function hasCapability(bit: number): boolean {
  const mask = BigInt(`0x${/^CapEff:\s+([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))![1]}`);
  return ((mask >> BigInt(bit)) & 1n) === 1n;
}

function memlockFromProc(pid: number): { soft: number | null; hard: number | null } {
  const match = /^Max locked memory\s+(\S+)\s+(\S+)/m.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'))!;
  const value = (v: string): number | null => (v === 'unlimited' ? null : Number(v));
  return { soft: value(match[1]!), hard: value(match[2]!) };
}

describe('rdmactl limits', () => {
  let child: ChildProcess;
  beforeAll(() => {
    builtOrThrow();
    child = spawn('sleep', ['600'], { stdio: 'ignore' });
  });
  afterAll(async () => {
    child.kill('SIGKILL');
    await exited(child as Parameters<typeof exited>[0]);
  });

  it('reports a pid\'s RLIMIT_MEMLOCK, VmLck and VmPin as /proc says', async () => {
    const result = await rdmactl('limits', String(child.pid), '--json');
    expect(result.code).toBe(0);
    const record = JSON.parse(result.stdout) as Json;
    const limit = memlockFromProc(child.pid!);
    expect(record).toMatchObject({ pid: child.pid, comm: 'sleep', memlockSoftBytes: limit.soft, memlockHardBytes: limit.hard, lockedBytes: 0, pinnedBytes: 0 });
    expect(record['lockHeadroomBytes']).toBe(limit.soft);
  });

  it('--set SOFT lowers the child\'s soft limit through prlimit; previous shows the old one', async () => {
    const before = memlockFromProc(child.pid!);
    const result = await rdmactl('limits', String(child.pid), '--set', '4M', '--json');
    expect(result.code, result.stderr).toBe(0);
    expect(memlockFromProc(child.pid!)).toEqual({ soft: 4 * 1024 * 1024, hard: before.hard });
    const record = JSON.parse(result.stdout) as Json & { previous: Json };
    expect(record['memlockSoftBytes']).toBe(4 * 1024 * 1024);
    expect(record.previous['memlockSoftBytes']).toBe(before.soft);
  });

  it('--set SOFT:HARD lowers the hard limit; raising it again needs CAP_SYS_RESOURCE (exit 4 without it)', async () => {
    expect((await rdmactl('limits', String(child.pid), '--set', '2M:6M')).code).toBe(0);
    expect(memlockFromProc(child.pid!)).toEqual({ soft: 2 * 1024 * 1024, hard: 6 * 1024 * 1024 });
    const raise = await rdmactl('limits', String(child.pid), '--set', 'unlimited:unlimited');
    if (hasCapability(24)) {
      expect(raise.code).toBe(0);
      expect(memlockFromProc(child.pid!)).toEqual({ soft: null, hard: null });
    } else {
      expect(raise.code).toBe(4);
      expect(raise.stderr).toMatch(/^rdmactl: cannot set RLIMIT_MEMLOCK of pid \d+: not permitted\n  raising a hard limit needs CAP_SYS_RESOURCE/);
      expect(memlockFromProc(child.pid!)).toEqual({ soft: 2 * 1024 * 1024, hard: 6 * 1024 * 1024 });
    }
  });

  it('a pid that does not exist is a one-line runtime error', async () => {
    const result = await rdmactl('limits', '4194304');
    expect(result.code).toBe(1);
    expect(result.stderr).toBe('rdmactl: no process with pid 4194304\n');
  });

  const unprivileged = unprivilegedUnavailable();
  it.skipIf(unprivileged !== null)(`raising the hard limit without privileges is "permission denied", exit 4 ${unprivileged ? `(SKIPPED: ${unprivileged})` : ''}`, () => {
    const result = runSync([...UNPRIVILEGED, process.execPath, BIN, 'limits', '--set', '1G:unlimited']);
    expect(result.status).toBe(4);
    expect(result.stderr).toMatch(/^rdmactl: cannot set RLIMIT_MEMLOCK of pid \d+: not permitted\n/);
  });
});

describe('without an RDMA device', () => {
  it('devices says none were found and points to Soft-RoCE, exit 0', async () => {
    const result = await rdmactl('devices');
    if (result.stdout.includes('device ') && !result.stdout.startsWith('No RDMA devices')) {
      console.warn('SKIPPED: this machine has an RDMA device; the lab suite covers devices');
      return;
    }
    expect(result.code).toBe(0);
    // Words for people: on stdout only on a terminal; in a pipe stdout carries records alone.
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/^rdmactl: No RDMA devices found\.\nrdmactl: Soft-RoCE .*rdma link add rxe0 type rxe netdev eth0/);
    const json = JSON.parse((await rdmactl('devices', '--json')).stdout) as Json;
    expect(json['devices']).toEqual([]);
    expect(typeof json['copyOnFork']).toBe('boolean');
  });

  it('reg --backend verbs is "not supported here" (exit 3) with the Soft-RoCE hint, and nothing stays pinned', async () => {
    const result = await rdmactl('reg', '1M', '--backend', 'verbs', '--for', '1ms');
    if (result.code === 0) {
      console.warn('SKIPPED: this machine has an RDMA device; the lab suite covers verbs');
      return;
    }
    expect(result.code).toBe(3);
    expect(result.stderr).toMatch(/^rdmactl: no RDMA device/);
    expect(result.stderr).toContain('rdma link add');
    expect(/^VmPin:\s+0 kB$/m.test(readFileSync('/proc/self/status', 'utf8'))).toBe(true);
  });
});

describe('io_uring disabled by sysctl', () => {
  const path = '/proc/sys/kernel/io_uring_disabled';
  let original: string | null = null;
  try {
    original = readFileSync(path, 'utf8').trim();
    writeFileSync(path, original); // writable? (root, not a read-only /proc/sys)
  } catch {
    original = null;
  }

  it.skipIf(original === null)(`reg --backend uring explains the sysctl, exit 4 ${original === null ? `(SKIPPED: ${path} is not writable here)` : ''}`, async () => {
    try {
      writeFileSync(path, '2');
      const result = await rdmactl('reg', '64K', '--backend', 'uring', '--for', '1ms');
      expect(result.code).toBe(4);
      expect(result.stderr).toMatch(/^rdmactl: cannot register 64 KiB with uring \(io_uring_setup: EPERM\): io_uring is disabled or not permitted/);
      expect(result.stderr).toContain('kernel.io_uring_disabled');
    } finally {
      writeFileSync(path, original!);
    }
  });
});
