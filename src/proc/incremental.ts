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
// and known holders are exact at every refresh.
//
// A holder's smaps (~2 ms per 100 KiB, far more than its status) and io_uring fdinfo are read again
// only at full scans or when its VmPin/VmLck changed; a bare madvise() shows by the next full scan.

import { existsSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { readTaskCounters, type TaskCounters } from './loadavg.js';
import { listPids, scanProcesses, type MappingsDetail, type ProcessSnapshot, type ScanResult } from './scan.js';
import type { ProcessStatus } from './status.js';
import { readPinCounters, type PinCounters } from './vmstat.js';

/** What a refresh reads first, before deciding how much to scan. */
export interface ChangeCounters {
  /** null: this kernel has no pin counters (< 5.7), so every refresh scans everything. */
  pins: PinCounters | null;
}

export type FullScanReason = 'first' | 'no-pin-counters' | 'pins-changed' | 'interval';

/** Why everything must be read this time, or null when the known holders and new pids suffice. */
export function fullScanReason(previous: ChangeCounters | null, current: ChangeCounters, msSinceFull: number, fullScanEveryMs: number): FullScanReason | null {
  if (previous === null) return 'first';
  if (current.pins === null || previous.pins === null) return 'no-pin-counters';
  if (current.pins.acquired !== previous.pins.acquired || current.pins.released !== previous.pins.released) return 'pins-changed';
  if (msSinceFull >= fullScanEveryMs) return 'interval';
  return null;
}

export interface IncrementalScanResult extends ScanResult {
  /** Why every process was read; null when only known holders, unreadable and new processes were. */
  fullScanReason: FullScanReason | null;
  /** Status files read this time (scannedProcesses counts every process listed). */
  statusReads: number;
}

export interface IncrementalScannerOptions {
  /** Read every process at least this often, whatever the counters say. */
  fullScanEveryMs: number;
}

/** Scans with `onlyHolding` semantics, reading idle processes only when something may have changed. */
export class IncrementalScanner {
  private previous: ChangeCounters | null = null;
  private lastFullAt = 0;
  private knownPids = new Set<number>();
  private tasks: TaskCounters | null = null;
  /** Holders and unreadable processes of the last scan: read on every refresh. */
  private watchedPids = new Set<number>();
  /** Each holder's smaps/fdinfo from the last scan, reused while its status says nothing changed. */
  private mappings = new Map<number, { signature: string; mappings: MappingsDetail }>();

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
    const counters: ChangeCounters = { pins: readPinCounters() };
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
    const current: ChangeCounters = { pins: readPinCounters() };
    const now = performance.now();
    const reason = fullScanReason(this.previous, current, now - this.lastFullAt, this.options.fullScanEveryMs);
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
    // A full read reads everything afresh; between full reads a holder whose name, owner, VmPin and
    // VmLck are unchanged keeps its smaps/fdinfo (a pin or registration moves the pin counters and
    // forces a full read; a bare madvise shows by the next one).
    const reuseMappings = reason !== null ? undefined : (status: ProcessStatus): MappingsDetail | null => {
      const cached = this.mappings.get(status.pid);
      return cached && cached.signature === signatureOf(status) ? cached.mappings : null;
    };
    const result = scanProcesses({ onlyHolding: true, subset, ...(reuseMappings ? { reuseMappings } : {}) });
    return this.settle(current, tasks, reason !== null ? now : null, result, reason, subset.length);
  }

  private adoptPrefetched(prefetched: NonNullable<IncrementalScanner['prefetched']>): IncrementalScanResult {
    this.prefetched = null;
    this.knownPids = new Set(prefetched.pids);
    return this.settle(prefetched.counters, prefetched.tasks, prefetched.startedAt, prefetched.result, 'first', prefetched.pids.length);
  }

  /** Keeps what the next refresh compares against: the counters, the holders and their mappings. */
  private settle(counters: ChangeCounters, tasks: TaskCounters | null, fullScanAt: number | null, result: ScanResult,
    reason: FullScanReason | null, statusReads: number): IncrementalScanResult {
    this.previous = counters;
    if (fullScanAt !== null) this.lastFullAt = fullScanAt;
    this.tasks = tasks;
    this.watchedPids = new Set([...result.processes.map((p) => p.pid), ...result.unreadablePids]);
    this.mappings = new Map(result.processes.filter((p) => p.detail !== null).map((p) => [p.pid, { signature: signatureOf(p), mappings: mappingsOf(p) }]));
    return { ...result, scannedProcesses: this.knownPids.size, fullScanReason: reason, statusReads };
  }
}

function signatureOf(status: ProcessStatus): string {
  return `${status.name}\0${status.uid}\0${status.pinnedBytes}\0${status.lockedBytes}`;
}

function mappingsOf(process: ProcessSnapshot): MappingsDetail {
  const detail = process.detail!;
  return {
    vmas: detail.vmas, smaps: detail.smaps, uringInstances: detail.uringInstances, uringRegisteredBytes: detail.uringRegisteredBytes,
    unreadable: process.unreadable.filter((part) => part === 'smaps' || part === 'fd'),
  };
}
