// Fields and printing of grouped rows (`stat --by cgroup|unit|container`, `top --json --by`): one
// field list for text and JSON, like every other record.

import type { GroupRow, RdmaDeviceRow } from './cgroups.js';
import { formatBytes } from '../lib/size.js';
import { toJson, type Field, type JsonValue } from '../lib/fields.js';

export const GROUP_BY_CHOICES = ['cgroup', 'unit', 'container', 'user'] as const;
export type GroupByChoice = (typeof GROUP_BY_CHOICES)[number];

function rdmaLimitText(value: number | null, key: string): string {
  return value === null ? 'max' : key === 'mr_bytes' ? formatBytes(value) : String(value);
}

/** `rxe0:obj=5/5,hdl=1/max` per device (`;` between devices): current/max of each key the kernel gave, one word for plain tables. */
export function rdmaText(devices: readonly RdmaDeviceRow[] | null): string | null {
  if (devices === null) return null;
  if (devices.length === 0) return 'none';
  const short: Record<string, string> = { hca_object: 'obj', hca_handle: 'hdl' };
  return devices
    .map((d) => {
      const keys = [...new Set([...Object.keys(d.current), ...Object.keys(d.max)])].sort((a, b) => (a === 'hca_object' ? -1 : b === 'hca_object' ? 1 : a.localeCompare(b)));
      return `${d.device}:${keys.map((k) => `${short[k] ?? k}=${d.current[k] ?? 0}/${rdmaLimitText(d.max[k] ?? null, k)}`).join(',')}`;
    })
    .join(';');
}

function rdmaJson(devices: readonly RdmaDeviceRow[] | null): JsonValue {
  return devices === null ? null : devices.map((d) => ({ device: d.device, current: { ...d.current }, max: { ...d.max }, objectsHeadroom: d.objectsHeadroom, handlesHeadroom: d.handlesHeadroom }));
}

export const GROUP_FIELDS: readonly Field<GroupRow>[] = [
  { key: 'group', label: 'GROUP', description: 'the group: cgroup path, systemd unit, or container/pod/job name, per --by', get: (g) => g.group },
  { key: 'cgroup', label: 'CGROUP', description: 'cgroup path (in the memory hierarchy on v1, the unified one on v2)', get: (g) => g.cgroup, extra: true },
  { key: 'hierarchy', label: 'HIERARCHY', description: 'which hierarchy the path is in: v1 memory or v2 unified', get: (g) => g.hierarchy, extra: true },
  { key: 'unit', label: 'UNIT', description: 'systemd unit (service, scope or slice) from the cgroup path', get: (g) => g.unit, extra: true },
  { key: 'container', label: 'CONTAINER', description: 'container id (docker, containerd, cri-o, podman) from the cgroup path', get: (g) => g.container, extra: true },
  { key: 'runtime', label: 'RUNTIME', description: 'container runtime the path names', get: (g) => g.runtime, extra: true },
  { key: 'podUid', label: 'POD', description: 'Kubernetes pod uid from a kubepods path', get: (g) => g.podUid, extra: true },
  { key: 'qosClass', label: 'QOS', description: 'Kubernetes QoS class: guaranteed, burstable or besteffort', get: (g) => g.qosClass, extra: true },
  { key: 'slurmJob', label: 'JOB', description: 'Slurm job id (job_N)', get: (g) => g.slurmJob, extra: true },
  { key: 'slurmStep', label: 'STEP', description: 'Slurm step (step_N)', get: (g) => g.slurmStep, extra: true },
  { key: 'processes', label: 'PROCS', description: 'processes of the group that pin or lock', kind: 'count', get: (g) => g.processes },
  { key: 'pinnedBytes', label: 'PINNED', description: 'sum of VmPin of those processes', kind: 'bytes', get: (g) => g.pinnedBytes },
  { key: 'lockedBytes', label: 'LOCKED', description: 'sum of VmLck of those processes', kind: 'bytes', get: (g) => g.lockedBytes },
  { key: 'uringBytes', label: 'IO_URING', description: 'io_uring fixed-buffer bytes of those processes', kind: 'bytes', get: (g) => g.uringBytes, extra: true },
  { key: 'memoryLimitBytes', label: 'MEM-LIMIT', description: 'memory.max (v2) or memory.limit_in_bytes (v1); null = max', kind: 'bytes', nullText: 'max', get: (g) => g.memoryLimitBytes },
  { key: 'memoryHeadroomBytes', label: 'HEADROOM', description: 'memory limit minus pinned and locked', kind: 'bytes', get: (g) => g.memoryHeadroomBytes },
  { key: 'memoryUsageBytes', label: 'MEM-USED', description: 'memory.current (v2) or memory.usage_in_bytes (v1)', kind: 'bytes', get: (g) => g.memoryUsageBytes },
  { key: 'unevictableBytes', label: 'UNEVICTABLE', description: 'unevictable bytes charged to the group (memory.stat): mlocked pages', kind: 'bytes', get: (g) => g.unevictableBytes },
  { key: 'rdma', label: 'RDMA', description: 'rdma.current / rdma.max per device (hca_handle, hca_object)', get: (g) => rdmaJson(g.rdma) },
  { key: 'flags', label: 'FLAGS', description: 'near-memory-limit, near-rdma-limit, unreadable, gone', get: (g) => g.flags },
  { key: 'unreadableFiles', label: 'UNREADABLE', description: 'cgroup files the kernel refused to show us', get: (g) => g.unreadableFiles, extra: true },
  { key: 'members', label: 'MEMBERS', description: 'the member processes: pid, pid in its namespace, comm', get: (g) => g.members.map((m) => ({ pid: m.pid, nsPid: m.nsPid, comm: m.comm })), extra: true },
];

/** Text columns: the rdma list as one `dev obj cur/max` cell, everything else as GROUP_FIELDS shows it. */
export const GROUP_TEXT_FIELDS: readonly Field<GroupRow>[] = GROUP_FIELDS.map((f) => (f.key === 'rdma' ? { ...f, get: (g: GroupRow) => rdmaText(g.rdma) } : f));

export function groupsJson(groups: readonly GroupRow[]): JsonValue[] {
  return groups.map((g) => toJson(GROUP_FIELDS, g));
}

