// Text of top's events pane: the event columns (as `rdmactl trace` names them) and the per-process
// rate line. Pure: no ink, no React, no tracing. Every string goes through fit(), which escapes.

import { formatMicros } from '../lib/fields.js';
import { formatBytes } from '../lib/size.js';
import { bytesCell, type Column } from './format.js';
import type { EventRow, EventsSnapshot, ProcessRate } from './types.js';

function pad2(n: number, width = 2): string {
  return String(n).padStart(width, '0');
}

/** Local time of day to the millisecond: 06:41:07.123. */
export function eventClock(wallMs: number): string {
  const d = new Date(wallMs);
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}.${pad2(d.getMilliseconds(), 3)}`;
}

/** The pane's columns, labelled as `rdmactl trace` labels them; narrow terminals drop the later ones first. */
export const EVENT_COLUMNS: readonly Column<EventRow>[] = [
  { key: 'clock', label: 'TIME', width: 12, dropOrder: 3, text: (r) => eventClock(r.wallMs) },
  { key: 'pid', label: 'PID', width: 7, align: 'right', text: (r) => String(r.pid) },
  { key: 'comm', label: 'COMM', width: 15, text: (r) => r.comm },
  { key: 'source', label: 'SOURCE', width: 8, dropOrder: 2, text: (r) => r.source },
  { key: 'op', label: 'OP', width: 10, text: (r) => r.op },
  { key: 'bytes', label: 'BYTES', width: 9, align: 'right', text: (r) => bytesCell(r.bytes, '?') },
  { key: 'latencyUs', label: 'LATENCY', width: 8, align: 'right', dropOrder: 1, text: (r) => (r.latencyNs === null ? '-' : formatMicros(Math.round(r.latencyNs / 1000))) },
  { key: 'errno', label: 'RESULT', width: 7, flex: true, text: (r) => r.errno ?? 'ok' },
];

/** `4242 node 12/s 48 MiB/s` (and the failures in the window, if any). */
export function rateText(rate: ProcessRate): string {
  const perSecond = rate.perSecond >= 10 ? Math.round(rate.perSecond).toString() : rate.perSecond.toFixed(1);
  const failures = rate.failures > 0 ? ` ${rate.failures} failed` : '';
  return `${rate.pid} ${rate.comm} ${perSecond}/s ${formatBytes(Math.round(rate.bytesPerSecond))}/s${failures}`;
}

/** The pane's title line. */
export function eventsTitle(events: EventsSnapshot): string {
  const lost = events.lost > 0 ? `  ${events.lost} lost (kernel buffer full)` : '';
  return `events: ${events.sources.join(', ')}  ${events.total} seen${lost}  (e hides)`;
}

/** The rate line: processes by registrations per second over the window. */
export function ratesLine(events: EventsSnapshot): string {
  const window = `${Math.round(events.rateWindowMs / 1000)} s`;
  if (events.rates.length === 0) return `  registrations/s (last ${window}): none`;
  return `  registrations/s (last ${window}): ${events.rates.map(rateText).join('  ·  ')}`;
}

/** The one line shown instead of the pane when there is no tracing. */
export function noTracingLine(events: EventsSnapshot): string {
  if (events.state === 'starting') return 'events: starting the trace…';
  if (events.state === 'failed') return `events: tracing stopped: ${events.reason ?? 'unknown error'}`;
  return `events: not traced: ${events.reason ?? 'unknown reason'}`;
}
