// The cgroup rules, in one place: which memory and rdma cgroup a process is charged to, the walk up
// its ancestors (a parent's limit caps its children too: hierarchical accounting), the tightest limit
// on that walk and when use counts as near a limit. cgroup.ts reads the files; doctor,
// `stat --by`, top and the exporter decide with these.
//
// The tightest limit is the one with the least room: limit minus the use of its own level (memory:
// usage less the page cache the group can drop; rdma: rdma.max − rdma.current of the key). A limit
// is near once the use of its level reaches NEAR_LIMIT_SHARE of it. Each resource (memory; each rdma
// device and key) is capped by its own tightest limit, so "near" is asked of each resource's.

import { ProcUnreadableError, type ProcPid } from './procfs.js';
import {
  MEMORY_FILES,
  cgroupAncestors,
  cgroupDirectory,
  listCgroupPaths,
  offersController,
  parseCgroupValue,
  readCgroupFile,
  readCgroupMemory,
  readCgroupMounts,
  readCgroupRdma,
  readProcCgroup,
  type CgroupMembership,
  type CgroupMemory,
  type CgroupMount,
  type CgroupMounts,
  type CgroupVersion,
  type RdmaDeviceUsage,
} from './cgroup.js';

/** A limit is "near" once use reaches this share of it (10 % headroom left). */
export const NEAR_LIMIT_SHARE = 0.9;

export function isNearLimit(used: number, limit: number): boolean {
  return used >= NEAR_LIMIT_SHARE * limit;
}

/** The path a process is grouped and charged by: its v1 memory cgroup when that controller is mounted, else its unified path. */
export function primaryPath(memberships: readonly CgroupMembership[], mounts: CgroupMounts): { path: string; version: CgroupVersion } | null {
  const memory = memberships.find((m) => m.hierarchyId !== 0 && m.controllers.includes('memory'));
  if (memory && mounts.v1.has('memory')) return { path: memory.path, version: 1 };
  const unified = memberships.find((m) => m.hierarchyId === 0);
  if (unified) return { path: unified.path, version: 2 };
  return memory ? { path: memory.path, version: 1 } : null;
}

/** The hierarchy primaryPath groups by on this host: v1 when a v1 memory controller is mounted, else the unified one; null with neither. */
export function groupingVersion(mounts: CgroupMounts): CgroupVersion | null {
  return mounts.v1.has('memory') ? 1 : mounts.v2 !== null ? 2 : null;
}

/** Where memory limits of a `version` path are read: the v1 memory hierarchy, or the unified one when it offers memory. */
export function memoryMount(mounts: CgroupMounts, version: CgroupVersion): CgroupMount | null {
  if (version === 1) return mounts.v1.get('memory') ?? null;
  return mounts.v2 !== null && offersController(mounts.v2, 'memory') ? mounts.v2 : null;
}

/** Where rdma limits are read: a v1 rdma hierarchy, else the unified one when it offers rdma. */
export function rdmaMount(mounts: CgroupMounts): { mount: CgroupMount; version: CgroupVersion } | null {
  const v1 = mounts.v1.get('rdma');
  if (v1) return { mount: v1, version: 1 };
  return mounts.v2 !== null && offersController(mounts.v2, 'rdma') ? { mount: mounts.v2, version: 2 } : null;
}

/** The rdma cgroup a process is charged to: its path in the rdma hierarchy; null without one. */
export function rdmaCgroupOf(memberships: readonly CgroupMembership[], mounts: CgroupMounts): { mount: CgroupMount; path: string } | null {
  const place = rdmaMount(mounts);
  if (!place) return null;
  const member = place.version === 1
    ? memberships.find((m) => m.hierarchyId !== 0 && m.controllers.includes('rdma'))
    : memberships.find((m) => m.hierarchyId === 0);
  return member ? { mount: place.mount, path: member.path } : null;
}

/** The finite limits on a walk up the ancestors; `refused` is the first file the kernel refused (its level is unknown). */
export interface LimitWalk<T> {
  limits: T[];
  refused: string | null;
}

export interface MemoryLimit {
  /** The cgroup (as /proc/PID/cgroup prints it) whose limit this is: the one walked from or an ancestor. */
  path: string;
  directory: string;
  limitBytes: number;
  usageBytes: number;
  /** Page cache the cgroup can drop to make room (active + inactive file pages). */
  reclaimableBytes: number;
  unevictableBytes: number | null;
  /** What the level uses and cannot drop: usage − reclaimable. */
  usedBytes: number;
  /** limit − usedBytes: what may still be faulted in or pinned under this limit. */
  headroomBytes: number;
}

/** Every memory limit on `path` and its ancestors (levels without a limit are left out). */
export function memoryLimits(mount: CgroupMount, path: string, version: CgroupVersion,
  read: (directory: string, version: CgroupVersion) => CgroupMemory = readCgroupMemory): LimitWalk<MemoryLimit> {
  const files = MEMORY_FILES[version];
  const limits: MemoryLimit[] = [];
  let refused: string | null = null;
  for (const level of cgroupAncestors(path)) {
    const directory = cgroupDirectory(mount, level);
    if (directory === null) break;
    const memory = read(directory, version);
    if (memory.unreadable.includes(files.limit) || (memory.limitBytes !== null && memory.usageBytes === null)) {
      refused ??= `${directory}/${memory.unreadable.includes(files.limit) ? files.limit : files.usage}`;
      continue;
    }
    const use = memoryLevelUse(memory);
    if (use === null) continue;
    limits.push({ path: level, directory, ...use, unevictableBytes: memory.unevictableBytes, headroomBytes: use.limitBytes - use.usedBytes });
  }
  return { limits, refused };
}

/** One level's limit and what it uses and cannot drop (usage less its page cache); null without a limit or usage. */
export function memoryLevelUse(memory: CgroupMemory): { limitBytes: number; usageBytes: number; reclaimableBytes: number; usedBytes: number } | null {
  if (memory.limitBytes === null || memory.usageBytes === null) return null;
  const stat = memory.stat;
  const file = memory.version === 1
    ? (stat?.get('total_active_file') ?? stat?.get('active_file') ?? 0) + (stat?.get('total_inactive_file') ?? stat?.get('inactive_file') ?? 0)
    : (stat?.get('active_file') ?? 0) + (stat?.get('inactive_file') ?? 0);
  const reclaimableBytes = Math.min(file, memory.usageBytes);
  return { limitBytes: memory.limitBytes, usageBytes: memory.usageBytes, reclaimableBytes, usedBytes: memory.usageBytes - reclaimableBytes };
}

export interface RdmaLimit {
  /** The cgroup (as /proc/PID/cgroup prints it) whose rdma.max sets the limit: the one walked from or an ancestor. */
  path: string;
  directory: string;
  device: string;
  /** The rdma.max key (hca_handle or hca_object). */
  key: string;
  max: number;
  current: number;
}

export const rdmaHeadroom = (limit: RdmaLimit): number => limit.max - limit.current;

/** Every finite rdma.max key on `path` and its ancestors, with rdma.current of its level. */
export function rdmaLimits(mount: CgroupMount, path: string,
  read: (directory: string) => RdmaDeviceUsage[] | null = readCgroupRdma): LimitWalk<RdmaLimit> {
  const limits: RdmaLimit[] = [];
  let refused: string | null = null;
  for (const level of cgroupAncestors(path)) {
    const directory = cgroupDirectory(mount, level);
    if (directory === null) break;
    let devices: RdmaDeviceUsage[] | null;
    try {
      devices = read(directory);
    } catch (err) {
      if (!(err instanceof ProcUnreadableError)) throw err;
      refused ??= `${directory}/rdma.max`;
      continue;
    }
    for (const device of devices ?? []) {
      for (const [key, max] of Object.entries(device.max)) {
        if (max !== null) limits.push({ path: level, directory, device: device.device, key, max, current: device.current[key] ?? 0 });
      }
    }
  }
  return { limits, refused };
}

/** The limit with the least room; of equals, the first (the nearest the cgroup walked from). */
export function tightestLimit<T>(limits: readonly T[], headroom: (limit: T) => number): T | null {
  let tightest: T | null = null;
  for (const limit of limits) if (tightest === null || headroom(limit) < headroom(tightest)) tightest = limit;
  return tightest;
}

/**
 * Each rdma resource's (device and key) tightest limit that is near; least room first, of equals
 * the first on the walk (so when the tightest limit of all is near, it comes first).
 */
export function nearRdmaLimits(limits: readonly RdmaLimit[]): RdmaLimit[] {
  const byResource = new Map<string, RdmaLimit[]>();
  for (const limit of limits) {
    const resource = `${limit.device}\0${limit.key}`;
    byResource.set(resource, [...(byResource.get(resource) ?? []), limit]);
  }
  const order = (limit: RdmaLimit): number => limits.indexOf(limit);
  return [...byResource.values()]
    .map((own) => tightestLimit(own, rdmaHeadroom)!)
    .filter((limit) => isNearLimit(limit.current, limit.max))
    .sort((a, b) => rdmaHeadroom(a) - rdmaHeadroom(b) || order(a) - order(b));
}

/** Every finite rdma.max entry that applies to `pid` (its cgroup and ancestors); [] when unknown or unreadable. */
export function findRdmaLimits(pid: ProcPid, mounts: CgroupMounts = readCgroupMounts()): RdmaLimit[] {
  try {
    const memberships = readProcCgroup(pid);
    const place = memberships && rdmaCgroupOf(memberships, mounts);
    return place ? rdmaLimits(place.mount, place.path).limits : [];
  } catch {
    return [];
  }
}

/**
 * The tightest rdma cgroup limit over a process: of every finite rdma.max key in its rdma cgroup and
 * each ancestor, the one with the least room left. null when no rdma controller is mounted here or
 * nothing is limited. Refused or vanished files are skipped: this only explains an error.
 */
export function findTightestRdmaLimit(pid: ProcPid, mounts: CgroupMounts = readCgroupMounts()): RdmaLimit | null {
  try {
    const memberships = readProcCgroup(pid);
    const place = memberships && rdmaCgroupOf(memberships, mounts);
    return place ? tightestLimit(rdmaLimits(place.mount, place.path).limits, rdmaHeadroom) : null;
  } catch {
    return null;
  }
}

/**
 * Why a cgroup is shown even when none of its processes pins or locks: it holds rdma objects (an
 * on-demand-paging MR, a PD or a context pin nothing), or its own memory or rdma limit is near.
 */
export type CgroupNotice = 'rdma-in-use' | 'near-memory-limit' | 'near-rdma-limit';

/** The notices one cgroup's own files give (ancestors are shown for their own). Pure. */
export function cgroupNotices(memory: CgroupMemory | null, rdma: readonly RdmaDeviceUsage[] | null): CgroupNotice[] {
  const notices: CgroupNotice[] = [];
  if (rdma?.some((device) => Object.values(device.current).some((used) => used !== null && used > 0))) notices.push('rdma-in-use');
  const use = memory === null ? null : memoryLevelUse(memory);
  if (use !== null && isNearLimit(use.usedBytes, use.limitBytes)) notices.push('near-memory-limit');
  const rdmaNear = rdma?.some((device) => Object.entries(device.max).some(([key, max]) => max !== null && isNearLimit(device.current[key] ?? 0, max)));
  if (rdmaNear) notices.push('near-rdma-limit');
  return notices;
}

/** How the walk reads a cgroup's controller files (shared with the grouping's cache: each directory read once). */
export interface CgroupFileReads {
  memory: (directory: string, version: CgroupVersion) => CgroupMemory;
  /** Throws ProcUnreadableError when refused. */
  rdma: (directory: string) => RdmaDeviceUsage[] | null;
}

/**
 * Every cgroup on this host with a notice, by its path in the grouping hierarchy (`version`): the
 * memory hierarchy and the rdma one are walked (once when they are the same). Cost: one readdir and
 * one limit-file read per cgroup; usage and memory.stat only where a limit is set; rdma.current and
 * rdma.max per cgroup of the rdma hierarchy. Files refused or gone are skipped: nothing to show.
 */
export function cgroupsOfNote(mounts: CgroupMounts, version: CgroupVersion, reads: CgroupFileReads): Map<string, CgroupNotice[]> {
  const found = new Map<string, CgroupNotice[]>();
  const note = (path: string, notices: readonly CgroupNotice[]): void => {
    if (notices.length > 0) found.set(path, [...new Set([...(found.get(path) ?? []), ...notices])]);
  };
  const memoryAt = memoryMount(mounts, version);
  const limitFile = MEMORY_FILES[version].limit;
  if (memoryAt) {
    for (const path of listCgroupPaths(memoryAt)) {
      const directory = cgroupDirectory(memoryAt, path);
      if (directory === null) continue;
      try {
        // Most cgroups set no limit: their usage and memory.stat are not read.
        const limit = readCgroupFile(directory, limitFile);
        if (limit === null || parseCgroupValue(limit) == null) continue;
      } catch (err) {
        if (!(err instanceof ProcUnreadableError)) throw err;
        continue;
      }
      note(path, cgroupNotices(reads.memory(directory, version), null));
    }
  }
  const rdmaAt = rdmaMount(mounts)?.mount;
  if (rdmaAt) {
    for (const path of listCgroupPaths(rdmaAt)) {
      const directory = cgroupDirectory(rdmaAt, path);
      if (directory === null) continue;
      let devices: RdmaDeviceUsage[] | null;
      try {
        devices = reads.rdma(directory);
      } catch (err) {
        if (!(err instanceof ProcUnreadableError)) throw err;
        continue;
      }
      note(path, cgroupNotices(null, devices));
    }
  }
  return found;
}
