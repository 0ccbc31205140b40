// Who has pinned or locked memory, against which limit: per process, per user, system-wide.
// Shared by `stat`, `top` and `ls`; every number comes from one /proc scan.

import { scanProcesses, readSystemMemory, type ProcessSnapshot, type ScanResult } from '../proc/scan.js';
import { isDontFork, isWipeOnFork } from '../proc/smaps.js';
import type { SmapsVma } from '../proc/smaps.js';
import { missingPids } from './targets.js';

export type ProcessFlag = 'over-limit' | 'dontfork' | 'partial-dontfork' | 'wipeonfork' | 'overlap' | 'io_uring' | 'unreadable';

export interface ProcessRow {
  pid: number;
  uid: number;
  user: string;
  comm: string;
  pinnedBytes: number;
  lockedBytes: number;
  /** RLIMIT_MEMLOCK soft limit; null = unlimited. */
  memlockLimitBytes: number | null;
  /** Limit minus the larger of pinned and locked; null when unlimited. Negative = over the limit. */
  headroomBytes: number | null;
  /** Bytes registered as io_uring fixed buffers (charged to the user's locked memory). */
  uringBytes: number;
  /** Of the pinned ranges we can see (io_uring buffers), how many bytes lie in MADV_DONTFORK VMAs. */
  dontforkBytes: number;
  /** Bytes of pinned ranges that another pinned range of the same process also covers (counted twice). */
  doubleCountedBytes: number;
  flags: ProcessFlag[];
}

export interface UserRow {
  uid: number;
  user: string;
  processes: number;
  pinnedBytes: number;
  lockedBytes: number;
  /** io_uring charges RLIMIT_MEMLOCK against the user's locked memory across all its processes. */
  uringBytes: number;
}

export interface SystemRow {
  pinnedBytes: number;
  lockedBytes: number;
  mlockedBytes: number;
  unevictableBytes: number;
  memTotalBytes: number;
  /** pinnedBytes as a percentage of MemTotal. */
  pinnedPercent: number;
  processesHolding: number;
}

/**
 * What the user totals sum: the listed processes only (PIDs or --pid were given), or every process
 * that pins or locks (of the --user users, with --user). The system totals are always the machine's.
 */
export type UsersCover = 'listed-processes' | 'all-processes';

export interface StatReport {
  processes: ProcessRow[];
  users: UserRow[];
  usersCover: UsersCover;
  system: SystemRow;
  scannedProcesses: number;
  unreadableProcesses: number;
  vanishedProcesses: number;
  /** Pids asked for (CollectOptions.pids) that name no process. */
  missingPids: number[];
  scannedAt: number;
}

export interface Range {
  start: bigint;
  end: bigint;
}

/** Bytes of `range` covered by VMAs matching `predicate`. */
export function coveredBytes(range: Range, vmas: readonly SmapsVma[], predicate: (vma: SmapsVma) => boolean): number {
  let covered = 0n;
  for (const vma of vmas) {
    if (!predicate(vma)) continue;
    const start = vma.start > range.start ? vma.start : range.start;
    const end = vma.end < range.end ? vma.end : range.end;
    if (end > start) covered += end - start;
  }
  return Number(covered);
}

/**
 * For each range, the bytes it shares with ranges before it in the list: summed over the list this
 * is what a per-registration counter (pinned_vm) charges twice.
 */
export function overlapBytes(ranges: readonly Range[]): number[] {
  return ranges.map((range, i) => {
    // Union of the intersections with earlier ranges, so three-way overlaps are not counted thrice.
    const pieces: Range[] = [];
    for (let j = 0; j < i; j++) {
      const other = ranges[j]!;
      const start = other.start > range.start ? other.start : range.start;
      const end = other.end < range.end ? other.end : range.end;
      if (end > start) pieces.push({ start, end });
    }
    pieces.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
    let total = 0n;
    let cursor = -1n;
    for (const piece of pieces) {
      const start = piece.start > cursor ? piece.start : cursor;
      if (piece.end > start) total += piece.end - start;
      if (piece.end > cursor) cursor = piece.end;
    }
    return Number(total);
  });
}

/** io_uring buffer ranges of a process, from its fdinfo. */
export function uringRanges(snapshot: ProcessSnapshot): Range[] {
  const ranges: Range[] = [];
  for (const instance of snapshot.detail?.uringInstances ?? []) {
    for (const buffer of instance.fdinfo.buffers) ranges.push({ start: buffer.address, end: buffer.address + BigInt(buffer.lengthBytes) });
  }
  return ranges;
}

export function processRow(snapshot: ProcessSnapshot): ProcessRow {
  const detail = snapshot.detail;
  const limit = detail?.memlock ? detail.memlock.softBytes : null;
  const used = Math.max(snapshot.pinnedBytes, snapshot.lockedBytes);
  const ranges = uringRanges(snapshot);
  const vmas = detail?.vmas ?? [];
  const rangeBytes = ranges.reduce((sum, r) => sum + Number(r.end - r.start), 0);
  const dontforkBytes = ranges.reduce((sum, r) => sum + coveredBytes(r, vmas, isDontFork), 0);
  const wipeBytes = ranges.reduce((sum, r) => sum + coveredBytes(r, vmas, isWipeOnFork), 0);
  const doubleCountedBytes = overlapBytes(ranges).reduce((a, b) => a + b, 0);
  const flags: ProcessFlag[] = [];
  if (limit !== null && used > limit) flags.push('over-limit');
  if (rangeBytes > 0 && dontforkBytes === rangeBytes) flags.push('dontfork');
  else if (dontforkBytes > 0) flags.push('partial-dontfork');
  if (wipeBytes > 0) flags.push('wipeonfork');
  if (doubleCountedBytes > 0) flags.push('overlap');
  if (rangeBytes > 0) flags.push('io_uring');
  if (snapshot.unreadable.length > 0) flags.push('unreadable');
  return {
    pid: snapshot.pid,
    uid: snapshot.uid,
    user: snapshot.user,
    comm: snapshot.name,
    pinnedBytes: snapshot.pinnedBytes,
    lockedBytes: snapshot.lockedBytes,
    memlockLimitBytes: limit,
    headroomBytes: limit === null ? null : limit - used,
    uringBytes: detail?.uringRegisteredBytes ?? 0,
    dontforkBytes,
    doubleCountedBytes,
    flags,
  };
}

export function userRows(processes: readonly ProcessRow[]): UserRow[] {
  const byUid = new Map<number, UserRow>();
  for (const p of processes) {
    const row = byUid.get(p.uid) ?? { uid: p.uid, user: p.user, processes: 0, pinnedBytes: 0, lockedBytes: 0, uringBytes: 0 };
    row.processes++;
    row.pinnedBytes += p.pinnedBytes;
    row.lockedBytes += p.lockedBytes;
    row.uringBytes += p.uringBytes;
    byUid.set(p.uid, row);
  }
  return [...byUid.values()].sort((a, b) => b.pinnedBytes - a.pinnedBytes || b.lockedBytes - a.lockedBytes || a.uid - b.uid);
}

export interface CollectOptions {
  pids?: readonly number[];
  /** Include processes with nothing pinned or locked. */
  all?: boolean;
  /** Only processes of these real uids: the process rows, the user totals and any grouping of them. */
  uids?: ReadonlySet<number>;
}

/**
 * One scan → the whole report. Processes with nothing pinned or locked are left out unless `all`, and
 * those of other users with `uids`; the system totals always cover the whole machine.
 */
export function collectStat(options: CollectOptions = {}, scan?: ScanResult): StatReport {
  const result = scan ?? scanProcesses(options.pids ? { pids: options.pids } : { onlyHolding: !options.all });
  // System totals are machine-wide even when the rows are filtered to some pids.
  const system = readSystemMemory(options.pids ? undefined : result);
  const rows = result.processes
    .filter((p) => (options.all || p.pinnedBytes > 0 || p.lockedBytes > 0) && (!options.uids || options.uids.has(p.uid)))
    .map(processRow);
  const holding = rows.filter((r) => r.pinnedBytes > 0 || r.lockedBytes > 0);
  const meminfo = system.meminfo;
  return {
    processes: rows,
    users: userRows(holding),
    usersCover: options.pids ? 'listed-processes' : 'all-processes',
    system: {
      pinnedBytes: system.pinnedBytesTotal,
      lockedBytes: system.lockedBytesTotal,
      mlockedBytes: meminfo.mlockedBytes,
      unevictableBytes: meminfo.unevictableBytes,
      memTotalBytes: meminfo.memTotalBytes,
      pinnedPercent: meminfo.memTotalBytes > 0 ? (100 * system.pinnedBytesTotal) / meminfo.memTotalBytes : 0,
      processesHolding: system.processesHolding,
    },
    scannedProcesses: result.scannedProcesses,
    unreadableProcesses: result.unreadableProcesses,
    vanishedProcesses: result.vanishedProcesses,
    missingPids: missingPids(options.pids, result),
    scannedAt: result.scannedAt,
  };
}
