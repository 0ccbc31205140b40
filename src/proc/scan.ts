// The process scan: every /proc/<pid>/status in one synchronous pass (the fast path, about the cost
// of `grep -h VmPin /proc/[0-9]*/status`: one readdir, then open+read+close per process), and the
// expensive files (limits, smaps, io_uring fdinfo) only for processes that lock or pin memory,
// or when asked.
//
// Counting:
//   vanishedProcesses   — listed by readdir but gone before we finished reading it (dropped from the list).
//   unreadableProcesses — processes for which the kernel refused a file we tried (EACCES/EPERM), kept in
//                         the list with the refused parts in `unreadable`. status and limits are world-
//                         readable, so for another user's process this is smaps and the fd directory
//                         (ptrace access check / mode 0500) — i.e. only processes whose detail we tried.

import { ProcUnreadableError, listPids, isUnreadableError, kbFieldInBytes, procPath, readSmallProcBytes } from './procfs.js';
import { parseStatus, type ProcessStatus } from './status.js';
import { readProcessLimits, type ProcessLimits } from './limits.js';
import { readSmapsFlags, readSmapsWithLayout, summarizeSmaps, type SmapsSummary, type SmapsVma } from './smaps.js';
import { readUringInstances, type UringInstance } from './uringFdinfo.js';
import { readMeminfo, type Meminfo } from './meminfo.js';
import { userName } from './accounts.js';
import { readProcCgroupOrRefused, type CgroupMembership } from './cgroup.js';

export type DetailPart = 'status' | 'limits' | 'smaps' | 'fd';

export interface ProcessDetail {
  /** RLIMIT_MEMLOCK in bytes (null = unlimited); null record if unreadable. */
  memlock: { softBytes: number | null; hardBytes: number | null } | null;
  limits: ProcessLimits | null;
  /** Every VMA with its flags; null if smaps was unreadable. */
  vmas: SmapsVma[] | null;
  smaps: SmapsSummary | null;
  /** io_uring instances with registered buffers; null if the fd directory was unreadable. */
  uringInstances: UringInstance[] | null;
  /** Sum of registered io_uring buffer lengths over all instances (0 if unreadable). */
  uringRegisteredBytes: number;
  /** The VMA layout `vmas` was read with (smaps.ts SmapsParser.layout); null if smaps was unreadable. */
  mapsLayout?: string | null;
}

export interface ProcessSnapshot extends ProcessStatus {
  /** User name of the real uid (or the uid as a string). */
  user: string;
  /** Limits/smaps/fdinfo, read only for processes that lock or pin (or on request); else null. */
  detail: ProcessDetail | null;
  /** Parts the kernel refused to show us. Empty when everything tried was readable. */
  unreadable: DetailPart[];
  /**
   * /proc/PID/cgroup, read in the same pass as status (ScanOptions.cgroup) for a process that pins or
   * locks; 'unreadable' when the kernel refused it; absent when not read.
   */
  cgroup?: CgroupMembership[] | 'unreadable';
}

export interface ScanOptions {
  /** Read limits, smaps and io_uring fdinfo for every scanned process, not only lockers/pinners. */
  detail?: boolean;
  /** Only these pids (detail is read for each of them). */
  pids?: readonly number[];
  /** Include kernel threads (no mm, nothing to report). Default false; always true for explicit pids. */
  includeKernelThreads?: boolean;
  /** Drop processes with VmLck = VmPin = 0 from the result (they are still counted as scanned). */
  onlyHolding?: boolean;
  /**
   * Look only at these pids, otherwise exactly as a scan of every process (unlike `pids`: no forced
   * detail, kernel threads skipped). For scans that know the rest of the machine has not changed.
   */
  subset?: readonly number[];
  /** Read status only, never limits/smaps/fdinfo (for machine-wide sums). Ignored with `pids`. */
  statusOnly?: boolean;
  /**
   * Parts of a holder's detail from an earlier scan, to use again instead of reading them (limits
   * are read every time: cheap, and a `limits --set` should show at once). smaps costs ~2.5 ms per
   * 100 KiB, so a live view re-reads it only when something changed. Returns null to read everything.
   */
  reuseMappings?: (status: ProcessStatus) => ReusedMappings | null;
  /** Read /proc/PID/limits with the detail (default true); false for callers that never show it (`ls`). */
  limits?: boolean;
  /**
   * Parse smaps' counters and keep its layout (default true); false for callers that use only each
   * VMA's range, perms, pathname and VmFlags (`ls`): detail.smaps and mapsLayout are then null and
   * the VMAs' counters 0, for about half the parsing.
   */
  smapsCounters?: boolean;
  /**
   * Read /proc/PID/cgroup of each process kept that pins or locks, right after its status (one pass,
   * as htop does), for grouping by cgroup: ProcessSnapshot.cgroup. A process whose cgroup file is
   * gone by then has exited and counts as vanished.
   */
  cgroup?: boolean;
}

/** The part of ProcessDetail that comes from smaps; `unreadable` when the kernel refused it. */
export type SmapsPart = Pick<ProcessDetail, 'vmas' | 'smaps'> & { mapsLayout: string | null; unreadable: boolean };
/** The part of ProcessDetail that comes from the fd directory (io_uring fdinfo). */
export type FdPart = Pick<ProcessDetail, 'uringInstances' | 'uringRegisteredBytes'> & { unreadable: boolean };
/** Parts of an earlier detail to use again; a part left out is read afresh. */
export interface ReusedMappings {
  smaps?: SmapsPart;
  fd?: FdPart;
}

export interface ScanResult {
  processes: ProcessSnapshot[];
  /** How many /proc entries were looked at. */
  scannedProcesses: number;
  unreadableProcesses: number;
  /** The pids counted in unreadableProcesses. */
  unreadablePids: number[];
  vanishedProcesses: number;
  /** Epoch milliseconds at the start of the scan. */
  scannedAt: number;
  durationMs: number;
}

const VM_LCK = Buffer.from('\nVmLck:');
const VM_PIN = Buffer.from('\nVmPin:');

/** Runs one detail reader; records a refusal instead of throwing. 'gone' = the process vanished. */
function tryPart<T>(part: DetailPart, unreadable: DetailPart[], read: () => T | null): T | null | 'gone' {
  try {
    const value = read();
    return value === null ? 'gone' : value;
  } catch (err) {
    if (err instanceof ProcUnreadableError || isUnreadableError(err)) {
      unreadable.push(part);
      return null;
    }
    throw err;
  }
}

function readSmapsPart(pid: number, counters = true): SmapsPart | 'gone' {
  const unreadable: DetailPart[] = [];
  if (!counters) {
    const vmas = tryPart('smaps', unreadable, () => readSmapsFlags(pid));
    if (vmas === 'gone') return 'gone';
    return { vmas, smaps: null, mapsLayout: null, unreadable: vmas === null };
  }
  const read = tryPart('smaps', unreadable, () => readSmapsWithLayout(pid));
  if (read === 'gone') return 'gone';
  return { vmas: read?.vmas ?? null, smaps: read ? summarizeSmaps(read.vmas) : null, mapsLayout: read?.layout ?? null, unreadable: read === null };
}

function readFdPart(pid: number): FdPart | 'gone' {
  const unreadable: DetailPart[] = [];
  const uringInstances = tryPart('fd', unreadable, () => readUringInstances(pid));
  if (uringInstances === 'gone') return 'gone';
  let uringRegisteredBytes = 0;
  for (const instance of uringInstances ?? []) uringRegisteredBytes += instance.fdinfo.registeredBytes;
  return { uringInstances, uringRegisteredBytes, unreadable: uringInstances === null };
}

/** The smaps part of a detail, to keep for reuse. */
export function smapsPartOf(detail: ProcessDetail, unreadable: readonly DetailPart[]): SmapsPart {
  return { vmas: detail.vmas, smaps: detail.smaps, mapsLayout: detail.mapsLayout ?? null, unreadable: unreadable.includes('smaps') };
}

/** The fd part of a detail, to keep for reuse. */
export function fdPartOf(detail: ProcessDetail, unreadable: readonly DetailPart[]): FdPart {
  return { uringInstances: detail.uringInstances, uringRegisteredBytes: detail.uringRegisteredBytes, unreadable: unreadable.includes('fd') };
}

/**
 * Reads limits, smaps and io_uring fdinfo of pid (the parts `reuse` gives are taken from it).
 * Returns 'gone' if the process disappeared.
 */
export function readProcessDetail(pid: number, unreadable: DetailPart[], reuse: ReusedMappings | null = null, withLimits = true, smapsCounters = true): ProcessDetail | 'gone' {
  const limits = withLimits ? tryPart('limits', unreadable, () => readProcessLimits(pid)) : null;
  if (limits === 'gone') return 'gone';
  const smaps = reuse?.smaps ?? readSmapsPart(pid, smapsCounters);
  if (smaps === 'gone') return 'gone';
  const fd = reuse?.fd ?? readFdPart(pid);
  if (fd === 'gone') return 'gone';
  if (smaps.unreadable) unreadable.push('smaps');
  if (fd.unreadable) unreadable.push('fd');
  return {
    memlock: limits?.lockedMemory ?? null,
    limits,
    vmas: smaps.vmas,
    smaps: smaps.smaps,
    uringInstances: fd.uringInstances,
    uringRegisteredBytes: fd.uringRegisteredBytes,
    mapsLayout: smaps.mapsLayout,
  };
}

export function scanProcesses(options: ScanOptions = {}): ScanResult {
  const scannedAt = Date.now();
  const started = performance.now();
  const explicit = options.pids !== undefined;
  const pids = options.pids ? [...options.pids] : options.subset ? [...options.subset] : listPids();
  const processes: ProcessSnapshot[] = [];
  const unreadablePids: number[] = [];
  let vanishedProcesses = 0;

  // Without detail or explicit pids, a process with VmLck = VmPin = 0 is decided from its raw bytes
  // (two native byte searches), never decoded or parsed: most of a machine's processes hold nothing.
  const skipIdle = options.onlyHolding === true && !explicit && !options.detail;
  for (const pid of pids) {
    let text: string | null;
    try {
      const raw = readSmallProcBytes(procPath(pid, 'status'));
      if (raw !== null && skipIdle
        && kbFieldInBytes(raw.bytes, raw.length, VM_LCK) === 0 && kbFieldInBytes(raw.bytes, raw.length, VM_PIN) === 0) {
        continue;
      }
      text = raw === null ? null : raw.text();
    } catch (err) {
      if (!(err instanceof ProcUnreadableError)) throw err;
      // hidepid=1 mounts: the directory is listed but its files are not ours to read.
      unreadablePids.push(pid);
      continue;
    }
    if (text === null) {
      vanishedProcesses++;
      continue;
    }
    const status = parseStatus(text);
    if (status.isKernelThread && !explicit && !options.includeKernelThreads) continue;
    const holding = status.lockedBytes > 0 || status.pinnedBytes > 0;
    if (options.onlyHolding && !holding) continue;

    const unreadable: DetailPart[] = [];
    let detail: ProcessDetail | null = null;
    if (status.hasMm && (explicit || options.detail || (holding && !options.statusOnly))) {
      const read = readProcessDetail(pid, unreadable, options.reuseMappings?.(status) ?? null, options.limits ?? true, options.smapsCounters ?? true);
      if (read === 'gone') {
        vanishedProcesses++;
        continue;
      }
      detail = read;
    }
    let cgroup: CgroupMembership[] | 'unreadable' | undefined;
    if (options.cgroup && holding) {
      const read = readProcCgroupOrRefused(pid);
      if (read === null) {
        vanishedProcesses++;
        continue;
      }
      cgroup = read;
    }
    if (unreadable.length > 0) unreadablePids.push(pid);
    processes.push({ ...status, user: userName(status.uid), detail, unreadable, ...(cgroup === undefined ? {} : { cgroup }) });
  }

  return {
    processes,
    scannedProcesses: pids.length,
    unreadableProcesses: unreadablePids.length,
    unreadablePids,
    vanishedProcesses,
    scannedAt,
    durationMs: performance.now() - started,
  };
}

export interface SystemMemory {
  meminfo: Meminfo;
  /** Sum of VmPin over all processes: long-term pins have no meminfo line. */
  pinnedBytesTotal: number;
  /** Sum of VmLck over all processes (compare with meminfo Mlocked, which counts pages once). */
  lockedBytesTotal: number;
  processesHolding: number;
}

/**
 * meminfo totals plus the VmPin/VmLck sums of a scan (a fast, status-only scan if none is given).
 * A scan filtered by `pids` gives sums over those pids only; `onlyHolding` does not change the sums.
 */
export function readSystemMemory(scan?: ScanResult): SystemMemory {
  const result = scan ?? scanProcesses({ onlyHolding: true, statusOnly: true });
  let pinnedBytesTotal = 0;
  let lockedBytesTotal = 0;
  let processesHolding = 0;
  for (const process of result.processes) {
    pinnedBytesTotal += process.pinnedBytes;
    lockedBytesTotal += process.lockedBytes;
    if (process.pinnedBytes > 0 || process.lockedBytes > 0) processesHolding++;
  }
  return { meminfo: readMeminfo(), pinnedBytesTotal, lockedBytesTotal, processesHolding };
}
