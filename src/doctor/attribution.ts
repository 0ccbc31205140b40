// Checks that need to know which cgroup, systemd unit or container a process runs in: memlock.unit
// (LimitMEMLOCK= of the unit), container.runtime (runtime, id, IPC_LOCK in bounding vs effective
// set), cgroup.memory (memory.max vs usage + the request) and cgroup.rdma (rdma.max vs rdma.current).
//
// The cgroup readers live in src/proc (cgroup attribution); until they are wired in here, every one
// of these checks is reported as skipped, never as ok. The seam is `attribution`: set it to a reader
// and implement the checks against what it returns.

import { skipped, type DoctorContext, type Finding } from './types.js';

/** What the cgroup readers will tell about a process. */
export interface Attribution {
  cgroupPath: string;
  systemdUnit: string | null;
  container: { runtime: string; id: string } | null;
}

export type AttributionReader = (pid: number) => Attribution | null;

/** Not wired yet: the cgroup attribution readers provide this. */
export const attribution: AttributionReader | null = null;

export const NEEDS_ATTRIBUTION = 'needs cgroup attribution';

export const ATTRIBUTION_CHECKS = ['memlock.unit', 'container.runtime', 'cgroup.memory', 'cgroup.rdma'] as const;

export function attributionFindings(_ctx: DoctorContext): Finding[] {
  return ATTRIBUTION_CHECKS.map((id) => skipped(id, NEEDS_ATTRIBUTION));
}
