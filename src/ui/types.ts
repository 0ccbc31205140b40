// Data the dashboard renders. Types only: the dashboard bundle imports nothing else from outside
// src/ui except through these shapes and the callbacks in DashboardActions.

import type { ProcessRow, StatReport } from '../observe/stat.js';
import type { RegistrationRow } from '../observe/registrations.js';
import type { GroupBy, GroupRow } from '../observe/cgroups.js';

/** How a row changed since the previous refresh (shown highlighted for one refresh). */
export type RowMark = 'new' | 'growing' | 'exiting' | null;

export interface DisplayRow extends ProcessRow {
  mark: RowMark;
}

export interface DeviceSummary {
  /** False when the kernel MR table could not be read (e.g. no RDMA device). */
  available: boolean;
  reason: string | null;
  /** MR count per RDMA device name. */
  mrsByDevice: Record<string, number>;
}

export interface HeldSummary {
  available: boolean;
  reason: string | null;
  /** Live held registrations (all users we can see). */
  count: number;
  /** pid → ids of live held registrations of that process. */
  idsByPid: Record<number, string[]>;
}

export interface Snapshot {
  /** Increases with every refresh. */
  seq: number;
  report: StatReport;
  /** Processes that pin or lock, with change marks; exiting rows carried one refresh. */
  rows: DisplayRow[];
  /** Total pinned bytes, oldest first (one value per refresh). */
  history: number[];
  devices: DeviceSummary;
  held: HeldSummary;
  paused: boolean;
  intervalMs: number;
  /** Last collector failure, if the latest refresh failed (the previous data stays). */
  error: string | null;
}

/** What the sampler offers to hooks; a fake one in tests. */
export interface SnapshotSource {
  subscribe(listener: () => void): () => void;
  getSnapshot(): Snapshot | null;
  pause(): void;
  resume(): void;
  isPaused(): boolean;
}

export interface LockedRange {
  start: bigint;
  end: bigint;
  what: string;
}

export interface ProcessDetailView {
  pid: number;
  comm: string;
  user: string;
  /** Null once the process has gone. */
  gone: boolean;
  pinnedBytes: number;
  lockedBytes: number;
  memlockSoftBytes: number | null;
  memlockHardBytes: number | null;
  registrations: RegistrationRow[];
  lockedRanges: LockedRange[];
  dontforkRanges: LockedRange[];
  /** Why some parts are missing (unreadable smaps/fds, no RDMA device). */
  notes: string[];
}

export interface DashboardDeregOutcome {
  ok: boolean;
  message: string;
}

/** Work the dashboard asks for; implemented outside React (src/ui/collectors.ts). */
export interface DashboardActions {
  loadDetail(pid: number): ProcessDetailView;
  /** Deregister these held registrations (ids of one process). */
  deregister(ids: string[]): Promise<DashboardDeregOutcome>;
  /** The grouped view (key g): these processes by cgroup, unit or container, with each group's limits. */
  groups?(by: GroupBy, processes: readonly ProcessRow[]): GroupRow[];
}
