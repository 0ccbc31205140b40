// `exporter --trace`: registration events as counters and a latency histogram, added to the
// exporter's registry. Unlike the gauges (refilled from each collection), these only grow: they count
// what the trace saw since the exporter started, as Prometheus counters should.
//
// Every label set is bounded: source and op are closed sets, size classes are SIZE_CLASSES, and the
// result label is `ok` or an errno name; past MAX_ERRNO_LABELS distinct names (and for anything that
// does not look like one) it is `other`. No pid, comm or other per-process label: the trace command
// and top's events pane are for that.

import { Counter, Histogram, type Registry, type RegistryContentType } from 'prom-client';
import { sizeClassOf } from '../trace/summary.js';
import type { TraceEvent } from '../trace/types.js';

export const MAX_ERRNO_LABELS = 16;
export const OTHER_RESULT = 'other';
export const UNKNOWN_SIZE = 'unknown';

/** Latency buckets in seconds: 1 µs to ~16 s, ×4 apart (a 4 KiB io_uring registration to a 1 TiB MR). */
export const LATENCY_BUCKETS = Array.from({ length: 13 }, (_, i) => 1e-6 * 4 ** i);

/** The histogram's size label: the summary's size class, or `unknown` when the source could not tell. */
export function sizeLabelOf(bytes: number | null): string {
  return bytes === null ? UNKNOWN_SIZE : sizeClassOf(bytes);
}

export class TraceMetrics {
  private readonly events: Counter<'source' | 'op' | 'result'>;
  private readonly bytes: Counter<'source' | 'op'>;
  private readonly latency: Histogram<'source' | 'op' | 'size'>;
  private readonly lostEvents: Counter;
  private readonly errnoLabels = new Set<string>();
  private lostSoFar = 0;

  constructor(registry: Registry<RegistryContentType>) {
    const registers = [registry];
    this.events = new Counter({
      name: 'rdmactl_registrations_total',
      help: 'Registration events rdmactl trace saw since the exporter started: register, deregister, mlock, munlock, and failed (result is the errno name)',
      labelNames: ['source', 'op', 'result'], registers,
    });
    this.bytes = new Counter({
      name: 'rdmactl_registration_bytes_total',
      help: 'Bytes registered, released, locked or unlocked by the events rdmactl trace saw (events whose size the source cannot tell add nothing)',
      labelNames: ['source', 'op'], registers,
    });
    this.latency = new Histogram({
      name: 'rdmactl_registration_duration_seconds',
      help: 'From entry to return of each traced registration call, by size class of the request',
      labelNames: ['source', 'op', 'size'], buckets: LATENCY_BUCKETS, registers,
    });
    this.lostEvents = new Counter({
      name: 'rdmactl_trace_lost_events_total',
      help: 'Trace events the kernel dropped (its buffer was full) before rdmactl read them: the families above miss that many',
      registers,
    });
  }

  /** The session's running total of lost events (it only grows). */
  lost(total: number): void {
    if (total > this.lostSoFar) this.lostEvents.inc(total - this.lostSoFar);
    this.lostSoFar = Math.max(this.lostSoFar, total);
  }

  /** The result label: ok, an errno name (at most MAX_ERRNO_LABELS of them), or other. */
  private resultOf(event: TraceEvent): string {
    if (event.errno === null) return 'ok';
    if (!/^E[A-Z0-9]{1,15}$/.test(event.errno)) return OTHER_RESULT;
    if (this.errnoLabels.has(event.errno)) return event.errno;
    if (this.errnoLabels.size >= MAX_ERRNO_LABELS) return OTHER_RESULT;
    this.errnoLabels.add(event.errno);
    return event.errno;
  }

  observe(event: TraceEvent): void {
    this.events.inc({ source: event.source, op: event.op, result: this.resultOf(event) });
    if (event.op !== 'failed' && event.bytes !== null) this.bytes.inc({ source: event.source, op: event.op }, event.bytes);
    if (event.latencyNs !== null) this.latency.observe({ source: event.source, op: event.attempt, size: sizeLabelOf(event.bytes) }, event.latencyNs / 1e9);
  }
}
