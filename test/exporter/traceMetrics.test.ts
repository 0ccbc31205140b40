// exporter --trace's families from a fixed list of events: counts, bytes, the histogram, and labels
// that stay bounded whatever the events say. promtool checks the result.
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { MAX_ERRNO_LABELS, OTHER_RESULT, TraceMetrics, sizeLabelOf } from '../../src/exporter/traceMetrics.js';
import type { TraceEvent } from '../../src/trace/types.js';
import { missingBinary, parseExposition, promtool } from './helpers.js';

const noPromtool = missingBinary('promtool', 'prometheus');

function event(over: Partial<TraceEvent>): TraceEvent {
  return { time: 1, pid: 10, tid: 10, comm: 'x', source: 'io_uring', op: 'register', attempt: 'register', bytes: 4096, latencyNs: 5000, errno: null, detail: {}, ...over };
}

async function render(events: TraceEvent[]): Promise<string> {
  const registry = new Registry();
  const metrics = new TraceMetrics(registry);
  for (const e of events) metrics.observe(e);
  return registry.metrics();
}

describe('exporter --trace families', () => {
  it('size classes: the bounds are inclusive; null is unknown', () => {
    expect([sizeLabelOf(64 * 1024), sizeLabelOf(64 * 1024 + 1), sizeLabelOf(2 ** 30), sizeLabelOf(2 ** 30 + 1), sizeLabelOf(null)])
      .toEqual(['<=64K', '<=1M', '<=1G', '>1G', 'unknown']);
  });

  it('counts events by source, op and result, adds bytes of successful ones, and observes latency', async () => {
    const text = await render([
      event({ bytes: 4096 }),
      event({ bytes: 8192 }),
      event({ op: 'deregister', attempt: 'deregister', bytes: 4096, latencyNs: null }),
      event({ op: 'failed', attempt: 'register', bytes: 16 * 1024 * 1024, errno: 'ENOMEM', latencyNs: 2_000_000 }),
      event({ source: 'mlock', op: 'mlock', attempt: 'mlock', bytes: 1 << 20 }),
    ]);
    const samples = parseExposition(text);
    const value = (name: string, labels: Record<string, string>) => samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
    expect(value('rdmactl_registrations_total', { source: 'io_uring', op: 'register', result: 'ok' })).toBe(2);
    expect(value('rdmactl_registrations_total', { source: 'io_uring', op: 'failed', result: 'ENOMEM' })).toBe(1);
    expect(value('rdmactl_registration_bytes_total', { source: 'io_uring', op: 'register' })).toBe(12288);
    expect(value('rdmactl_registration_bytes_total', { source: 'io_uring', op: 'deregister' })).toBe(4096);
    expect(value('rdmactl_registration_bytes_total', { source: 'mlock', op: 'mlock' })).toBe(1 << 20);
    // The failed 16 MiB registration is in the register histogram, size class <=64M, 2 ms.
    expect(value('rdmactl_registration_duration_seconds_count', { source: 'io_uring', op: 'register', size: '<=64M' })).toBe(1);
    expect(value('rdmactl_registration_duration_seconds_sum', { source: 'io_uring', op: 'register', size: '<=64M' })).toBeCloseTo(0.002, 9);
    expect(value('rdmactl_registration_duration_seconds_count', { source: 'io_uring', op: 'register', size: '<=64K' })).toBe(2);
  });

  it(`result labels stay bounded: at most ${MAX_ERRNO_LABELS} errno names, the rest and non-errno text are "${OTHER_RESULT}"`, async () => {
    const errnos = Array.from({ length: MAX_ERRNO_LABELS + 5 }, (_, i) => `EFAKE${i}`);
    const text = await render([...errnos.map((errno) => event({ op: 'failed', errno })), event({ op: 'failed', errno: 'a"b\n{x}' })]);
    const results = new Set(parseExposition(text).filter((s) => s.name === 'rdmactl_registrations_total').map((s) => s.labels['result']));
    expect(results.size).toBe(MAX_ERRNO_LABELS + 1);
    expect(results.has(OTHER_RESULT)).toBe(true);
    expect(parseExposition(text).find((s) => s.name === 'rdmactl_registrations_total' && s.labels['result'] === OTHER_RESULT)?.value).toBe(6);
  });

  it.skipIf(noPromtool !== null)(`promtool check metrics accepts the families${noPromtool ? ` (skipped: ${noPromtool})` : ''}`, async () => {
    const check = promtool(['check', 'metrics'], await render([event({}), event({ op: 'failed', errno: 'EFAULT' })]));
    expect(check.status, check.output).toBe(0);
  });
});
