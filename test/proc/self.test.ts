// Readers against this test process itself: no helper binary needed.

import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { ProcUnreadableError, procTry, readProcText } from '../../src/proc/procfs.js';
import { readStatus } from '../../src/proc/status.js';
import { readStat } from '../../src/proc/stat.js';
import { readProcessLimits } from '../../src/proc/limits.js';
import { readSmaps } from '../../src/proc/smaps.js';
import { readVmaCount } from '../../src/proc/vm.js';
import { pageSize, readPagemap } from '../../src/proc/pagemap.js';
import { userName } from '../../src/proc/accounts.js';
import { scanProcesses } from '../../src/proc/scan.js';
import { readUringInstances } from '../../src/proc/uringFdinfo.js';

describe("readers on 'self'", () => {
  it('status and stat agree with process.*', () => {
    const status = readStatus('self')!;
    expect(status.pid).toBe(process.pid);
    expect(status.ppid).toBe(process.ppid);
    expect(status.uid).toBe(process.getuid!());
    expect(status.hasMm).toBe(true);
    expect(status.rssBytes).toBeGreaterThan(0);
    expect(readStat('self')!.pid).toBe(process.pid);
  });

  it('limits, smaps, VMA count, io_uring list and pagemap', () => {
    expect(readProcessLimits('self')!.lockedMemory).not.toBeNull();
    const vmas = readSmaps('self')!;
    expect(vmas.length).toBeGreaterThan(10);
    expect(vmas.some((v) => v.pathname === '[stack]')).toBe(true);
    expect(readVmaCount('self')).toBeGreaterThan(10);
    expect(readUringInstances('self')).toEqual([]);
    expect([4096, 16384, 65536]).toContain(pageSize());
    // The one page size rdmactl uses (AT_PAGESZ from auxv) is what libc's sysconf reports (getconf asks it).
    expect(pageSize()).toBe(Number(execFileSync('getconf', ['PAGESIZE'], { encoding: 'utf8' }).trim()));
    const stack = vmas.find((v) => v.pathname === '[stack]')!;
    const range = readPagemap('self', stack.end - BigInt(pageSize()), 1)!;
    expect(range.entries[0]!.present).toBe(true);
  });

  it('a pid that never existed reads as null', () => {
    expect(readStatus(2 ** 30)).toBeNull();
    expect(readProcText('/proc/1073741824/status')).toBeNull();
  });

  it('refusals become ProcUnreadableError, other errors pass through', () => {
    const eacces = Object.assign(new Error('EACCES'), { code: 'EACCES' });
    expect(() => procTry('/proc/1/smaps', () => { throw eacces; })).toThrow(ProcUnreadableError);
    const eio = Object.assign(new Error('EIO'), { code: 'EIO' });
    expect(() => procTry('/proc/1/smaps', () => { throw eio; })).toThrow('EIO');
  });

  it('uid names: known and unknown', () => {
    expect(userName(0)).toBe('root');
    expect(userName(987654)).toBe('987654');
  });

  it('scan finds this process, skips kernel threads by default, honours onlyHolding', () => {
    const scan = scanProcesses();
    expect(scan.processes.some((p) => p.pid === process.pid)).toBe(true);
    expect(scan.processes.every((p) => !p.isKernelThread)).toBe(true);
    expect(scan.scannedAt).toBeLessThanOrEqual(Date.now());
    const holding = scanProcesses({ onlyHolding: true });
    expect(holding.processes.every((p) => p.lockedBytes > 0 || p.pinnedBytes > 0)).toBe(true);
    // Kernel threads are visible unless we are in a pid namespace (container); kthreadd is pid 2.
    if (readStatus(2)?.isKernelThread) {
      const withKernel = scanProcesses({ includeKernelThreads: true });
      expect(withKernel.processes.some((p) => p.isKernelThread)).toBe(true);
    }
    const mine = scanProcesses({ pids: [process.pid] });
    expect(mine.processes).toHaveLength(1);
    expect(mine.processes[0]!.detail!.vmas!.length).toBeGreaterThan(10);
  });
});
