// Every registration on the machine, from every source the kernel exposes, in one list:
//   rdma      the kernel's MR table over RDMA netlink (`rdma res show mr`): pid, length, keys; no address
//   io_uring  fixed buffers from /proc/PID/fdinfo of io_uring fds: address and length
//   mlock     locked VMAs (VmFlags lo) from /proc/PID/smaps
//   held      registrations held by rdmactl holders (`reg --detach`), joined with the kernel rows above

import { scanProcesses, type ProcessSnapshot, type ScanResult } from '../proc/scan.js';
import { isDontFork, isLocked, isWipeOnFork, vmaSizeBytes, type SmapsVma } from '../proc/smaps.js';
import { parseKernelMrs, runRdmaJson, type KernelMr } from '../rdma/iproute.js';
import { coveredBytes, overlapBytes, type Range } from './stat.js';
import { pageSize } from '../proc/pagemap.js';
import { cgroupOwners, type CgroupOwner } from './cgroups.js';
import { missingPids } from './targets.js';

export type RegistrationSource = 'rdma' | 'io_uring' | 'mlock' | 'held';
export const REGISTRATION_SOURCES: readonly RegistrationSource[] = ['rdma', 'io_uring', 'mlock', 'held'];

export type ForkProtection = 'dontfork' | 'wipeonfork' | 'partial' | 'none';

export interface RegistrationRow {
  source: RegistrationSource;
  pid: number;
  comm: string;
  /** Start address; null when the source does not say (the kernel MR table has no addresses). */
  addr: bigint | null;
  length: number;
  pages: number;
  device: string | null;
  lkey: string | null;
  rkey: string | null;
  /** io_uring: ring fd and buffer slot; rdma: MR number; held: the holder's id. */
  handle: string;
  /** MADV_DONTFORK / WIPEONFORK coverage of the range (null when the address is unknown). */
  forkProtection: ForkProtection | null;
  /** Another pinned registration of the same process covers part of this range. */
  overlap: boolean;
  /** Bytes of this range also covered by an earlier pinned registration: charged twice to VmPin. */
  doubleCountedBytes: number;
  /** held rows: which kernel source confirms the registration ('missing' when none does). */
  evidence: RegistrationSource | 'missing' | null;
  /** The process's cgroup, systemd unit and container; only when collected with `owners`. */
  owner?: CgroupOwner;
}

export interface SourceStatus {
  available: boolean;
  /** Why the source is empty or unavailable, when it is. */
  reason: string | null;
}

export interface RegistrationsReport {
  registrations: RegistrationRow[];
  sources: Record<RegistrationSource, SourceStatus>;
  unreadableProcesses: number;
  /** Pids asked for (options.pids) that name no process. */
  missingPids: number[];
}

/** One registration an rdmactl holder says it holds (from the held-records store). */
export interface HeldRange {
  id: string;
  pid: number;
  backend: string;
  /** null for a holder whose record is missing or damaged: its ranges are taken from the kernel rows of its pid. */
  addr: bigint | null;
  length: number;
  /** The record behind this range: a holder found in the process table may have none, or a damaged one. */
  record: 'ok' | 'missing' | 'damaged';
  device: string | null;
  lkey: string | null;
  rkey: string | null;
  stale: boolean;
}

export interface HeldSource {
  ranges: HeldRange[];
  status: SourceStatus;
}

export function forkProtectionOf(range: Range, vmas: readonly SmapsVma[] | null): ForkProtection | null {
  if (!vmas) return null;
  const length = Number(range.end - range.start);
  const dontfork = coveredBytes(range, vmas, isDontFork);
  const wipe = coveredBytes(range, vmas, isWipeOnFork);
  if (dontfork === length) return 'dontfork';
  if (wipe === length) return 'wipeonfork';
  if (dontfork > 0 || wipe > 0) return 'partial';
  return 'none';
}

function baseRow(snapshot: { pid: number; name: string }): Pick<RegistrationRow, 'pid' | 'comm' | 'device' | 'lkey' | 'rkey' | 'overlap' | 'doubleCountedBytes' | 'evidence'> {
  return { pid: snapshot.pid, comm: snapshot.name, device: null, lkey: null, rkey: null, overlap: false, doubleCountedBytes: 0, evidence: null };
}

function uringRows(snapshot: ProcessSnapshot, pageBytes: number): RegistrationRow[] {
  const rows: RegistrationRow[] = [];
  for (const instance of snapshot.detail?.uringInstances ?? []) {
    for (const buffer of instance.fdinfo.buffers) {
      const range = { start: buffer.address, end: buffer.address + BigInt(buffer.lengthBytes) };
      rows.push({
        ...baseRow(snapshot),
        source: 'io_uring',
        addr: buffer.address,
        length: buffer.lengthBytes,
        pages: Math.ceil(buffer.lengthBytes / pageBytes),
        handle: `fd${instance.fd}:buf${buffer.index}`,
        forkProtection: forkProtectionOf(range, snapshot.detail?.vmas ?? null),
      });
    }
  }
  return rows;
}

function mlockRows(snapshot: ProcessSnapshot, pageBytes: number): RegistrationRow[] {
  const rows: RegistrationRow[] = [];
  for (const vma of snapshot.detail?.vmas ?? []) {
    if (!isLocked(vma)) continue;
    const length = vmaSizeBytes(vma);
    rows.push({
      ...baseRow(snapshot),
      source: 'mlock',
      addr: vma.start,
      length,
      pages: Math.ceil(length / pageBytes),
      handle: vma.pathname || '[anon]',
      forkProtection: forkProtectionOf({ start: vma.start, end: vma.end }, [vma]),
    });
  }
  return rows;
}

function rdmaRows(mrs: readonly KernelMr[], comms: ReadonlyMap<number, string>, pageBytes: number): RegistrationRow[] {
  return mrs.map((mr) => ({
    source: 'rdma' as const,
    pid: mr.pid ?? 0,
    comm: mr.comm ?? comms.get(mr.pid ?? 0) ?? '?',
    addr: null,
    length: mr.lengthBytes,
    pages: Math.ceil(mr.lengthBytes / pageBytes),
    device: mr.device,
    lkey: mr.lkey,
    rkey: mr.rkey,
    handle: `mrn${mr.mrn}`,
    forkProtection: null,
    overlap: false,
    doubleCountedBytes: 0,
    evidence: null,
  }));
}

/** Fill kernel MR rows' addresses from held verbs records of the same pid, length and (when visible) keys. */
export function joinHeld(rows: RegistrationRow[], held: readonly HeldRange[], vmasByPid: ReadonlyMap<number, SmapsVma[] | null>, pageBytes: number): RegistrationRow[] {
  const out: RegistrationRow[] = [];
  const claimed = new Set<RegistrationRow>();
  const heldRow = (h: HeldRange, addr: bigint | null, length: number, match: RegistrationRow | undefined, forkProtection: ForkProtection | null): RegistrationRow => ({
    source: 'held',
    pid: h.pid,
    comm: match?.comm ?? 'rdmactl',
    addr,
    length,
    pages: Math.ceil(length / pageBytes),
    device: h.device ?? match?.device ?? null,
    lkey: h.lkey ?? match?.lkey ?? null,
    rkey: h.rkey ?? match?.rkey ?? null,
    handle: h.stale ? `${h.id}:stale` : h.record === 'ok' ? h.id : `${h.id}:${h.record}-record`,
    forkProtection,
    overlap: false,
    doubleCountedBytes: 0,
    evidence: h.stale ? 'missing' : match?.source ?? 'missing',
  });
  for (const h of held) {
    if (h.addr === null) {
      // No record to say what it holds: every registration the kernel shows for the holder's pid is its.
      const mine = rows.filter((r) => !claimed.has(r) && r.pid === h.pid);
      for (const row of mine) {
        claimed.add(row);
        out.push(heldRow(h, row.addr, row.length, row, row.forkProtection));
      }
      if (mine.length === 0) out.push(heldRow(h, null, 0, undefined, null));
      continue;
    }
    const addr = h.addr;
    const kernelSource = h.backend === 'verbs' ? 'rdma' : h.backend === 'uring' ? 'io_uring' : 'mlock';
    const forkProtection = forkProtectionOf({ start: addr, end: addr + BigInt(h.length) }, vmasByPid.get(h.pid) ?? null);
    const match = rows.find((r) => !claimed.has(r) && r.source === kernelSource && r.pid === h.pid && (
      kernelSource === 'rdma'
        ? r.length === h.length && (r.lkey === null || h.lkey === null || r.lkey === h.lkey)
        : r.addr !== null && r.addr <= addr && addr + BigInt(h.length) <= r.addr + BigInt(r.length)));
    if (match) {
      claimed.add(match);
      if (match.source === 'rdma' && match.addr === null) {
        match.addr = addr;
        match.forkProtection = forkProtection;
      }
    }
    out.push(heldRow(h, addr, h.length, match, forkProtection));
  }
  return out;
}

/** Mark pinned registrations (rdma, io_uring) of one process that cover the same pages. */
export function markOverlaps(rows: RegistrationRow[]): void {
  const byPid = new Map<number, RegistrationRow[]>();
  for (const row of rows) {
    if ((row.source !== 'rdma' && row.source !== 'io_uring') || row.addr === null) continue;
    byPid.set(row.pid, [...(byPid.get(row.pid) ?? []), row]);
  }
  for (const group of byPid.values()) {
    const ranges = group.map((r) => ({ start: r.addr!, end: r.addr! + BigInt(r.length) }));
    const twice = overlapBytes(ranges);
    group.forEach((row, i) => {
      row.doubleCountedBytes = twice[i]!;
      row.overlap = ranges.some((other, j) => j !== i && other.start < ranges[i]!.end && ranges[i]!.start < other.end);
    });
  }
}

function compareRows(a: RegistrationRow, b: RegistrationRow): number {
  const byPid = a.pid - b.pid;
  if (byPid !== 0) return byPid;
  const bySource = REGISTRATION_SOURCES.indexOf(a.source) - REGISTRATION_SOURCES.indexOf(b.source);
  if (bySource !== 0) return bySource;
  const addrA = a.addr ?? 0n;
  const addrB = b.addr ?? 0n;
  return addrA < addrB ? -1 : addrA > addrB ? 1 : 0;
}

export interface CollectRegistrationsOptions {
  pids?: readonly number[];
  sources?: readonly RegistrationSource[];
  /** The held-records source, given the scanned processes (holders among them are found by name); omitted → reported as unavailable. */
  held?: (scanned: readonly ProcessSnapshot[]) => HeldSource;
  pageBytes?: number;
  /** For tests and `top`: reuse a scan. */
  scan?: ScanResult;
  /** Add each row's cgroup, unit and container (one /proc/PID/cgroup read per process listed). */
  owners?: boolean;
  /** For tests: the kernel MR table instead of running `rdma`. */
  kernelMrs?: () => { mrs: KernelMr[]; status: SourceStatus };
}

/** The kernel's MR table through `rdma -d res show mr`, or why it cannot be read. */
export function readKernelMrs(): { mrs: KernelMr[]; status: SourceStatus } {
  const result = runRdmaJson(['-d', 'res', 'show', 'mr']);
  if (!result.ok) return { mrs: [], status: { available: false, reason: result.reason } };
  return { mrs: parseKernelMrs(result.data), status: { available: true, reason: null } };
}

export function collectRegistrations(options: CollectRegistrationsOptions = {}): RegistrationsReport {
  const wanted = new Set(options.sources ?? REGISTRATION_SOURCES);
  const pageBytes = options.pageBytes ?? pageSize();
  // No row shows RLIMIT_MEMLOCK or a smaps counter: /proc/PID/limits is not read, smaps is parsed
  // for ranges and VmFlags only.
  const scan = options.scan ?? scanProcesses({ ...(options.pids ? { pids: options.pids } : {}), onlyHolding: !options.pids, limits: false, smapsCounters: false });
  const pidFilter = options.pids ? new Set(options.pids) : null;
  const snapshots = scan.processes.filter((p) => !pidFilter || pidFilter.has(p.pid));
  const comms = new Map(snapshots.map((p) => [p.pid, p.name] as const));
  const vmasByPid = new Map(snapshots.map((p) => [p.pid, p.detail?.vmas ?? null] as const));

  const sources: Record<RegistrationSource, SourceStatus> = {
    rdma: { available: false, reason: 'not requested' },
    io_uring: { available: true, reason: null },
    mlock: { available: true, reason: null },
    held: { available: false, reason: 'not requested' },
  };
  // Kernel rows are always collected when held rows are wanted: the join needs them.
  const kernelRows: RegistrationRow[] = [];
  if (wanted.has('rdma') || wanted.has('held')) {
    const { mrs, status } = (options.kernelMrs ?? readKernelMrs)();
    sources.rdma = status;
    kernelRows.push(...rdmaRows(mrs.filter((mr) => !pidFilter || (mr.pid !== null && pidFilter.has(mr.pid))), comms, pageBytes));
  }
  for (const snapshot of snapshots) {
    kernelRows.push(...uringRows(snapshot, pageBytes), ...mlockRows(snapshot, pageBytes));
  }
  let heldRows: RegistrationRow[] = [];
  if (wanted.has('held')) {
    if (options.held) {
      const held = options.held(snapshots);
      sources.held = held.status;
      heldRows = joinHeld(kernelRows, held.ranges.filter((h) => !pidFilter || pidFilter.has(h.pid)), vmasByPid, pageBytes);
    } else {
      sources.held = { available: false, reason: 'held registrations are not available in this build' };
    }
  }
  markOverlaps(kernelRows);
  const registrations = [...kernelRows, ...heldRows]
    .filter((r) => wanted.has(r.source))
    .sort(compareRows);
  if (options.owners) {
    const owners = cgroupOwners(registrations.map((r) => r.pid));
    for (const row of registrations) row.owner = owners.get(row.pid)!;
  }
  const unreadable = snapshots.filter((p) => p.unreadable.length > 0).length;
  return { registrations, sources, unreadableProcesses: unreadable, missingPids: missingPids(options.pids, scan) };
}
