// top's events pane's data, outside React: a trace session (as `rdmactl trace`, all processes) run
// in the background while the dashboard is up, the latest events, and each process's registration
// rate. It publishes at most every PUBLISH_MS (a registration loop makes thousands of events a
// second; the pane needs a few frames). top stops it when the dashboard ends, on every way out:
// stop() resolves once the session's tracefs instance is removed.

import { startBackgroundTrace, type BackgroundTrace } from '../trace/background.js';
import { traceDrivers } from '../trace/sources.js';
import type { TraceRecord } from '../trace/session.js';
import type { EventRow, EventsSnapshot, EventsSource, ProcessRate } from './types.js';

/** Events kept for the pane (more than any terminal shows). */
export const EVENTS_KEPT = 200;
/** The per-process rate is over this window. */
export const RATE_WINDOW_MS = 10_000;
const PUBLISH_MS = 250;

interface RateBucket {
  second: number;
  count: number;
  bytes: number;
  failures: number;
}

/** Per-process counts in one-second buckets: bounded memory at any event rate. */
export class RateCounter {
  private readonly byPid = new Map<number, { comm: string; buckets: RateBucket[] }>();

  add(row: EventRow): void {
    const second = Math.floor(row.wallMs / 1000);
    let entry = this.byPid.get(row.pid);
    if (!entry) {
      entry = { comm: row.comm, buckets: [] };
      this.byPid.set(row.pid, entry);
    }
    entry.comm = row.comm;
    let bucket = entry.buckets.at(-1);
    if (!bucket || bucket.second !== second) {
      bucket = { second, count: 0, bytes: 0, failures: 0 };
      entry.buckets.push(bucket);
    }
    if (row.op === 'failed') bucket.failures++;
    else if (row.op === 'register' || row.op === 'mlock') {
      bucket.count++;
      bucket.bytes += row.bytes ?? 0;
    }
  }

  /** Rates over the window ending at `nowMs`, highest first; drops what fell out of it. */
  rates(nowMs: number, sinceMs: number): ProcessRate[] {
    const first = Math.floor((nowMs - RATE_WINDOW_MS) / 1000);
    // A window not yet full (top just started) is divided by the time it covers.
    const seconds = Math.max(1, Math.min(RATE_WINDOW_MS, nowMs - sinceMs) / 1000);
    const out: ProcessRate[] = [];
    for (const [pid, entry] of this.byPid) {
      entry.buckets = entry.buckets.filter((b) => b.second > first);
      if (entry.buckets.length === 0) {
        this.byPid.delete(pid);
        continue;
      }
      const sum = (key: 'count' | 'bytes' | 'failures') => entry.buckets.reduce((n, b) => n + b[key], 0);
      const count = sum('count');
      const failures = sum('failures');
      if (count === 0 && failures === 0) continue;
      out.push({ pid, comm: entry.comm, perSecond: count / seconds, bytesPerSecond: sum('bytes') / seconds, failures });
    }
    return out.sort((a, b) => b.perSecond - a.perSecond || b.failures - a.failures || a.pid - b.pid);
  }
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export class EventsFeed implements EventsSource {
  private readonly listeners = new Set<() => void>();
  private snapshot: EventsSnapshot = { state: 'starting', reason: null, sources: [], events: [], total: 0, lost: 0, rates: [], rateWindowMs: RATE_WINDOW_MS };
  private events: EventRow[] = [];
  private total = 0;
  private lost = 0;
  private readonly rates = new RateCounter();
  private readonly startedMs = Date.now();
  private trace: BackgroundTrace | null = null;
  private timer: NodeJS.Timeout | null = null;
  private dirty = false;

  /** Starts tracing; never throws: a session that cannot start is shown as unavailable, with why. */
  start(): void {
    if (this.trace) return;
    this.trace = startBackgroundTrace({
      drivers: traceDrivers(),
      vmPin: false,
      onRecord: (record) => this.add(record),
      onLoss: (lost) => {
        this.lost = lost;
        this.dirty = true;
      },
    });
    this.trace.started.then(
      (sources) => this.publish({ state: 'tracing', sources: sources.map((s) => s.source) }),
      (err: unknown) => this.publish({ state: 'unavailable', reason: message(err) }),
    );
    this.trace.ended.catch((err: unknown) => {
      if (this.snapshot.state === 'tracing') this.publish({ state: 'failed', reason: message(err) });
    });
    this.timer = setInterval(() => {
      // Rates shown are also recomputed while no event comes, so they fall back to nothing.
      if (this.dirty || this.snapshot.rates.length > 0) this.publish({});
    }, PUBLISH_MS);
  }

  private add(record: TraceRecord): void {
    const e = record.event;
    const row: EventRow = { wallMs: record.wallMs, pid: e.pid, comm: e.comm, source: e.source, op: e.op, bytes: e.bytes, latencyNs: e.latencyNs, errno: e.errno };
    this.events.push(row);
    if (this.events.length > 2 * EVENTS_KEPT) this.events = this.events.slice(-EVENTS_KEPT);
    this.rates.add(row);
    this.total++;
    this.dirty = true;
  }

  private publish(change: Partial<EventsSnapshot>): void {
    this.dirty = false;
    this.snapshot = {
      ...this.snapshot,
      ...change,
      events: this.events.slice(-EVENTS_KEPT),
      total: this.total,
      lost: this.lost,
      rates: this.rates.rates(Date.now(), this.startedMs),
    };
    for (const listener of [...this.listeners]) listener();
  }

  /** Ends the session; resolves once its tracefs instance is removed. Safe to call any number of times. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.listeners.clear();
    await this.trace?.stop();
  }

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  };

  getSnapshot = (): EventsSnapshot => this.snapshot;
}
