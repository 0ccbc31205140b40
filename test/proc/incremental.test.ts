// The change-gated scanner `top` uses: it may skip idle processes only while the kernel's pin
// counters stand still, so a pin between two scans shows in the next one — in a process it knew as
// idle and in one it has never seen; a new mlock shows by the next full scan.
import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { fullScanReason, IncrementalScanner, type ChangeCounters } from '../../src/proc/incremental.js';
import { scanProcesses } from '../../src/proc/scan.js';
import { register } from '../../src/engine/register.js';
import { MADV_DONTFORK, madvise } from '../../src/ffi/libc.js';
import { isDontFork } from '../../src/proc/smaps.js';
import { ROOT, builtOrThrow, exited, startRdmactl } from '../helpers/spawn.js';

const MiB = 1024 * 1024;
const hasPinCounters = /^nr_foll_pin_acquired /m.test(readFileSync('/proc/vmstat', 'utf8'));
if (!hasPinCounters) console.warn('SKIPPING the partial-scan checks: this kernel has no nr_foll_pin_* in /proc/vmstat (< 5.7); top scans everything');

describe('fullScanReason', () => {
  const at = (acquired: number, released: number, mlockedBytes: number | null = null): ChangeCounters => ({ pins: { acquired, released }, mlockedBytes });

  it('scans everything first, without pin counters, when a counter moved, and after the interval', () => {
    expect(fullScanReason(null, at(1, 1), 0, 10_000)).toBe('first');
    expect(fullScanReason(at(1, 1), { pins: null, mlockedBytes: null }, 0, 10_000)).toBe('no-pin-counters');
    expect(fullScanReason(at(1, 1), at(2, 1), 0, 10_000)).toBe('pins-changed');
    expect(fullScanReason(at(1, 1), at(1, 2), 0, 10_000)).toBe('pins-changed');
    expect(fullScanReason(at(1, 1), at(1, 1), 10_000, 10_000)).toBe('interval');
  });

  it('reads only known holders and new processes when nothing moved', () => {
    expect(fullScanReason(at(5, 3), at(5, 3), 9_999, 10_000)).toBeNull();
  });

  it('with the quiet rule: the periodic full scan only when Mlocked moved since the last one, and at least every quiet interval', () => {
    const quiet = { mlockedAtFull: 4096, everyMs: 300_000 };
    expect(fullScanReason(at(5, 3, 4096), at(5, 3, 4096), 60_000, 60_000, quiet)).toBeNull();
    expect(fullScanReason(at(5, 3, 4096), at(5, 3, 8192), 60_000, 60_000, quiet)).toBe('locked-changed');
    // Moved and came back between refreshes: what counts is the value at the last full scan.
    expect(fullScanReason(at(5, 3, 8192), at(5, 3, 4096), 60_000, 60_000, quiet)).toBeNull();
    expect(fullScanReason(at(5, 3, 8192), at(5, 3, 8192), 59_999, 60_000, quiet)).toBeNull();
    expect(fullScanReason(at(5, 3, null), at(5, 3, null), 60_000, 60_000, quiet)).toBe('locked-changed');
    expect(fullScanReason(at(5, 3, 4096), at(5, 3, 4096), 300_000, 60_000, quiet)).toBe('interval');
    // Pins moving still read everything at once.
    expect(fullScanReason(at(5, 3, 4096), at(6, 3, 4096), 0, 60_000, quiet)).toBe('pins-changed');
  });
});

describe('IncrementalScanner on the real kernel', () => {
  let holder: Awaited<ReturnType<typeof startRdmactl>> | null = null;
  afterAll(async () => {
    if (holder && holder.child.exitCode === null) {
      holder.child.kill('SIGKILL');
      await exited(holder.child);
    }
  });

  const rowOf = (scan: ReturnType<IncrementalScanner['scan']>, pid: number) => scan.processes.find((p) => p.pid === pid);

  it('an idle process that starts pinning is seen at the next scan (the pin moves the counters), and its release too', async () => {
    const scanner = new IncrementalScanner({ fullScanEveryMs: 3_600_000 });
    const first = scanner.scan();
    expect(first.fullScanReason).toBe('first');
    expect(first.statusReads).toBe(first.scannedProcesses);
    expect(rowOf(first, process.pid)).toBeUndefined(); // this test process holds nothing yet
    {
      using pinned = await register({ length: 8 * MiB, backend: 'uring' });
      const scan = scanner.scan();
      expect(rowOf(scan, process.pid)?.pinnedBytes).toBe(8 * MiB);
      if (hasPinCounters) expect(scan.fullScanReason).toBe('pins-changed');
      void pinned;
    }
    expect(rowOf(scanner.scan(), process.pid)).toBeUndefined();
  });

  it('an idle process that starts mlocking is seen by the next full scan, then read at every scan until it unlocks', async () => {
    const fullScanEveryMs = 300;
    const scanner = new IncrementalScanner({ fullScanEveryMs });
    scanner.scan();
    using locked = await register({ length: 8 * MiB, backend: 'mlock' });
    await new Promise((resolve) => setTimeout(resolve, fullScanEveryMs));
    const full = scanner.scan();
    expect(full.fullScanReason).not.toBeNull();
    expect(rowOf(full, process.pid)?.lockedBytes).toBe(8 * MiB);
    // A known holder: read whatever the counters say, so its unlock shows at once.
    expect(rowOf(scanner.scan(), process.pid)?.lockedBytes).toBe(8 * MiB);
    locked.close();
    expect(rowOf(scanner.scan(), process.pid)).toBeUndefined();
  });

  it('with the quiet rule, a new mlock moves Mlocked, so the next periodic full scan is made and sees it', async () => {
    const fullScanEveryMs = 300;
    const scanner = new IncrementalScanner({ fullScanEveryMs, quietFullScanEveryMs: 3_600_000 });
    scanner.scan();
    using locked = await register({ length: 8 * MiB, backend: 'mlock' });
    await new Promise((resolve) => setTimeout(resolve, fullScanEveryMs));
    const full = scanner.scan();
    // Mlocked moved by our 8 MiB (other tests may have pinned meanwhile: then pins-changed).
    expect(['locked-changed', 'pins-changed']).toContain(full.fullScanReason);
    expect(rowOf(full, process.pid)?.lockedBytes).toBe(8 * MiB);
    locked.close();
  });

  it('a process it has never seen is read even when no counter moved (MLOCK_ONFAULT locks no page)', async () => {
    builtOrThrow();
    const scanner = new IncrementalScanner({ fullScanEveryMs: 3_600_000 });
    scanner.scan();
    holder = await startRdmactl(['reg', '8M', '--backend', 'mlock', '--on-fault', '--json']);
    const pid = holder.child.pid!;
    const scan = scanner.scan();
    expect(rowOf(scan, pid)?.lockedBytes).toBe(8 * MiB);
    // And it agrees with a plain full scan.
    expect(scanProcesses({ onlyHolding: true }).processes.find((p) => p.pid === pid)?.lockedBytes).toBe(8 * MiB);
    holder.child.kill('SIGTERM');
    await exited(holder.child);
    expect(rowOf(scanner.scan(), pid)).toBeUndefined();
  });

  it.skipIf(!hasPinCounters)('a holder\'s smaps is reused while its status is unchanged, and read afresh at the next full scan', async () => {
    const fullScanEveryMs = 400;
    const scanner = new IncrementalScanner({ fullScanEveryMs });
    using pinned = await register({ length: 8 * MiB, backend: 'uring' });
    const buffer = pinned.buffers[0]!;
    const start = buffer.addr;
    const dontforkAt = (scan: ReturnType<IncrementalScanner['scan']>): boolean | undefined =>
      rowOf(scan, process.pid)?.detail?.vmas?.some((vma) => vma.start <= start && start < vma.end && isDontFork(vma));
    const first = scanner.scan();
    expect(dontforkAt(first)).toBe(false);
    madvise(buffer.addr, buffer.length, MADV_DONTFORK);
    // Between full scans (no pin moved anywhere), the smaps read before the madvise is used again.
    let partial: ReturnType<IncrementalScanner['scan']> | null = null;
    for (let attempt = 0; attempt < 20 && !partial; attempt++) {
      const scan = scanner.scan();
      if (scan.fullScanReason === null) partial = scan;
      else await new Promise((resolve) => setTimeout(resolve, 10));
    }
    if (partial) {
      expect(rowOf(partial, process.pid)?.detail?.vmas).toBe(rowOf(first, process.pid)?.detail?.vmas);
      expect(dontforkAt(partial)).toBe(false);
    } else {
      console.warn('reuse of smaps not checked: pin counters moved on every try (other tests pinning)');
    }
    await new Promise((resolve) => setTimeout(resolve, fullScanEveryMs));
    const full = scanner.scan();
    expect(full.fullScanReason).not.toBeNull();
    expect(dontforkAt(full)).toBe(true);
  });

  /** A full scan (the interval is 0: every scan is one) and this process's row in it. */
  const fullScanRow = (scanner: IncrementalScanner) => {
    const scan = scanner.scan();
    expect(scan.fullScanReason).not.toBeNull();
    return rowOf(scan, process.pid)!;
  };

  it('at a full scan, a holder whose status and maps are unchanged keeps its smaps; its io_uring fdinfo is read afresh', async () => {
    const scanner = new IncrementalScanner({ fullScanEveryMs: 0, smapsMaxAgeMs: 3_600_000 });
    using pinned = await register({ length: 8 * MiB, backend: 'uring' });
    const first = fullScanRow(scanner);
    // Other tests in this process may map or unmap memory between two scans (then maps differs
    // and smaps is read again, as it must be): look for two scans with nothing moved.
    let kept = false;
    let previous = first;
    for (let attempt = 0; attempt < 20 && !kept; attempt++) {
      const row = fullScanRow(scanner);
      if (row.detail!.vmas === previous.detail!.vmas) {
        kept = true;
        expect(row.detail!.uringInstances).not.toBe(previous.detail!.uringInstances);
        expect(row.detail!.uringRegisteredBytes).toBe(8 * MiB);
      }
      previous = row;
    }
    expect(kept, 'smaps was read again at every one of 20 full scans').toBe(true);
    void pinned;
  });

  it('at a full scan, smaps is read again when a mapping was split (madvise over part of it), though VmPin and VmLck did not move', async () => {
    const scanner = new IncrementalScanner({ fullScanEveryMs: 0, smapsMaxAgeMs: 3_600_000 });
    using pinned = await register({ length: 8 * MiB, backend: 'uring' });
    const buffer = pinned.buffers[0]!;
    const page = 4096n;
    const middle = BigInt(buffer.addr) + 1024n * page;
    const dontforkAtMiddle = (row: ReturnType<typeof fullScanRow>) =>
      row.detail!.vmas!.some((vma) => vma.start <= middle && middle < vma.end && isDontFork(vma));
    const before = fullScanRow(scanner);
    expect(dontforkAtMiddle(before)).toBe(false);
    // One page in the middle of the pinned buffer: its VMA splits in three, so maps changes.
    madvise(middle, 4096, MADV_DONTFORK);
    const after = fullScanRow(scanner);
    expect(after.pinnedBytes).toBe(before.pinnedBytes);
    expect(after.detail!.vmas).not.toBe(before.detail!.vmas);
    expect(dontforkAtMiddle(after)).toBe(true);
  });

  it('at a full scan, smaps older than smapsMaxAgeMs is read again even when maps is unchanged', async () => {
    const smapsMaxAgeMs = 300;
    const scanner = new IncrementalScanner({ fullScanEveryMs: 0, smapsMaxAgeMs });
    using pinned = await register({ length: 8 * MiB, backend: 'uring' });
    const first = fullScanRow(scanner);
    await new Promise((resolve) => setTimeout(resolve, smapsMaxAgeMs));
    const aged = scanner.scan();
    expect(aged.fullScanReason).not.toBeNull();
    expect(rowOf(aged, process.pid)!.detail!.vmas).not.toBe(first.detail!.vmas);
    expect(aged.smapsReads).toBeGreaterThan(0);
    void pinned;
  });

  it('prefetch(): the first full scan is read on a worker thread and the scanner goes on from it', async () => {
    builtOrThrow();
    const built = (await import(`${ROOT}dist/proc/incremental.js`)) as typeof import('../../src/proc/incremental.js');
    using pinned = await register({ length: 8 * MiB, backend: 'uring' });
    const scanner = new built.IncrementalScanner({ fullScanEveryMs: 3_600_000 });
    expect(await scanner.prefetch()).toBe(true);
    const first = scanner.scan();
    expect(first.fullScanReason).toBe('first');
    expect(first.statusReads).toBe(first.scannedProcesses);
    const row = rowOf(first, process.pid);
    expect(row?.pinnedBytes).toBe(8 * MiB);
    // The detail crossed threads intact (bigint addresses, the limits Map). The buffer's VMA
    // may have merged with a neighbouring anonymous one, so look for the VMA that holds it.
    const addr = pinned.buffers[0]!.addr;
    expect(row?.detail?.vmas?.some((vma) => typeof vma.start === 'bigint' && vma.start <= addr && addr < vma.end)).toBe(true);
    expect(row?.detail?.limits?.all).toBeInstanceOf(Map);
    expect(rowOf(scanner.scan(), process.pid)?.pinnedBytes).toBe(8 * MiB);
  });

  it('prefetch() run from the TypeScript sources (no compiled worker script) declines; scan() reads here', async () => {
    const scanner = new IncrementalScanner({ fullScanEveryMs: 3_600_000 });
    expect(await scanner.prefetch()).toBe(false);
    expect(scanner.scan().fullScanReason).toBe('first');
  });

  it.skipIf(!hasPinCounters)('with nothing changing, a scan reads far fewer status files than there are processes', async () => {
    const scanner = new IncrementalScanner({ fullScanEveryMs: 3_600_000 });
    scanner.scan();
    // Other test files pin and lock in parallel; a quiet moment comes within a few tries.
    let partial: ReturnType<IncrementalScanner['scan']> | null = null;
    for (let attempt = 0; attempt < 50 && !partial; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      const scan = scanner.scan();
      if (scan.fullScanReason === null) partial = scan;
    }
    expect(partial, 'no quiet 100 ms in 5 s: pin counters or Mlocked kept moving').not.toBeNull();
    expect(partial!.statusReads).toBeLessThan(partial!.scannedProcesses);
    expect(partial!.scannedProcesses).toBeGreaterThan(1);
  });
});
