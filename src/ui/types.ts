// Data the dashboard renders. Types only: the dashboard bundle imports nothing else from outside
// src/ui except through these shapes and the callbacks in DashboardActions.

import type { ProcessRow, StatReport } from '../observe/stat.js';
import type { RegistrationRow } from '../observe/registrations.js';
import type { GroupBy, GroupRow } from '../observe/cgroups.js';
import type { TraceOp, TraceSourceName } from '../trace/types.js';

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

/** RLIMIT_MEMLOCK as /proc/PID/limits gives it: a null limit is unlimited. */
export interface MemlockLimit {
  softBytes: number | null;
  hardBytes: number | null;
}

/** One process in detail, read while it runs. */
export interface LiveProcessDetail {
  state: 'live';
  pid: number;
  comm: string;
  user: string;
  /** When this was read (epoch ms): the "last seen" of the exited view that may follow. */
  readAt: number;
  pinnedBytes: number;
  lockedBytes: number;
  /** Null when /proc/PID/limits could not be read (then the limit is unknown, not unlimited). */
  memlock: MemlockLimit | null;
  registrations: RegistrationRow[];
  lockedRanges: LockedRange[];
  dontforkRanges: LockedRange[];
  /** Why some parts are missing (unreadable smaps/fds, no RDMA device). */
  notes: string[];
}

/** A process that has exited (or is a zombie): nothing of it is left to read but who it was. */
export interface ExitedProcessDetail {
  state: 'exited';
  pid: number;
  /** Name and owner when last read; null when it was already gone at the first read. */
  comm: string | null;
  user: string | null;
  /** When it was last read running (epoch ms); null when it was already gone at the first read. */
  lastSeenAt: number | null;
  /** Exited but not yet reaped by its parent. */
  zombie: boolean;
}

export type ProcessDetailView = LiveProcessDetail | ExitedProcessDetail;

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

/** One traced event as the events pane shows it (src/ui/eventsFeed.ts keeps the latest). */
export interface EventRow {
  /** Wall-clock time of the event, ms since the epoch. */
  wallMs: number;
  pid: number;
  /** As the kernel recorded it: escaped when shown. */
  comm: string;
  source: TraceSourceName;
  op: TraceOp;
  bytes: number | null;
  latencyNs: number | null;
  /** null on success. */
  errno: string | null;
}

/** One process's successful registrations and mlocks over the last rate window. */
export interface ProcessRate {
  pid: number;
  comm: string;
  perSecond: number;
  bytesPerSecond: number;
  /** Failed calls in the same window. */
  failures: number;
}

export interface EventsSnapshot {
  /** starting: the session is being set up; unavailable: it could not start; failed: it stopped with an error. */
  state: 'starting' | 'tracing' | 'unavailable' | 'failed';
  /** Why there is no tracing (unavailable, failed); null otherwise. One line. */
  reason: string | null;
  /** Sources in use. */
  sources: TraceSourceName[];
  /** The latest events, oldest first. */
  events: EventRow[];
  /** Events seen since the start. */
  total: number;
  /** Events the kernel dropped (its buffer was full). */
  lost: number;
  /** By registrations per second, highest first. */
  rates: ProcessRate[];
  rateWindowMs: number;
}

/** What the events pane's hook subscribes to; a fake one in tests. */
export interface EventsSource {
  subscribe(listener: () => void): () => void;
  getSnapshot(): EventsSnapshot;
}
