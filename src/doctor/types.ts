// The vocabulary of `rdmactl doctor`: a finding per check, the request being diagnosed, and the
// facts about the target process that several checks share (read once).

import type { Backing, BackendName } from '../engine/types.js';
import type { JsonValue } from '../lib/fields.js';
import type { CgroupMembership, CgroupMounts, CgroupVersion } from '../proc/cgroup.js';
import type { ProcessStatus } from '../proc/status.js';
import type { ContainerRuntime } from '../observe/cgroupNames.js';
import type { RootConfig } from './limitsConf.js';

export type FindingStatus = 'ok' | 'warn' | 'fail' | 'skip';
export const FINDING_STATUSES: readonly FindingStatus[] = ['ok', 'warn', 'fail', 'skip'];

/**
 * Evidence read from the kernel. Keys are stable (they are part of --json): byte counts end in
 * "Bytes", files are absolute paths, pids are numbers.
 */
export type Evidence = { [key: string]: JsonValue };

export interface Finding {
  /** Stable id, "group.check", e.g. memlock.limit. */
  id: string;
  status: FindingStatus;
  /** One line: what was found. */
  summary: string;
  evidence: Evidence;
  /** Concrete steps for the environment found; empty when nothing needs doing. */
  fix: string[];
  /** Why the check could not run (status skip); null otherwise. */
  reason: string | null;
}

/** What the user asks about: "will registering SIZE with BACKEND work for the target?" */
export interface DoctorRequest {
  sizeBytes: number | null;
  backend: BackendName | null;
  backing: Backing;
  /** verbs IBV_ACCESS_* bits (null: the default access of `reg`). */
  access: number | null;
}

/** The process being diagnosed, read once. */
export interface Target {
  pid: number;
  /** True when the target is rdmactl itself: the environment of the shell that started it. */
  self: boolean;
  status: ProcessStatus;
  statusText: string;
  /** RLIMIT_MEMLOCK; null = unlimited. */
  softBytes: number | null;
  hardBytes: number | null;
  capEff: bigint;
  /** Supplementary groups from the status Groups: line. */
  groups: number[];
}

/** What the cgroup readers tell about a process. */
export interface ProcessAttribution {
  /** The path its limits are read at: the v1 memory cgroup on v1/hybrid hosts, else the unified one. */
  cgroupPath: string;
  version: CgroupVersion;
  /** The deepest .service/.scope on any of its cgroup paths (else the deepest .slice), with its own path. */
  systemdUnit: { name: string; path: string } | null;
  container: { runtime: ContainerRuntime; id: string; path: string } | null;
  memberships: CgroupMembership[];
  mounts: CgroupMounts;
}

export interface DoctorOptions {
  request: DoctorRequest;
  /** Where /etc is read from (limits.conf; passwd and group unless it is this machine's /, where NSS answers): "/" or an image/chroot to check. */
  root: string;
}

export interface DoctorContext extends DoctorOptions {
  target: Target;
  pageBytes: number;
  kernelRelease: string;
  /** The target's cgroup, systemd unit and container; null when its cgroup cannot be read. */
  attribution: ProcessAttribution | null;
  /** limits.conf and limits.d under `root`, and the target's account, read once. */
  config: RootConfig;
}

/** A finding with no evidence yet; checks fill it in. */
export function finding(id: string, status: FindingStatus, summary: string, evidence: Evidence = {}, fix: string[] = []): Finding {
  return { id, status, summary, evidence, fix, reason: null };
}

export function skipped(id: string, reason: string, evidence: Evidence = {}): Finding {
  return { id, status: 'skip', summary: `skipped: ${reason}`, evidence, fix: [], reason };
}
