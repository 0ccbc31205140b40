// Pinned and locked memory by cgroup, systemd unit or container, against the group's own limits
// (memory controller: limit, usage, unevictable; rdma controller: objects and handles per device).
// The near-memory-limit / near-rdma-limit flags follow cgroupLimits.ts's rule, as doctor does: the
// tightest limit on the group's path and its ancestors (a parent's limit caps the group too).
//
// Cost: one read of /proc/PID/cgroup per process that pins or locks (never per process on the
// machine), made by the scan in the same pass as its status where the caller asks the scan for it
// (ScanOptions.cgroup); one of /proc/self/mountinfo; the controller files once per cgroup directory.
// With groupsOfNote, also a walk of the memory and rdma hierarchies (cgroupsOfNote): a group whose
// processes pin nothing is still shown when it holds rdma objects or is near its own limit.
//
// Which hierarchy: with a v1 memory controller (v1 or hybrid hosts) a process is grouped by its
// memory cgroup; otherwise by its unified (v2) path. A group's rdma files are read at the same path
// in the v1 rdma hierarchy when there is one, else in the unified hierarchy when it offers rdma — the
// tools that create these groups (systemd, Docker, kubelet) use one path in every hierarchy they manage.

import { existsSync } from 'node:fs';
import { scanProcesses, type ProcessSnapshot } from '../proc/scan.js';
import { ProcUnreadableError } from '../proc/procfs.js';
import {
  cgroupDirectory,
  readCgroupMemory,
  readCgroupMounts,
  readCgroupRdma,
  readProcCgroupOrRefused,
  type CgroupMembership,
  type CgroupMemory,
  type CgroupMounts,
  type CgroupVersion,
  type RdmaDeviceUsage,
} from '../proc/cgroup.js';
import { collectStat, type CollectOptions, type ProcessRow, type StatReport } from './stat.js';
import { groupKey, nameCgroup, type CgroupNames, type GroupBy } from './cgroupNames.js';
import {
  cgroupsOfNote,
  groupingVersion,
  isNearLimit,
  memoryLimits,
  memoryMount,
  nearRdmaLimits,
  primaryPath,
  rdmaLimits,
  rdmaMount,
  tightestLimit,
  type CgroupFileReads,
  type CgroupNotice,
  type MemoryLimit,
  type RdmaLimit,
} from '../proc/cgroupLimits.js';

export type { GroupBy } from './cgroupNames.js';

export type GroupFlag = 'near-memory-limit' | 'near-rdma-limit' | 'unreadable' | 'gone';

export interface RdmaDeviceRow {
  device: string;
  /** rdma.current for the device, keys as the kernel prints them (hca_handle, hca_object, …). */
  current: Record<string, number | null>;
  /** rdma.max for the device; null = max (no limit). */
  max: Record<string, number | null>;
  /** hca_object limit minus use; null when unlimited. */
  objectsHeadroom: number | null;
  /** hca_handle limit minus use; null when unlimited. */
  handlesHeadroom: number | null;
}

export interface GroupMember {
  pid: number;
  /** The pid as the innermost pid namespace (a container) sees it. */
  nsPid: number;
  comm: string;
}

export interface GroupRow {
  /** What the group is shown as: unit name, `runtime:id12`, `pod:UID`, `slurm:job_N`, or the cgroup path. */
  group: string;
  /** The cgroup path (as /proc/PID/cgroup prints it) whose limits are shown; null when unknown. */
  cgroup: string | null;
  /** 1 = v1 memory hierarchy, 2 = unified; null when the process's cgroup could not be read. */
  hierarchy: CgroupVersion | null;
  unit: string | null;
  container: string | null;
  runtime: string | null;
  podUid: string | null;
  qosClass: string | null;
  slurmJob: string | null;
  slurmStep: string | null;
  /** Member processes that pin or lock (0 for a group shown for its rdma use or a near limit). */
  processes: number;
  pinnedBytes: number;
  lockedBytes: number;
  uringBytes: number;
  /** memory.max / memory.limit_in_bytes; null = no limit or unknown (see unreadableFiles, flags). */
  memoryLimitBytes: number | null;
  memoryUsageBytes: number | null;
  /** Limit minus pinned and locked bytes: what the group can still pin or lock before memory it cannot reclaim alone fills its limit. */
  memoryHeadroomBytes: number | null;
  /** memory.stat unevictable (v2) / total_unevictable (v1): mlocked and other unreclaimable pages charged to the group. */
  unevictableBytes: number | null;
  /** rdma.current / rdma.max per device; null when the group has no rdma controller files. */
  rdma: RdmaDeviceRow[] | null;
  flags: GroupFlag[];
  /** Files the kernel refused or that were malformed: their values are null, not zero. */
  unreadableFiles: string[];
  members: GroupMember[];
}

export interface GroupedStat {
  by: GroupBy;
  report: StatReport;
  groups: GroupRow[];
}

function objectHeadroom(device: { current: Record<string, number | null>; max: Record<string, number | null> }, key: string): number | null {
  const max = device.max[key];
  if (max === undefined || max === null) return null;
  return max - (device.current[key] ?? 0);
}

interface GroupLimits {
  memory: { limit: number | null; usage: number | null; unevictable: number | null } | null;
  rdma: RdmaDeviceRow[] | null;
  /** The tightest memory limit on the group's path and its ancestors. */
  memoryLimit: MemoryLimit | null;
  /** Every finite rdma.max key on the group's path and its ancestors. */
  rdmaLimits: RdmaLimit[];
  unreadableFiles: string[];
  gone: boolean;
}

/** The controller files of one grouping, each directory read once: groups share their ancestors. */
function cgroupReads(): CgroupFileReads {
  const memory = new Map<string, CgroupMemory>();
  const rdma = new Map<string, { devices: RdmaDeviceUsage[] | null } | { refused: unknown }>();
  return {
    memory(directory, version) {
      const key = `${version}\0${directory}`;
      let read = memory.get(key);
      if (!read) memory.set(key, (read = readCgroupMemory(directory, version)));
      return read;
    },
    rdma(directory) {
      let read = rdma.get(directory);
      if (!read) {
        try {
          read = { devices: readCgroupRdma(directory) };
        } catch (err) {
          if (!(err instanceof ProcUnreadableError)) throw err;
          read = { refused: err };
        }
        rdma.set(directory, read);
      }
      if ('refused' in read) throw read.refused;
      return read.devices;
    },
  };
}

function readLimits(path: string, version: CgroupVersion, mounts: CgroupMounts, reads: CgroupFileReads): GroupLimits {
  const unreadableFiles: string[] = [];
  let gone = false;
  let memory: GroupLimits['memory'] = null;
  let memoryLimit: MemoryLimit | null = null;
  const memoryAt = memoryMount(mounts, version);
  const memoryDir = memoryAt ? cgroupDirectory(memoryAt, path) : null;
  if (memoryAt && memoryDir !== null) {
    const read = reads.memory(memoryDir, version);
    unreadableFiles.push(...read.unreadable);
    const rdmaAt = rdmaMount(mounts)?.mount;
    const rdmaDir = rdmaAt ? cgroupDirectory(rdmaAt, path) : null;
    // Files missing because the directory is gone: the group was removed while we looked. A group
    // found in a v1 rdma hierarchy alone has no memory directory: unknown there, not gone.
    const onlyRdma = read.missing.length > 0 && !existsSync(memoryDir) && rdmaDir !== null && rdmaDir !== memoryDir && existsSync(rdmaDir);
    gone = read.missing.length > 0 && !existsSync(memoryDir) && !onlyRdma;
    if (!onlyRdma) {
      memory = { limit: read.limitBytes, usage: read.usageBytes, unevictable: read.unevictableBytes };
      memoryLimit = tightestLimit(memoryLimits(memoryAt, path, version, reads.memory).limits, (l) => l.headroomBytes);
    }
  }
  const rdmaAt = rdmaMount(mounts)?.mount;
  const rdmaDir = rdmaAt ? cgroupDirectory(rdmaAt, path) : null;
  let rdma: RdmaDeviceRow[] | null = null;
  let rdmaFound: RdmaLimit[] = [];
  if (rdmaAt && rdmaDir !== null) {
    try {
      rdma = reads.rdma(rdmaDir)?.map((d) => ({ ...d, objectsHeadroom: objectHeadroom(d, 'hca_object'), handlesHeadroom: objectHeadroom(d, 'hca_handle') })) ?? null;
    } catch (err) {
      if (!(err instanceof ProcUnreadableError)) throw err;
      unreadableFiles.push('rdma.current');
    }
    rdmaFound = rdmaLimits(rdmaAt, path, reads.rdma).limits;
  }
  return { memory, rdma, memoryLimit, rdmaLimits: rdmaFound, unreadableFiles, gone };
}

function emptyGroup(label: string, path: string | null, version: CgroupVersion | null, names: CgroupNames | null): GroupRow {
  return {
    group: label,
    cgroup: path,
    hierarchy: version,
    unit: names?.unit?.name ?? null,
    container: names?.container?.id ?? null,
    runtime: names?.container?.runtime ?? null,
    podUid: names?.pod?.uid ?? null,
    qosClass: names?.pod?.qosClass ?? null,
    slurmJob: names?.slurm?.jobId ?? null,
    slurmStep: names?.slurm?.step ?? null,
    processes: 0,
    pinnedBytes: 0,
    lockedBytes: 0,
    uringBytes: 0,
    memoryLimitBytes: null,
    memoryUsageBytes: null,
    memoryHeadroomBytes: null,
    unevictableBytes: null,
    rdma: null,
    flags: [],
    unreadableFiles: [],
    members: [],
  };
}

function finish(row: GroupRow, limits: GroupLimits | null, notices: ReadonlySet<CgroupNotice>): GroupRow {
  if (limits) {
    row.unreadableFiles.push(...limits.unreadableFiles);
    row.rdma = limits.rdma;
    if (limits.memory) {
      row.memoryLimitBytes = limits.memory.limit;
      row.memoryUsageBytes = limits.memory.usage;
      row.unevictableBytes = limits.memory.unevictable;
      if (limits.memory.limit !== null) row.memoryHeadroomBytes = limits.memory.limit - row.pinnedBytes - row.lockedBytes;
    }
  }
  // The tightest limit over the group's path and its ancestors, as doctor reads it; what the members
  // pin or lock counts even where it was charged elsewhere.
  const memoryLimit = limits?.memoryLimit;
  // A cgroup inside the group (a unit's sub-cgroup) near its own limit flags the group too.
  if ((memoryLimit && isNearLimit(Math.max(memoryLimit.usedBytes, row.pinnedBytes + row.lockedBytes), memoryLimit.limitBytes)) || notices.has('near-memory-limit')) row.flags.push('near-memory-limit');
  if (nearRdmaLimits(limits?.rdmaLimits ?? []).length > 0 || notices.has('near-rdma-limit')) row.flags.push('near-rdma-limit');
  if (row.unreadableFiles.length > 0) row.flags.push('unreadable');
  if (limits?.gone) row.flags.push('gone');
  return row;
}

/** What the scan read of a process for grouping: its NSpid line and, read in the same pass, its cgroups. */
export type ScannedProcess = Pick<ProcessSnapshot, 'nsPids' | 'cgroup'>;

export interface GroupOptions {
  /** The scan's record of a pid. A process whose cgroup the scan did not read has it read here. */
  scanned?: (pid: number) => ScannedProcess | undefined;
  mounts?: CgroupMounts;
  /**
   * Also the cgroups none of whose processes pins or locks, when one holds rdma objects or is near
   * its own memory or rdma limit (cgroupsOfNote walks the hierarchies for them): an on-demand-paging
   * pair at rdma.max, or a group about to be OOM-killed, pins nothing. Off when the rows are a
   * selection (some pids, some users): these groups belong to no selection.
   */
  groupsOfNote?: boolean;
}

/** A process's cgroups: as the scan read them, else read now; 'unreadable' when refused, null when it exited. */
function membershipsOf(pid: number, scanned: ScannedProcess | undefined): CgroupMembership[] | 'unreadable' | null {
  return scanned?.cgroup ?? readProcCgroupOrRefused(pid);
}

/** Groups process rows (those that pin or lock) by cgroup, unit or container, with each group's limits; with groupsOfNote, also the groups of note that hold none of them. */
export function groupProcesses(rows: readonly ProcessRow[], by: GroupBy, options: GroupOptions = {}): GroupRow[] {
  const mounts = options.mounts ?? readCgroupMounts();
  const reads = cgroupReads();
  const groups = new Map<string, { row: GroupRow; path: string | null; version: CgroupVersion | null; notices: Set<CgroupNotice> }>();
  for (const process of rows) {
    if (process.pinnedBytes === 0 && process.lockedBytes === 0) continue;
    const scanned = options.scanned?.(process.pid);
    const read = membershipsOf(process.pid, scanned);
    if (read === null) continue; // exited since the scan
    const refused = read === 'unreadable';
    const memberships = refused ? null : read;
    const primary = memberships ? primaryPath(memberships, mounts) : null;
    const key = primary ? groupKey(primary.path, by) : { label: '?', path: null };
    const mapKey = `${primary?.version ?? '-'}\0${key.label}\0${key.path ?? ''}`;
    let entry = groups.get(mapKey);
    if (!entry) {
      // Named by the group's own path (a unit's path, not a member's sub-cgroup under it).
      const own = key.path === null ? null : nameCgroup(key.path);
      entry = { row: emptyGroup(key.label, key.path, primary?.version ?? null, own), path: key.path, version: primary?.version ?? null, notices: new Set() };
      if (refused) entry.row.unreadableFiles.push('cgroup');
      groups.set(mapKey, entry);
    }
    const row = entry.row;
    row.processes++;
    row.pinnedBytes += process.pinnedBytes;
    row.lockedBytes += process.lockedBytes;
    row.uringBytes += process.uringBytes;
    const nsPids = scanned?.nsPids ?? [process.pid];
    row.members.push({ pid: process.pid, nsPid: nsPids[nsPids.length - 1] ?? process.pid, comm: process.comm });
  }
  const version = options.groupsOfNote ? groupingVersion(mounts) : null;
  if (version !== null) {
    for (const [path, notices] of cgroupsOfNote(mounts, version, reads)) {
      // Under --by unit or container a noted cgroup shows as the unit or container it is part of.
      const key = groupKey(path, by);
      const mapKey = `${version}\0${key.label}\0${key.path}`;
      let entry = groups.get(mapKey);
      if (!entry) groups.set(mapKey, (entry = { row: emptyGroup(key.label, key.path, version, nameCgroup(key.path)), path: key.path, version, notices: new Set() }));
      for (const notice of notices) entry.notices.add(notice);
    }
  }
  return [...groups.values()]
    .map(({ row, path, version, notices }) => finish(row, path !== null && version !== null ? readLimits(path, version, mounts, reads) : null, notices))
    .sort((a, b) => b.pinnedBytes - a.pinnedBytes || b.lockedBytes - a.lockedBytes || a.group.localeCompare(b.group));
}

/** `stat --by cgroup|unit|container`: the usual report from one scan, plus its holders grouped. */
export function collectGroupedStat(by: GroupBy, options: CollectOptions = {}): GroupedStat {
  // Each holder's /proc/PID/cgroup is read in the scan's pass, beside its status.
  const scan = scanProcesses(options.pids ? { pids: options.pids, cgroup: true } : { onlyHolding: !options.all, cgroup: true });
  const report = collectStat(options, scan);
  const scanned = new Map(scan.processes.map((p) => [p.pid, p] as const));
  const selection = options.pids !== undefined || options.uids !== undefined;
  return { by, report, groups: groupProcesses(report.processes, by, { scanned: (pid) => scanned.get(pid), groupsOfNote: !selection }) };
}

/** The cgroup, unit and container of each pid (for registration rows); null entries for unknown. */
export interface CgroupOwner {
  cgroup: string | null;
  unit: string | null;
  container: string | null;
}

export function cgroupOwners(pids: Iterable<number>, mounts: CgroupMounts = readCgroupMounts()): Map<number, CgroupOwner> {
  const owners = new Map<number, CgroupOwner>();
  for (const pid of pids) {
    if (owners.has(pid)) continue;
    const memberships = membershipsOf(pid, undefined);
    const primary = Array.isArray(memberships) ? primaryPath(memberships, mounts) : null;
    const names = primary ? nameCgroup(primary.path) : null;
    owners.set(pid, {
      cgroup: primary?.path ?? null,
      unit: names?.unit?.name ?? null,
      container: names?.container ? `${names.container.runtime}:${names.container.id}` : null,
    });
  }
  return owners;
}
