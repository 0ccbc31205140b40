// Change-gated scanning for a live view. Reading every /proc/<pid>/status is nearly all the CPU a
// refresh costs (the kernel formats ~1.5 KiB per process), yet on most refreshes no process started
// or stopped pinning or locking. The kernel says when that may have happened:
//   - /proc/vmstat nr_foll_pin_acquired / nr_foll_pin_released move with every page pinned or
//     unpinned anywhere (io_uring fixed buffers, RDMA MRs, …): VmPin can only change with them;
//   - /proc/meminfo Mlocked moves when pages are mlocked or munlocked.
// When both are unchanged, only the processes that already hold something (or were unreadable) and
// processes that did not exist last time are read; everything else is read again only when a
// counter moves, and at least every `fullScanEveryMs` for the cases no counter shows (VmLck of an
// MLOCK_ONFAULT range with no pages yet, or one process's munlock exactly offsetting another's mlock).

import { readMeminfo } from './meminfo.js';
import { listPids, scanProcesses, type ScanResult } from './scan.js';
import { readPinCounters, type PinCounters } from './vmstat.js';

/** What a refresh reads first, before deciding how much to scan. */
export interface ChangeCounters {
  /** null: this kernel has no pin counters (< 5.7), so every refresh scans everything. */
  pins: PinCounters | null;
  mlockedBytes: number;
}

export type FullScanReason = 'first' | 'no-pin-counters' | 'pins-changed' | 'mlocked-changed' | 'interval';

/** Why everything must be read this time, or null when the known holders and new pids suffice. */
export function fullScanReason(previous: ChangeCounters | null, current: ChangeCounters, msSinceFull: number, fullScanEveryMs: number): FullScanReason | null {
  if (previous === null) return 'first';
  if (current.pins === null || previous.pins === null) return 'no-pin-counters';
  if (current.pins.acquired !== previous.pins.acquired || current.pins.released !== previous.pins.released) return 'pins-changed';
  if (current.mlockedBytes !== previous.mlockedBytes) return 'mlocked-changed';
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
  /** Holders and unreadable processes of the last scan: read on every refresh. */
  private watchedPids = new Set<number>();

  constructor(private readonly options: IncrementalScannerOptions) {}

  scan(): IncrementalScanResult {
    // Counters first: a change during the scan then shows up at the next refresh.
    const current: ChangeCounters = { pins: readPinCounters(), mlockedBytes: readMeminfo().mlockedBytes };
    const now = performance.now();
    const reason = fullScanReason(this.previous, current, now - this.lastFullAt, this.options.fullScanEveryMs);
    const pids = listPids();
    const subset = reason !== null ? pids : pids.filter((pid) => this.watchedPids.has(pid) || !this.knownPids.has(pid));
    const result = scanProcesses({ onlyHolding: true, subset });

    this.previous = current;
    if (reason !== null) this.lastFullAt = now;
    this.knownPids = new Set(pids);
    this.watchedPids = new Set([...result.processes.map((p) => p.pid), ...result.unreadablePids]);
    return { ...result, scannedProcesses: pids.length, fullScanReason: reason, statusReads: subset.length };
  }
}
