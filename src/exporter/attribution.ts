// Where extra labels and per-cgroup series come from. The default provider is cgroup attribution
// built on the `stat --by cgroup` collector (src/observe/cgroups.ts): one read of /proc/PID/cgroup
// per process that pins or locks (by the scan, in its pass), and each such group's memory and rdma
// controller files once; plus the cgroups that hold rdma objects or are near their own limit with no
// process pinning (a walk of the hierarchies, as `stat --by cgroup` makes).
// metrics.ts declares its label names from `processLabelNames` and turns `cgroups` rows into
// rdmactl_cgroup_* series; `noAttribution()` turns both off.

import { groupProcesses, type GroupRow, type ScannedProcess } from '../observe/cgroups.js';
import { readCgroupMounts, type CgroupMounts } from '../proc/cgroup.js';
import type { ProcessRow } from '../observe/stat.js';

/** One rdma.current / rdma.max entry of a cgroup: per device and resource (hca_handle, hca_object). */
export interface CgroupRdmaRow {
  device: string;
  resource: string;
  current: number;
  /** null = "max" (no limit). */
  max: number | null;
}

/** What a cgroup holds and may hold. Memory values: null = unknown (unreadable, or no memory hierarchy). */
export interface CgroupRow {
  /** Path below the cgroup root, e.g. /system.slice/foo.service. */
  cgroup: string;
  /** The same extra labels processes get (unit, container, pod); keys from processLabelNames. */
  labels: Record<string, string>;
  /** Processes of the cgroup that pin or lock (0 for a cgroup shown for its rdma use or a near limit). */
  processes: number;
  pinnedBytes: number;
  lockedBytes: number;
  memoryCurrentBytes: number | null;
  /** memory.max (v2) / memory.limit_in_bytes (v1); Infinity = no limit. */
  memoryMaxBytes: number | null;
  /** `stat --by cgroup`'s memoryHeadroomBytes (what the group can still pin or lock); Infinity = no limit. */
  memoryHeadroomBytes: number | null;
  /** memory.stat unevictable (v2) / total_unevictable (v1): mlocked pages charged to the group. */
  memoryUnevictableBytes: number | null;
  rdma: CgroupRdmaRow[];
}

/** What attribution adds to one collection. */
export interface Attributed {
  /** Values for processLabelNames per pid (missing pids and names are exported as ""). */
  processLabels: Map<number, Record<string, string>>;
  cgroups: CgroupRow[];
}

export interface Attribution {
  /**
   * Label names added to every per-process series, fixed for the exporter's lifetime (a metric keeps
   * one label set). The per-cgroup series carry them too.
   */
  readonly processLabelNames: readonly string[];
  /**
   * Labels and per-cgroup rows for the processes of one collection (those that pin or lock).
   * `fullScan`: the collection read every process; machine-wide state an attribution keeps (the
   * cgroup mounts) is read again then. `scanned`: what the scan read of each process.
   */
  attribute(processes: readonly ProcessRow[], fullScan?: boolean, scanned?: (pid: number) => ScannedProcess | undefined): Attributed;
  /** attribute() wants each holder's /proc/PID/cgroup read by the scan, in its pass (`scanned`). */
  readonly readsCgroups?: boolean;
}

/** No attribution: no extra labels, no cgroup rows. */
export function noAttribution(): Attribution {
  return {
    processLabelNames: [],
    attribute: () => ({ processLabels: new Map(), cgroups: [] }),
  };
}

/**
 * The labels cgroup attribution adds. Bounded: each holding process has one value of each, and only
 * the --max-processes largest holders get series of their own.
 */
export const CGROUP_LABEL_NAMES = ['unit', 'container', 'pod'] as const;

const LIMIT_FILES = new Set(['memory.max', 'memory.limit_in_bytes']);

/** unit, container (runtime:id, as `ls -o container`), pod (uid); "" where the path names none. */
function groupLabels(group: GroupRow): Record<string, string> {
  return {
    unit: group.unit ?? '',
    container: group.container !== null ? `${group.runtime ?? 'unknown'}:${group.container}` : '',
    pod: group.podUid ?? '',
  };
}

function rdmaRows(group: GroupRow): CgroupRdmaRow[] {
  const rows: CgroupRdmaRow[] = [];
  for (const device of group.rdma ?? []) {
    const resources = [...new Set([...Object.keys(device.current), ...Object.keys(device.max)])].sort();
    for (const resource of resources) {
      // A key missing from rdma.max is unlimited (the kernel prints only set limits on some versions).
      rows.push({ device: device.device, resource, current: device.current[resource] ?? 0, max: device.max[resource] ?? null });
    }
  }
  return rows;
}

/** A `stat --by cgroup` row as the exporter's cgroup row; null for processes whose cgroup was refused. */
export function cgroupRow(group: GroupRow): CgroupRow | null {
  if (group.cgroup === null) return null;
  const gone = group.flags.includes('gone');
  const limitUnknown = gone || group.unreadableFiles.some((f) => LIMIT_FILES.has(f));
  const memoryMaxBytes = limitUnknown ? null : group.memoryLimitBytes ?? Infinity;
  return {
    cgroup: group.cgroup,
    labels: groupLabels(group),
    processes: group.processes,
    pinnedBytes: group.pinnedBytes,
    lockedBytes: group.lockedBytes,
    memoryCurrentBytes: gone ? null : group.memoryUsageBytes,
    memoryMaxBytes,
    // stat --by's headroom; a group with no limit has room without end.
    memoryHeadroomBytes: memoryMaxBytes === null ? null : group.memoryHeadroomBytes ?? Infinity,
    memoryUnevictableBytes: gone ? null : group.unevictableBytes,
    rdma: gone ? [] : rdmaRows(group),
  };
}

export interface CgroupAttributionOptions {
  /**
   * The grouping (default: the `stat --by cgroup` collector on this machine's cgroup mounts, read
   * at the first collection and at every full scan: a cgroup mount changes far less often).
   */
  group?: (processes: readonly ProcessRow[], fullScan: boolean, scanned?: (pid: number) => ScannedProcess | undefined) => GroupRow[];
}

/** Cgroup attribution: unit / container / pod labels and per-cgroup series. */
export function cgroupAttribution(options: CgroupAttributionOptions = {}): Attribution {
  let mounts: CgroupMounts | null = null;
  const group = options.group ?? ((processes, fullScan, scanned) => {
    if (mounts === null || fullScan) mounts = readCgroupMounts();
    // Every cgroup of note gets series too, though no process of it pins or locks (one walk of the hierarchies per collection).
    return groupProcesses(processes, 'cgroup', { mounts, groupsOfNote: true, ...(scanned ? { scanned } : {}) });
  });
  return {
    processLabelNames: CGROUP_LABEL_NAMES,
    readsCgroups: true,
    attribute(processes, fullScan = true, scanned) {
      const processLabels = new Map<number, Record<string, string>>();
      const cgroups: CgroupRow[] = [];
      for (const g of group(processes, fullScan, scanned)) {
        const row = cgroupRow(g);
        if (row === null) continue;
        cgroups.push(row);
        // Grouped by cgroup, every member's own path is the group's path: its names are the group's.
        for (const member of g.members) processLabels.set(member.pid, row.labels);
      }
      return { processLabels, cgroups };
    },
  };
}
