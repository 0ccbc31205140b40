// The records of `stat`, `top` and the exporter's per-process view: one field list each for text and
// JSON (keys are the stable interface), the sort keys, and the body of a `stat --json` document.

import { toJson, type Field } from '../lib/fields.js';
import type { ProcessRow, StatReport, SystemRow, UserRow } from './stat.js';

export const PROCESS_FIELDS: readonly Field<ProcessRow>[] = [
  { key: 'pid', label: 'PID', description: 'process id', get: (p) => p.pid },
  { key: 'user', label: 'USER', description: 'owner (real uid) by name', get: (p) => p.user },
  { key: 'uid', label: 'UID', description: 'owner (real uid)', get: (p) => p.uid, extra: true },
  { key: 'comm', label: 'COMM', description: 'command name (/proc/PID/status Name)', get: (p) => p.comm },
  { key: 'pinnedBytes', label: 'PINNED', description: 'pinned memory: VmPin (RDMA MRs, io_uring buffers)', kind: 'bytes', get: (p) => p.pinnedBytes },
  { key: 'lockedBytes', label: 'LOCKED', description: 'locked memory: VmLck (mlock)', kind: 'bytes', get: (p) => p.lockedBytes },
  { key: 'memlockLimitBytes', label: 'MEMLOCK', description: 'soft RLIMIT_MEMLOCK (null: unlimited)', kind: 'bytes', nullText: 'unlimited', get: (p) => p.memlockLimitBytes },
  { key: 'headroomBytes', label: 'HEADROOM', description: 'RLIMIT_MEMLOCK minus the larger of VmPin and VmLck (null: unlimited)', kind: 'bytes', nullText: '-', get: (p) => p.headroomBytes },
  { key: 'uringBytes', label: 'IO_URING', description: 'bytes in io_uring fixed buffers (fdinfo UserBufs)', kind: 'bytes', get: (p) => p.uringBytes, extra: true },
  { key: 'dontforkBytes', label: 'DONTFORK', description: 'bytes of the io_uring buffers marked MADV_DONTFORK (smaps VmFlags dc)', kind: 'bytes', get: (p) => p.dontforkBytes, extra: true },
  { key: 'doubleCountedBytes', label: 'COUNTED-TWICE', description: 'pinned bytes registered more than once (VmPin counts them again)', kind: 'bytes', get: (p) => p.doubleCountedBytes, extra: true },
  { key: 'flags', label: 'FLAGS', description: 'over-limit, dontfork, partial-dontfork, wipeonfork, overlap, io_uring, unreadable', get: (p) => p.flags },
];

export const USER_FIELDS: readonly Field<UserRow>[] = [
  { key: 'uid', label: 'UID', description: 'user id', get: (u) => u.uid },
  { key: 'user', label: 'USER', description: 'user name', get: (u) => u.user },
  { key: 'processes', label: 'PROCS', description: 'processes of this user that pin or lock', kind: 'count', get: (u) => u.processes },
  { key: 'pinnedBytes', label: 'PINNED', description: 'sum of VmPin of those processes', kind: 'bytes', get: (u) => u.pinnedBytes },
  { key: 'lockedBytes', label: 'LOCKED', description: 'sum of VmLck of those processes', kind: 'bytes', get: (u) => u.lockedBytes },
  { key: 'uringBytes', label: 'IO_URING', description: 'io_uring fixed buffers, charged to the user\'s locked memory across processes', kind: 'bytes', get: (u) => u.uringBytes },
];

export const SYSTEM_FIELDS: readonly Field<SystemRow>[] = [
  { key: 'pinnedBytes', label: 'PINNED', title: 'pinned (sum of VmPin)', description: 'sum of VmPin over all processes', kind: 'bytes', get: (s) => s.pinnedBytes },
  { key: 'lockedBytes', label: 'LOCKED', title: 'locked (sum of VmLck)', description: 'sum of VmLck over all processes', kind: 'bytes', get: (s) => s.lockedBytes },
  { key: 'mlockedBytes', label: 'MLOCKED', title: 'Mlocked (meminfo)', description: 'Mlocked in /proc/meminfo', kind: 'bytes', get: (s) => s.mlockedBytes },
  { key: 'unevictableBytes', label: 'UNEVICTABLE', title: 'Unevictable (meminfo)', description: 'Unevictable in /proc/meminfo', kind: 'bytes', get: (s) => s.unevictableBytes },
  { key: 'memTotalBytes', label: 'MEMTOTAL', title: 'MemTotal', description: 'MemTotal in /proc/meminfo', kind: 'bytes', get: (s) => s.memTotalBytes },
  { key: 'pinnedPercent', label: 'PINNED-SHARE', title: 'pinned share of MemTotal', description: 'pinnedBytes as a percentage of MemTotal', kind: 'percent', get: (s) => Math.round(s.pinnedPercent * 1000) / 1000 },
  { key: 'processesHolding', label: 'PROCESSES', title: 'processes pinning or locking', description: 'processes with VmPin or VmLck above zero', kind: 'count', get: (s) => s.processesHolding },
];

/** The body of a `stat --json` document (schema rdmactl.stat/1); `processFields` from -o. */
export function statJson(report: StatReport, processFields: readonly Field<ProcessRow>[] = PROCESS_FIELDS): { [key: string]: unknown } {
  return {
    processes: report.processes.map((p) => toJson(processFields, p)),
    users: report.users.map((u) => toJson(USER_FIELDS, u)),
    usersCover: report.usersCover,
    system: toJson(SYSTEM_FIELDS, report.system),
    scannedProcesses: report.scannedProcesses,
    unreadableProcesses: report.unreadableProcesses,
    scannedAt: new Date(report.scannedAt).toISOString(),
  };
}

