// The dashboard's data source, outside React: owns the refresh timer, runs the collectors, keeps the
// pinned-memory history for the sparkline and the mark-and-sweep diff (new / growing / exiting rows,
// like htop: a row that disappears is kept one more refresh, marked), and tells subscribers when a
// new snapshot is ready. Hooks read it through useSyncExternalStore; `top --json` uses it directly.

import { collectStat, type ProcessRow, type StatReport } from '../observe/stat.js';
import { collectGroupedStat, type GroupRow } from '../observe/cgroups.js';
import { deviceSummary, heldSummary, TOP_FULL_SCAN_EVERY_MS, TOP_SMAPS_MAX_AGE_MS, type HeldApi } from './collectors.js';
import { groupsJson, type GroupByChoice } from '../observe/groupFields.js';
import { statJson } from '../observe/statFields.js';
import { sortRows, type SortOrder } from './format.js';
import { IncrementalScanner } from '../proc/incremental.js';
import type { DeviceSummary, DisplayRow, HeldSummary, Snapshot, SnapshotSource } from './types.js';

export const DEFAULT_HISTORY = 300;

export interface SamplerOptions {
  intervalMs: number;
  /** One /proc scan → report (default: collectStat(), holders only). */
  collect?: () => StatReport;
  /** MR counts per RDMA device; omitted → reported as unavailable and never run. */
  devices?: () => DeviceSummary;
  /** Held registrations; omitted → reported as unavailable and never run. */
  held?: () => HeldSummary;
  /** How many refreshes the sparkline history keeps. */
  historyLength?: number;
  /** Timer functions (tests use fake ones). */
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (handle: unknown) => void;
}

const NO_DEVICES: DeviceSummary = { available: false, reason: 'not collected', mrsByDevice: {} };
const NO_HELD: HeldSummary = { available: false, reason: 'not collected', count: 0, idsByPid: {} };

/**
 * Mark and sweep: rows whose pid was not there before are 'new' (or whose comm changed: pid reuse),
 * rows that pin or lock more than before are 'growing', and rows that were there but are gone now come
 * back once as 'exiting' (and are dropped on the refresh after).
 */
export function markRows(previous: readonly DisplayRow[] | null, current: readonly ProcessRow[]): DisplayRow[] {
  if (previous === null) return current.map((row) => ({ ...row, mark: null }));
  const before = new Map<number, DisplayRow>();
  for (const row of previous) if (row.mark !== 'exiting') before.set(row.pid, row);
  const rows: DisplayRow[] = current.map((row) => {
    const old = before.get(row.pid);
    if (!old || old.comm !== row.comm) return { ...row, mark: 'new' };
    const growing = row.pinnedBytes > old.pinnedBytes || row.lockedBytes > old.lockedBytes;
    return { ...row, mark: growing ? 'growing' : null };
  });
  const present = new Set(current.map((row) => row.pid));
  for (const old of before.values()) {
    if (!present.has(old.pid)) rows.push({ ...old, mark: 'exiting' });
  }
  return rows;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export class Sampler implements SnapshotSource {
  private readonly options: SamplerOptions;
  private readonly listeners = new Set<() => void>();
  private snapshot: Snapshot | null = null;
  private history: number[] = [];
  private timer: unknown = null;
  private paused = false;
  private stopped = false;
  private started = false;
  private seq = 0;

  constructor(options: SamplerOptions) {
    this.options = options;
  }

  /** Takes the first sample now (so the first frame has data) and starts the timer. */
  start(): Snapshot {
    if (this.stopped) throw new Error('sampler already stopped');
    if (!this.started) {
      this.started = true;
      this.sample(true);
      this.schedule();
    }
    return this.snapshot!;
  }

  /** One sample now, outside the timer. The first sample's collector errors are thrown. */
  sample(throwErrors = false): Snapshot {
    let report: StatReport;
    try {
      report = (this.options.collect ?? (() => collectStat()))();
    } catch (err) {
      if (throwErrors || this.snapshot === null) throw err;
      this.publish({ ...this.snapshot, error: message(err) });
      return this.snapshot;
    }
    const devices = this.safely(this.options.devices, NO_DEVICES, (reason) => ({ available: false, reason, mrsByDevice: {} }));
    const held = this.safely(this.options.held, NO_HELD, (reason) => ({ available: false, reason, count: 0, idsByPid: {} }));
    this.history.push(report.system.pinnedBytes);
    const keep = this.options.historyLength ?? DEFAULT_HISTORY;
    if (this.history.length > keep) this.history = this.history.slice(-keep);
    this.publish({
      seq: ++this.seq,
      report,
      rows: markRows(this.snapshot?.rows ?? null, report.processes),
      history: [...this.history],
      devices,
      held,
      paused: this.paused,
      intervalMs: this.options.intervalMs,
      error: null,
    });
    return this.snapshot!;
  }

  private safely<T>(collector: (() => T) | undefined, missing: T, failed: (reason: string) => T): T {
    if (!collector) return missing;
    try {
      return collector();
    } catch (err) {
      return failed(message(err));
    }
  }

  private publish(snapshot: Snapshot): void {
    this.snapshot = snapshot;
    for (const listener of [...this.listeners]) listener();
  }

  private schedule(): void {
    if (this.stopped || this.paused || this.timer !== null) return;
    const set = this.options.setTimer ?? ((fn, ms) => setTimeout(fn, ms));
    this.timer = set(() => {
      this.timer = null;
      if (this.stopped || this.paused) return;
      this.sample();
      this.schedule();
    }, this.options.intervalMs);
  }

  private cancel(): void {
    if (this.timer === null) return;
    const clear = this.options.clearTimer ?? ((handle) => clearTimeout(handle as NodeJS.Timeout));
    clear(this.timer);
    this.timer = null;
  }

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  };

  getSnapshot = (): Snapshot | null => this.snapshot;

  isPaused(): boolean {
    return this.paused;
  }

  pause(): void {
    if (this.paused || this.stopped) return;
    this.paused = true;
    this.cancel();
    if (this.snapshot) this.publish({ ...this.snapshot, paused: true });
  }

  /** Resumes with a fresh sample right away. */
  resume(): void {
    if (!this.paused || this.stopped) return;
    this.paused = false;
    if (this.started) {
      this.sample();
      this.schedule();
    }
  }

  /** Stops the timer and drops subscribers; safe to call any number of times. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.cancel();
    this.listeners.clear();
  }

  get isStopped(): boolean {
    return this.stopped;
  }
}

/**
 * `top --json`: every snapshot a full scan, sorted like `stat --json` (or the other way round: `--sort -pid`); with `by` (other than user),
 * grouped from the same scan. `render` makes a snapshot's stat document.
 */
export function statStreamSampler(options: { intervalMs: number; sort: SortOrder; by?: GroupByChoice | undefined }): { sampler: Sampler; render: (report: StatReport) => Record<string, unknown> } {
  const by = options.by === 'user' ? undefined : options.by;
  const groupsOf = new WeakMap<StatReport, GroupRow[]>();
  const collect = () => {
    let report: StatReport;
    if (by) {
      const grouped = collectGroupedStat(by);
      report = grouped.report;
      groupsOf.set(report, grouped.groups);
    } else report = collectStat();
    report.processes = sortRows(report.processes, options.sort);
    return report;
  };
  const render = (report: StatReport) => (by ? { ...statJson(report), by, groups: groupsJson(groupsOf.get(report) ?? []) } : statJson(report));
  return { sampler: new Sampler({ intervalMs: options.intervalMs, collect }), render };
}

/** The dashboard's scanner: it re-reads idle processes only when the kernel's pin counters moved (or every 10 s). */
export function dashboardScanner(): IncrementalScanner {
  return new IncrementalScanner({ fullScanEveryMs: TOP_FULL_SCAN_EVERY_MS, smapsMaxAgeMs: TOP_SMAPS_MAX_AGE_MS });
}

/** The dashboard's sampler over `scanner`: unsorted (the dashboard sorts its rows by the key the user picks), with devices and held registrations. */
export function dashboardSampler(intervalMs: number, scanner: IncrementalScanner, held: HeldApi): Sampler {
  let holderPids: number[] = [];
  const collect = () => {
    const scan = scanner.scan();
    holderPids = scan.processes.filter((p) => p.name === held.HOLDER_PROCESS_NAME).map((p) => p.pid);
    return collectStat({}, scan);
  };
  return new Sampler({ intervalMs, collect, devices: deviceSummary, held: heldSummary(held, () => holderPids) });
}
