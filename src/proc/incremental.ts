// Change-gated scanning for a live view. Reading every /proc/<pid>/status is nearly all the CPU a
// refresh costs (the kernel formats ~1.5 KiB per process), yet on most refreshes no process started
// or stopped pinning. The kernel says when that may have happened: /proc/vmstat nr_foll_pin_acquired
// and nr_foll_pin_released move with every page pinned or unpinned anywhere (io_uring fixed buffers,
// RDMA MRs, O_DIRECT, …), and VmPin can only change with them. While they stand still, only the
// processes that already hold something (or were unreadable) and processes that did not exist last
// time are read; every process is read again when they move, and at least every `fullScanEveryMs`.
//
// Locking has no such counter: meminfo Mlocked counts pages, so it moves with every page an mlockall()
// daemon faults in while no VmLck changes (seen on every refresh on a quiet machine). VmLck of a
// process that was idle at the last full scan therefore shows within `fullScanEveryMs`; new processes
// and known holders are exact at every refresh. With `quietFullScanEveryMs`, that periodic full scan
// is made only when Mlocked differs from what it was at the last one (a new mlock moves it, unless its
// pages were mlocked already by another process, or MLOCK_ONFAULT left them unfaulted), and at least
// every `quietFullScanEveryMs`: a machine where nothing pins or locks reads every process rarely.
//
// A holder's smaps (~2.5 ms per 100 KiB: the kernel walks the page tables of every VMA, far more
// than its status) and io_uring fdinfo are kept between scans while its name, uid, VmPin and VmLck
// are unchanged. What the live views take from smaps is the VMA layout and each VMA's VmFlags (lo,
// dc, wf: locked ranges, DONTFORK/WIPEONFORK cover), never its page counters. So:
//   - between full scans, both are reused as they are;
//   - at a full scan, fdinfo is read afresh (a buffer registered again at another address moves the
//     pin counters but may leave VmPin as it was), and smaps is reused only while /proc/PID/maps
//     (a tenth of smaps' cost) shows the same VMAs: any mmap, munmap, mremap, or mlock/madvise of
//     part of a mapping (which splits it) changes maps and makes smaps be read again;
//   - a VmFlags change that moves no VMA boundary and leaves VmPin/VmLck alone (madvise(MADV_DONTFORK)
//     over exactly one whole mapping) shows when the kept smaps reaches `smapsMaxAgeMs`.

import { existsSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { readTaskCounters, type TaskCounters } from './loadavg.js';
import { listPids } from './procfs.js';
import { fdPartOf, scanProcesses, smapsPartOf, type FdPart, type ReusedMappings, type ScanResult, type SmapsPart } from './scan.js';
import { mapsLayout } from './smaps.js';
import { ProcUnreadableError } from './procfs.js';
import type { ProcessStatus } from './status.js';
import { readPinCounters, type PinCounters } from './vmstat.js';
import { readMeminfo } from './meminfo.js';

/** What a refresh reads first, before deciding how much to scan. */
export interface ChangeCounters {
  /** null: this kernel has no pin counters (< 5.7), so every refresh scans everything. */
  pins: PinCounters | null;
  /** meminfo Mlocked in bytes (null: not read, or unreadable). */
  mlockedBytes: number | null;
}

export type FullScanReason = 'first' | 'no-pin-counters' | 'pins-changed' | 'locked-changed' | 'interval';

/** The quiet-machine rule (see the top of this file): Mlocked at the last full scan, and the longest gap. */
export interface QuietRule {
  mlockedAtFull: number | null;
  everyMs: number;
}

/** Why everything must be read this time, or null when the known holders and new pids suffice. */
export function fullScanReason(previous: ChangeCounters | null, current: ChangeCounters, msSinceFull: number, fullScanEveryMs: number, quiet: QuietRule | null = null): FullScanReason | null {
  if (previous === null) return 'first';
  if (current.pins === null || previous.pins === null) return 'no-pin-counters';
  if (current.pins.acquired !== previous.pins.acquired || current.pins.released !== previous.pins.released) return 'pins-changed';
  if (msSinceFull >= fullScanEveryMs) {
    if (quiet === null) return 'interval';
    if (current.mlockedBytes === null || current.mlockedBytes !== quiet.mlockedAtFull) return 'locked-changed';
  }
  if (quiet !== null && msSinceFull >= quiet.everyMs) return 'interval';
  return null;
}

export interface IncrementalScanResult extends ScanResult {
  /** Why every process was read; null when only known holders, unreadable and new processes were. */
  fullScanReason: FullScanReason | null;
  /** Status files read this time (scannedProcesses counts every process listed). */
  statusReads: number;
  /** Holders whose smaps was read this time (the others' was kept from an earlier scan). */
  smapsReads: number;
  /** The counters read before this scan (callers that export them need not read them again). */
  counters: ChangeCounters;
}

export interface IncrementalScannerOptions {
  /** Read every process at least this often, whatever the counters say (but see quietFullScanEveryMs). */
  fullScanEveryMs: number;
  /**
   * Make the fullScanEveryMs read only when meminfo Mlocked moved since the last full scan, and read
   * everything at least this often. Default: no such rule (every fullScanEveryMs).
   */
  quietFullScanEveryMs?: number;
  /**
   * Read a holder's smaps again at the first full scan after it is this old, even when its maps
   * shows the same VMAs (a VmFlags change on a whole mapping). Default: every full scan reads it.
   */
  smapsMaxAgeMs?: number;
  /** Read each holder's /proc/PID/cgroup in the same pass as its status (ScanOptions.cgroup). */
  cgroup?: boolean;
}

/** A holder's smaps and fdinfo from an earlier scan; `smapsReadAt` is when smaps was last read. */
interface KeptMappings {
  signature: string;
  smaps: SmapsPart;
  fd: FdPart;
  smapsReadAt: number;
}

/** Scans with `onlyHolding` semantics, reading idle processes only when something may have changed. */
export class IncrementalScanner {
  private previous: ChangeCounters | null = null;
  private lastFullAt = 0;
  private mlockedAtFull: number | null = null;
  private knownPids = new Set<number>();
  private tasks: TaskCounters | null = null;
  /** Holders and unreadable processes of the last scan: read on every refresh. */
  private watchedPids = new Set<number>();
  /** Each holder's smaps/fdinfo from the last scan, reused while its status says nothing changed. */
  private mappings = new Map<number, KeptMappings>();

  /** A first full scan made on a worker thread by prefetch(), with the counters read before it. */
  private prefetched: { counters: ChangeCounters; tasks: TaskCounters | null; startedAt: number; pids: number[]; result: ScanResult } | null = null;

  constructor(private readonly options: IncrementalScannerOptions) {}

  /**
   * Makes the first (full) scan on a worker thread, so it overlaps the caller's other work: `top`
   * loads ink meanwhile, and its first frame comes ~20 ms sooner with 2,000 processes (the worker
   * itself takes ~25 ms to start). Resolves when the scan is in (false if no worker could run it:
   * then scan() reads as usual). Only before the first scan().
   */
  async prefetch(): Promise<boolean> {
    if (this.previous !== null) return false;
    const script = new URL('./scanWorker.js', import.meta.url);
    // Run from TypeScript sources (tests) there is no compiled worker script.
    if (!existsSync(script)) return false;
    const counters = this.readCounters();
    const tasks = readTaskCounters();
    const startedAt = performance.now();
    try {
      const message = await new Promise<{ pids: number[]; result: ScanResult }>((resolve, reject) => {
        const worker = new Worker(script);
        worker.once('message', (data: { pids: number[]; result: ScanResult }) => {
          resolve(data);
          void worker.terminate();
        });
        worker.once('error', reject);
        worker.once('exit', (code) => reject(new Error(`scan worker exited with code ${code}`)));
      });
      this.prefetched = { counters, tasks, startedAt, ...message };
      return true;
    } catch {
      return false;
    }
  }

  scan(): IncrementalScanResult {
    if (this.prefetched) return this.adoptPrefetched(this.prefetched);
    // Counters first: a change during the scan then shows up at the next refresh.
    const current = this.readCounters();
    const now = performance.now();
    const quietEveryMs = this.options.quietFullScanEveryMs;
    const quiet = quietEveryMs === undefined ? null : { mlockedAtFull: this.mlockedAtFull, everyMs: quietEveryMs };
    const reason = fullScanReason(this.previous, current, now - this.lastFullAt, this.options.fullScanEveryMs, quiet);
    // No pid allocated and no task reaped since the last listing: it is still the machine's, and
    // there is no new process to read.
    const tasks = readTaskCounters();
    const sameTasks = tasks !== null && this.tasks !== null && tasks.lastPid === this.tasks.lastPid && tasks.threads === this.tasks.threads;
    let subset: number[];
    if (reason === null && sameTasks) {
      subset = [...this.watchedPids];
    } else {
      const pids = listPids();
      subset = reason !== null ? pids : pids.filter((pid) => this.watchedPids.has(pid) || !this.knownPids.has(pid));
      this.knownPids = new Set(pids);
    }
    const full = reason !== null;
    const maxAge = this.options.smapsMaxAgeMs ?? 0;
    const reuseMappings = (status: ProcessStatus): ReusedMappings | null => {
      const kept = this.mappings.get(status.pid);
      if (!kept || kept.signature !== signatureOf(status)) return null;
      if (!full) return { smaps: kept.smaps, fd: kept.fd };
      if (kept.smaps.mapsLayout === null || now - kept.smapsReadAt >= maxAge || currentLayout(status.pid) !== kept.smaps.mapsLayout) return null;
      return { smaps: kept.smaps };
    };
    const result = scanProcesses({ onlyHolding: true, subset, reuseMappings, cgroup: this.options.cgroup ?? false });
    return this.settle(current, tasks, reason !== null ? now : null, result, reason, subset.length);
  }

  private readCounters(): ChangeCounters {
    // meminfo only when the quiet rule needs it (~30 µs: the kernel sums every zone's counters).
    return { pins: readPinCounters(), mlockedBytes: this.options.quietFullScanEveryMs === undefined ? null : readMlockedBytes() };
  }

  private adoptPrefetched(prefetched: NonNullable<IncrementalScanner['prefetched']>): IncrementalScanResult {
    this.prefetched = null;
    this.knownPids = new Set(prefetched.pids);
    return this.settle(prefetched.counters, prefetched.tasks, prefetched.startedAt, prefetched.result, 'first', prefetched.pids.length);
  }

  /** Keeps what the next refresh compares against: the counters, the holders and their mappings. */
  private settle(counters: ChangeCounters, tasks: TaskCounters | null, fullScanAt: number | null, result: ScanResult,
    reason: FullScanReason | null, statusReads: number, now = performance.now()): IncrementalScanResult {
    this.previous = counters;
    if (fullScanAt !== null) {
      this.lastFullAt = fullScanAt;
      this.mlockedAtFull = counters.mlockedBytes;
    }
    this.tasks = tasks;
    this.watchedPids = new Set([...result.processes.map((p) => p.pid), ...result.unreadablePids]);
    const kept = new Map<number, KeptMappings>();
    let smapsReads = 0;
    for (const p of result.processes) {
      if (p.detail === null) continue;
      const before = this.mappings.get(p.pid);
      // The same vmas array: smaps was reused, and keeps the time it was read.
      const reused = before !== undefined && before.smaps.vmas === p.detail.vmas && before.smaps.mapsLayout === (p.detail.mapsLayout ?? null);
      if (!reused) smapsReads++;
      kept.set(p.pid, { signature: signatureOf(p), smaps: smapsPartOf(p.detail, p.unreadable), fd: fdPartOf(p.detail, p.unreadable), smapsReadAt: reused ? before.smapsReadAt : now });
    }
    this.mappings = kept;
    return { ...result, scannedProcesses: this.knownPids.size, fullScanReason: reason, statusReads, smapsReads, counters };
  }
}

function readMlockedBytes(): number | null {
  try {
    return readMeminfo().mlockedBytes;
  } catch {
    return null;
  }
}

function signatureOf(status: ProcessStatus): string {
  return `${status.name}\0${status.uid}\0${status.pinnedBytes}\0${status.lockedBytes}`;
}

/** pid's VMA layout now (mapsLayout); null when it cannot be told (gone, refused): read smaps then. */
function currentLayout(pid: number): string | null {
  try {
    return mapsLayout(pid);
  } catch (err) {
    if (err instanceof ProcUnreadableError) return null;
    throw err;
  }
}
