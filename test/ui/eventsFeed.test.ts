// The events pane's per-process rate from fixed events: successful registrations and mlocks per
// second over the window (bytes too), failures counted apart, releases not counted, old events
// dropped, and a window not yet full divided by the time it covers.
import { describe, expect, it } from 'vitest';
import { RATE_WINDOW_MS, RateCounter } from '../../src/ui/eventsFeed.js';
import type { EventRow } from '../../src/ui/types.js';

const T0 = Date.UTC(2025, 0, 1, 12, 0, 0);

function row(over: Partial<EventRow>): EventRow {
  return { wallMs: T0, pid: 1, comm: 'a', source: 'io_uring', op: 'register', bytes: 4096, latencyNs: 1000, errno: null, ...over };
}

describe('events pane rates', () => {
  it('counts successful registrations and mlocks per process over the window; failures apart; releases not', () => {
    const rates = new RateCounter();
    for (let i = 0; i < 20; i++) rates.add(row({ wallMs: T0 + i * 500 })); // 20 registrations of 4 KiB over 10 s
    rates.add(row({ wallMs: T0 + 9000, op: 'deregister' }));
    rates.add(row({ wallMs: T0 + 9000, pid: 2, comm: 'b', source: 'mlock', op: 'mlock', bytes: 1 << 20 }));
    rates.add(row({ wallMs: T0 + 9500, pid: 2, comm: 'b', op: 'failed', errno: 'ENOMEM', bytes: 1 << 26 }));
    rates.add(row({ wallMs: T0 + 9500, pid: 3, comm: 'c', op: 'munlock', source: 'mlock' }));
    const now = T0 + 9999;
    expect(rates.rates(now, T0 - RATE_WINDOW_MS)).toEqual([
      { pid: 1, comm: 'a', perSecond: 2, bytesPerSecond: 8192, failures: 0 },
      { pid: 2, comm: 'b', perSecond: 0.1, bytesPerSecond: (1 << 20) / 10, failures: 1 },
    ]);
    // Five seconds later the first half has left the window; pid 2's events are still in it.
    const later = rates.rates(T0 + 14_999, T0 - RATE_WINDOW_MS);
    expect(later.map((r) => [r.pid, r.perSecond])).toEqual([[1, 1], [2, 0.1]]);
    // Twenty seconds later nothing is left.
    expect(rates.rates(T0 + 30_000, T0 - RATE_WINDOW_MS)).toEqual([]);
  });

  it('just after the start, the rate is over the time the window covers so far', () => {
    const rates = new RateCounter();
    for (let i = 0; i < 4; i++) rates.add(row({ wallMs: T0 + 100 + i * 100 }));
    expect(rates.rates(T0 + 2000, T0)[0]!.perSecond).toBe(2);
  });
});
