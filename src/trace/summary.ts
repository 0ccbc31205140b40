// The end-of-trace summary: what each process registered, released, locked and failed to do in
// the window, and how long registrations took by size class. Pure: it sees only TraceEvents.
//
// Rows are per (pid, source), not per process alone: with both the verbs and the umem source on,
// one ibv_reg_mr is seen twice (the library call and the kernel pin inside it), and adding the two
// into one row would count every MR twice. The comm shown is the latest the process had: the kernel
// may record an older or unknown one for its first events, and a process may rename itself.
//
// Latency memory is bounded by a reservoir per (source, op, size class): the first `capacity`
// samples are all kept, after that each new sample replaces a random kept one with probability
// capacity/seen (Vitter's algorithm R), so the kept samples stay a uniform sample of all of them.
// Median and p99 are exact over the kept samples (nearest rank); count, min and max over all.

import type { Field } from '../lib/fields.js';
import { SIZE_CLASSES, UNKNOWN_ERRNO, type TraceEvent, type TraceSourceName } from './types.js';

/** Samples kept per latency row by default: 4096 numbers, 32 KiB per row, 5 size classes per source. */
export const DEFAULT_RESERVOIR_CAPACITY = 4096;

export interface ProcessSummary {
  readonly pid: number;
  /** As the kernel recorded it: untrusted, escaped by the field emitter. */
  readonly comm: string;
  readonly source: TraceSourceName;
  readonly registrations: number;
  readonly deregistrations: number;
  /** Sums over the events whose bytes the source knew (see bytesUnknown). */
  readonly registeredBytes: number;
  readonly releasedBytes: number;
  /** Registrations and deregistrations whose size the source could not tell. */
  readonly bytesUnknown: number;
  /** Registered minus released in the window; negative when the window saw releases of older registrations. */
  readonly outstanding: number;
  readonly outstandingBytes: number;
  readonly mlocks: number;
  readonly munlocks: number;
  readonly lockedBytes: number;
  readonly unlockedBytes: number;
  readonly failures: number;
  /** errno name → count; 'unknown' when the source could not tell (a verbs NULL return). */
  readonly failuresByErrno: Readonly<Record<string, number>>;
}

export interface LatencyRow {
  readonly source: TraceSourceName;
  /** 'register' for registrations, 'mlock' for mlock calls. */
  readonly op: 'register' | 'mlock';
  /** SIZE_CLASSES label. */
  readonly sizeClass: string;
  /** Every timed call in the class. */
  readonly count: number;
  /** How many of them the percentiles are computed over (at most the reservoir capacity). */
  readonly samples: number;
  readonly minNs: number;
  readonly medianNs: number;
  readonly p99Ns: number;
  readonly maxNs: number;
}

/** The size class of a byte count: the first class whose bound it does not exceed. */
export function sizeClassOf(bytes: number): string {
  for (const sizeClass of SIZE_CLASSES) if (sizeClass.maxBytes === null || bytes <= sizeClass.maxBytes) return sizeClass.label;
  return SIZE_CLASSES[SIZE_CLASSES.length - 1]!.label;
}

/** Nearest-rank percentile of sorted values: the smallest value with at least p% of them at or below it. */
export function nearestRank(sorted: readonly number[], percent: number): number {
  if (sorted.length === 0) throw new RangeError('no samples');
  const rank = Math.max(1, Math.ceil((percent / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1]!;
}

/** A uniform sample of at most `capacity` numbers out of a stream (algorithm R). */
export class Reservoir {
  private readonly kept: number[] = [];
  private seen = 0;
  constructor(private readonly capacity: number, private readonly random: () => number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`reservoir capacity must be a positive integer, not ${capacity}`);
  }
  add(value: number): void {
    this.seen += 1;
    if (this.kept.length < this.capacity) {
      this.kept.push(value);
      return;
    }
    const slot = Math.floor(this.random() * this.seen);
    if (slot < this.capacity) this.kept[slot] = value;
  }
  get count(): number {
    return this.seen;
  }
  samples(): number[] {
    return [...this.kept];
  }
}

interface ProcessTally {
  pid: number;
  comm: string;
  source: TraceSourceName;
  registrations: number;
  deregistrations: number;
  registeredBytes: number;
  releasedBytes: number;
  bytesUnknown: number;
  mlocks: number;
  munlocks: number;
  lockedBytes: number;
  unlockedBytes: number;
  failures: number;
  failuresByErrno: Map<string, number>;
}

interface LatencyTally {
  source: TraceSourceName;
  op: 'register' | 'mlock';
  sizeClass: string;
  reservoir: Reservoir;
  min: number;
  max: number;
}

export interface TraceSummaryOptions {
  /** Latency samples kept per row (default DEFAULT_RESERVOIR_CAPACITY). */
  reservoirCapacity?: number;
  /** Uniform in [0, 1), for the reservoir's replacement choice (default Math.random). */
  random?: () => number;
}

export class TraceSummary {
  private readonly byProcess = new Map<string, ProcessTally>();
  private readonly byClass = new Map<string, LatencyTally>();
  private readonly capacity: number;
  private readonly random: () => number;
  private eventCount = 0;

  constructor(options: TraceSummaryOptions = {}) {
    this.capacity = options.reservoirCapacity ?? DEFAULT_RESERVOIR_CAPACITY;
    this.random = options.random ?? Math.random;
    // Checked here rather than at the first sample, so a bad capacity fails before any tracing.
    if (!Number.isInteger(this.capacity) || this.capacity < 1) throw new RangeError(`reservoir capacity must be a positive integer, not ${this.capacity}`);
  }

  add(event: TraceEvent): void {
    this.eventCount += 1;
    const tally = this.processTally(event);
    const bytes = event.bytes;
    switch (event.op) {
      case 'register':
        tally.registrations += 1;
        if (bytes === null) tally.bytesUnknown += 1;
        else tally.registeredBytes += bytes;
        break;
      case 'deregister':
        tally.deregistrations += 1;
        if (bytes === null) tally.bytesUnknown += 1;
        else tally.releasedBytes += bytes;
        break;
      case 'mlock':
        tally.mlocks += 1;
        if (bytes !== null) tally.lockedBytes += bytes;
        break;
      case 'munlock':
        tally.munlocks += 1;
        if (bytes !== null) tally.unlockedBytes += bytes;
        break;
      case 'failed': {
        tally.failures += 1;
        const errno = event.errno ?? UNKNOWN_ERRNO;
        tally.failuresByErrno.set(errno, (tally.failuresByErrno.get(errno) ?? 0) + 1);
        break;
      }
    }
    // Only successful calls are timed: a refusal returns early and would pull the class's median down.
    if ((event.op === 'register' || event.op === 'mlock') && event.latencyNs !== null && bytes !== null) {
      this.latencyTally(event.source, event.op, sizeClassOf(bytes), event.latencyNs);
    }
  }

  /** How many events were added. */
  get events(): number {
    return this.eventCount;
  }

  /** One row per (pid, source), by pid, then comm, then source. */
  processes(): ProcessSummary[] {
    return [...this.byProcess.values()]
      .sort((a, b) => a.pid - b.pid || compareText(a.comm, b.comm) || compareText(a.source, b.source))
      .map((t) => ({
        pid: t.pid,
        comm: t.comm,
        source: t.source,
        registrations: t.registrations,
        deregistrations: t.deregistrations,
        registeredBytes: t.registeredBytes,
        releasedBytes: t.releasedBytes,
        bytesUnknown: t.bytesUnknown,
        outstanding: t.registrations - t.deregistrations,
        outstandingBytes: t.registeredBytes - t.releasedBytes,
        mlocks: t.mlocks,
        munlocks: t.munlocks,
        lockedBytes: t.lockedBytes,
        unlockedBytes: t.unlockedBytes,
        failures: t.failures,
        failuresByErrno: Object.fromEntries([...t.failuresByErrno].sort(([a], [b]) => compareText(a, b))),
      }));
  }

  /** One row per (source, op, size class) that saw a timed call, size classes in SIZE_CLASSES order. */
  latency(): LatencyRow[] {
    const classOrder = new Map(SIZE_CLASSES.map((c, i) => [c.label, i]));
    return [...this.byClass.values()]
      .sort((a, b) => compareText(a.source, b.source) || compareText(a.op, b.op) || classOrder.get(a.sizeClass)! - classOrder.get(b.sizeClass)!)
      .map((t) => {
        const sorted = t.reservoir.samples().sort((x, y) => x - y);
        return {
          source: t.source,
          op: t.op,
          sizeClass: t.sizeClass,
          count: t.reservoir.count,
          samples: sorted.length,
          minNs: t.min,
          medianNs: nearestRank(sorted, 50),
          p99Ns: nearestRank(sorted, 99),
          maxNs: t.max,
        };
      });
  }

  private processTally(event: TraceEvent): ProcessTally {
    const key = `${event.pid}/${event.source}`;
    let tally = this.byProcess.get(key);
    if (tally) tally.comm = event.comm;
    else {
      tally = {
        pid: event.pid, comm: event.comm, source: event.source,
        registrations: 0, deregistrations: 0, registeredBytes: 0, releasedBytes: 0, bytesUnknown: 0,
        mlocks: 0, munlocks: 0, lockedBytes: 0, unlockedBytes: 0, failures: 0, failuresByErrno: new Map(),
      };
      this.byProcess.set(key, tally);
    }
    return tally;
  }

  private latencyTally(source: TraceSourceName, op: 'register' | 'mlock', sizeClass: string, latencyNs: number): void {
    const key = `${source}/${op}/${sizeClass}`;
    let tally = this.byClass.get(key);
    if (!tally) {
      tally = { source, op, sizeClass, reservoir: new Reservoir(this.capacity, this.random), min: latencyNs, max: latencyNs };
      this.byClass.set(key, tally);
    }
    tally.reservoir.add(latencyNs);
    tally.min = Math.min(tally.min, latencyNs);
    tally.max = Math.max(tally.max, latencyNs);
  }
}

/** Code-unit order, the same on every locale (comm and errno names are ASCII-ish machine strings). */
function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Nanoseconds as microseconds to 0.1 µs, the unit of rdmactl's other timings (kind 'micros'). */
function micros(ns: number): number {
  return Math.round(ns / 100) / 10;
}

export const PROCESS_SUMMARY_FIELDS: readonly Field<ProcessSummary>[] = [
  { key: 'pid', label: 'PID', description: 'thread group id of the process that made the calls', get: (p) => p.pid },
  { key: 'comm', label: 'COMM', description: 'its command name as the kernel recorded it', get: (p) => p.comm },
  { key: 'source', label: 'SOURCE', description: 'where the calls were seen: io_uring, verbs, umem or mlock', get: (p) => p.source },
  { key: 'registrations', label: 'REGS', description: 'successful registrations in the window', kind: 'count', get: (p) => p.registrations },
  { key: 'deregistrations', label: 'DEREGS', description: 'deregistrations in the window', kind: 'count', get: (p) => p.deregistrations },
  { key: 'registeredBytes', label: 'REGISTERED', description: 'bytes registered (events of known size)', kind: 'bytes', get: (p) => p.registeredBytes },
  { key: 'releasedBytes', label: 'RELEASED', description: 'bytes released (events of known size)', kind: 'bytes', get: (p) => p.releasedBytes },
  { key: 'bytesUnknown', label: 'UNSIZED', description: 'registrations and deregistrations whose size the source could not tell', kind: 'count', get: (p) => p.bytesUnknown, extra: true },
  { key: 'outstanding', label: 'OUTSTANDING', description: 'registrations minus deregistrations in the window (negative: older ones were released)', kind: 'count', get: (p) => p.outstanding },
  { key: 'outstandingBytes', label: 'OUTSTANDING-BYTES', description: 'bytes registered minus bytes released in the window', kind: 'bytes', get: (p) => p.outstandingBytes },
  { key: 'mlocks', label: 'MLOCKS', description: 'successful mlock calls (counted apart from registrations)', kind: 'count', get: (p) => p.mlocks },
  { key: 'munlocks', label: 'MUNLOCKS', description: 'successful munlock calls', kind: 'count', get: (p) => p.munlocks, extra: true },
  { key: 'lockedBytes', label: 'LOCKED', description: 'bytes asked to be locked by successful mlock calls', kind: 'bytes', get: (p) => p.lockedBytes },
  { key: 'unlockedBytes', label: 'UNLOCKED', description: 'bytes asked to be unlocked by successful munlock calls', kind: 'bytes', get: (p) => p.unlockedBytes, extra: true },
  { key: 'failures', label: 'FAILED', description: 'calls that returned an error', kind: 'count', get: (p) => p.failures },
  {
    key: 'failuresByErrno', label: 'ERRORS', description: 'failed calls by errno name (unknown: the source could not tell)',
    get: (p) => Object.entries(p.failuresByErrno).map(([errno, n]) => `${errno}:${n}`), nullText: '-',
  },
];

export const LATENCY_FIELDS: readonly Field<LatencyRow>[] = [
  { key: 'source', label: 'SOURCE', description: 'where the calls were seen', get: (r) => r.source },
  { key: 'op', label: 'OP', description: 'register or mlock', get: (r) => r.op },
  { key: 'sizeClass', label: 'SIZE', description: 'size class of the calls: <=64K, <=1M, <=64M, <=1G, >1G', get: (r) => r.sizeClass },
  { key: 'count', label: 'COUNT', description: 'successful timed calls in the class', kind: 'count', get: (r) => r.count },
  { key: 'samples', label: 'SAMPLES', description: 'calls the percentiles are computed over (a uniform reservoir sample when COUNT is larger)', kind: 'count', get: (r) => r.samples, extra: true },
  { key: 'minMicros', label: 'MIN', description: 'shortest call, microseconds (all calls)', kind: 'micros', get: (r) => micros(r.minNs), extra: true },
  { key: 'medianMicros', label: 'MEDIAN', description: 'median call time, microseconds (nearest rank over the samples)', kind: 'micros', get: (r) => micros(r.medianNs) },
  { key: 'p99Micros', label: 'P99', description: '99th percentile call time, microseconds (nearest rank over the samples)', kind: 'micros', get: (r) => micros(r.p99Ns) },
  { key: 'maxMicros', label: 'MAX', description: 'longest call, microseconds (all calls)', kind: 'micros', get: (r) => micros(r.maxNs) },
];
