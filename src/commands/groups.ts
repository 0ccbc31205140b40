// Fields and printing of grouped rows (`stat --by cgroup|unit|container`, `top --json --by`): one
// field list for text and JSON, like every other record.

import type { GroupRow, RdmaDeviceRow } from '../observe/cgroups.js';
import { formatBytes } from '../lib/size.js';
import { renderTable, toJson, type Field, type JsonValue } from '../lib/fields.js';

export const GROUP_BY_CHOICES = ['cgroup', 'unit', 'container', 'user'] as const;
export type GroupByChoice = (typeof GROUP_BY_CHOICES)[number];

function limitText(value: number | null, key: string): string {
  return value === null ? 'max' : key === 'mr_bytes' ? formatBytes(value) : String(value);
}

/** `rxe0 obj 5/5 hdl 1/max` per device: current/max of each key the kernel gave. */
export function rdmaText(devices: readonly RdmaDeviceRow[] | null): string | null {
  if (devices === null) return null;
  if (devices.length === 0) return 'none';
  const short: Record<string, string> = { hca_object: 'obj', hca_handle: 'hdl' };
  return devices
    .map((d) => {
      const keys = [...new Set([...Object.keys(d.current), ...Object.keys(d.max)])].sort((a, b) => (a === 'hca_object' ? -1 : b === 'hca_object' ? 1 : a.localeCompare(b)));
      return [d.device, ...keys.map((k) => `${short[k] ?? k} ${d.current[k] ?? 0}/${limitText(d.max[k] ?? null, k)}`)].join(' ');
    })
    .join('; ');
}

function rdmaJson(devices: readonly RdmaDeviceRow[] | null): JsonValue {
  return devices === null ? null : devices.map((d) => ({ device: d.device, current: { ...d.current }, max: { ...d.max }, objectsHeadroom: d.objectsHeadroom, handlesHeadroom: d.handlesHeadroom }));
}

export const GROUP_FIELDS: readonly Field<GroupRow>[] = [
  { key: 'group', label: 'GROUP', get: (g) => g.group },
  { key: 'cgroup', label: 'CGROUP', get: (g) => g.cgroup, jsonOnly: true },
  { key: 'hierarchy', label: 'HIERARCHY', get: (g) => g.hierarchy, jsonOnly: true },
  { key: 'unit', label: 'UNIT', get: (g) => g.unit, jsonOnly: true },
  { key: 'container', label: 'CONTAINER', get: (g) => g.container, jsonOnly: true },
  { key: 'runtime', label: 'RUNTIME', get: (g) => g.runtime, jsonOnly: true },
  { key: 'podUid', label: 'POD', get: (g) => g.podUid, jsonOnly: true },
  { key: 'qosClass', label: 'QOS', get: (g) => g.qosClass, jsonOnly: true },
  { key: 'slurmJob', label: 'JOB', get: (g) => g.slurmJob, jsonOnly: true },
  { key: 'slurmStep', label: 'STEP', get: (g) => g.slurmStep, jsonOnly: true },
  { key: 'processes', label: 'PROCS', kind: 'count', get: (g) => g.processes },
  { key: 'pinnedBytes', label: 'PINNED', kind: 'bytes', get: (g) => g.pinnedBytes },
  { key: 'lockedBytes', label: 'LOCKED', kind: 'bytes', get: (g) => g.lockedBytes },
  { key: 'uringBytes', label: 'IO_URING', kind: 'bytes', get: (g) => g.uringBytes, jsonOnly: true },
  { key: 'memoryLimitBytes', label: 'MEM LIMIT', kind: 'bytes', nullText: 'max', get: (g) => g.memoryLimitBytes },
  { key: 'memoryHeadroomBytes', label: 'HEADROOM', kind: 'bytes', get: (g) => g.memoryHeadroomBytes },
  { key: 'memoryUsageBytes', label: 'MEM USED', kind: 'bytes', get: (g) => g.memoryUsageBytes },
  { key: 'unevictableBytes', label: 'UNEVICTABLE', kind: 'bytes', get: (g) => g.unevictableBytes },
  { key: 'rdma', label: 'RDMA (cur/max)', get: (g) => rdmaJson(g.rdma) },
  { key: 'flags', label: 'FLAGS', get: (g) => g.flags },
  { key: 'unreadableFiles', label: 'UNREADABLE', get: (g) => g.unreadableFiles, jsonOnly: true },
  { key: 'members', label: 'MEMBERS', get: (g) => g.members.map((m) => ({ pid: m.pid, nsPid: m.nsPid, comm: m.comm })), jsonOnly: true },
];

/** Text columns: the rdma list as one `dev obj cur/max` cell, everything else as GROUP_FIELDS shows it. */
const GROUP_TEXT_FIELDS: readonly Field<GroupRow>[] = GROUP_FIELDS.map((f) => (f.key === 'rdma' ? { ...f, get: (g: GroupRow) => rdmaText(g.rdma) } : f));

export function groupsJson(groups: readonly GroupRow[]): JsonValue[] {
  return groups.map((g) => toJson(GROUP_FIELDS, g));
}

export function groupsTable(groups: readonly GroupRow[]): string {
  return renderTable(GROUP_TEXT_FIELDS, groups);
}
