// TraceSummary over hand-written events; every expectation below was computed by hand from the
// events listed in the test (the comments show the arithmetic).
import { describe, expect, it } from 'vitest';
import { defaultTextFields, fieldText, toJson } from '../../src/lib/fields.js';
import { LATENCY_FIELDS, PROCESS_SUMMARY_FIELDS, Reservoir, TraceSummary, nearestRank, sizeClassOf } from '../../src/trace/summary.js';
import type { TraceEvent, TraceOp, TraceSourceName } from '../../src/trace/types.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

function ev(pid: number, comm: string, source: TraceSourceName, op: TraceOp, bytes: number | null, latencyNs: number | null = null, errno: string | null = null, attempt?: TraceEvent['attempt']): TraceEvent {
  return {
    time: 0, pid, tid: pid, comm, source, op, attempt: attempt ?? (op === 'failed' ? 'register' : op),
    bytes, latencyNs, errno, detail: {},
  };
}

describe('size classes', () => {
  it('puts a size in the first class whose bound it does not exceed', () => {
    expect(sizeClassOf(0)).toBe('<=64K');
    expect(sizeClassOf(64 * KiB)).toBe('<=64K');
    expect(sizeClassOf(64 * KiB + 1)).toBe('<=1M');
    expect(sizeClassOf(MiB)).toBe('<=1M');
    expect(sizeClassOf(MiB + 1)).toBe('<=64M');
    expect(sizeClassOf(64 * MiB)).toBe('<=64M');
    expect(sizeClassOf(GiB)).toBe('<=1G');
    expect(sizeClassOf(GiB + 1)).toBe('>1G');
  });
});

describe('nearest-rank percentiles', () => {
  it('picks the value at rank ceil(p/100 * n)', () => {
    const ten = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    expect(nearestRank(ten, 50)).toBe(5); // ceil(5) = rank 5
    expect(nearestRank(ten, 99)).toBe(10); // ceil(9.9) = rank 10
    expect(nearestRank([7], 50)).toBe(7);
    expect(nearestRank([7], 99)).toBe(7);
    const hundred = Array.from({ length: 200 }, (_, i) => i + 1);
    expect(nearestRank(hundred, 99)).toBe(198); // ceil(198) = rank 198
    expect(nearestRank(hundred, 50)).toBe(100);
    expect(() => nearestRank([], 50)).toThrow(RangeError);
  });
});

describe('TraceSummary', () => {
  it('is empty for an empty window', () => {
    const summary = new TraceSummary();
    expect(summary.events).toBe(0);
    expect(summary.processes()).toEqual([]);
    expect(summary.latency()).toEqual([]);
  });

  it('counts registrations, releases, mlocks and failures per process and source', () => {
    const summary = new TraceSummary();
    // pid 100 "ib_write_bw", verbs: three MRs of 4 KiB, 2 MiB and one of unknown size, one released (2 MiB),
    // one NULL return (errno unknown), one release of an MR registered before the window (size unknown).
    summary.add(ev(100, 'ib_write_bw', 'verbs', 'register', 4 * KiB, 10_000));
    summary.add(ev(100, 'ib_write_bw', 'verbs', 'register', 2 * MiB, 50_000));
    summary.add(ev(100, 'ib_write_bw', 'verbs', 'register', null, 70_000));
    summary.add(ev(100, 'ib_write_bw', 'verbs', 'deregister', 2 * MiB, 3_000));
    summary.add(ev(100, 'ib_write_bw', 'verbs', 'failed', 8 * MiB, 1_000, null));
    summary.add(ev(100, 'ib_write_bw', 'verbs', 'deregister', null));
    // The same process seen by the kernel source: kept apart, not added into the verbs row.
    summary.add(ev(100, 'ib_write_bw', 'umem', 'register', 4 * KiB, 8_000));
    summary.add(ev(100, 'ib_write_bw', 'umem', 'failed', 8 * MiB, 900, 'ENOMEM'));
    // pid 7 "db": mlock 1 MiB twice, munlock 1 MiB, a failed mlock (EAGAIN) and two ENOMEM io_uring failures.
    summary.add(ev(7, 'db', 'mlock', 'mlock', MiB, 4_000));
    summary.add(ev(7, 'db', 'mlock', 'mlock', MiB, 6_000));
    summary.add(ev(7, 'db', 'mlock', 'munlock', MiB, 2_000));
    summary.add(ev(7, 'db', 'mlock', 'failed', MiB, 500, 'EAGAIN', 'mlock'));
    summary.add(ev(7, 'db', 'io_uring', 'failed', GiB, 700, 'ENOMEM'));
    summary.add(ev(7, 'db', 'io_uring', 'failed', GiB, 700, 'ENOMEM'));
    summary.add(ev(7, 'db', 'io_uring', 'failed', GiB, 700, 'EFAULT'));
    // pid 7 renamed (exec, prctl): the same row, shown with the latest comm.
    summary.add(ev(7, 'db-worker', 'io_uring', 'register', 64 * MiB, 300_000));
    expect(summary.events).toBe(16);

    const rows = summary.processes();
    expect(rows.map((r) => [r.pid, r.comm, r.source])).toEqual([
      [7, 'db', 'mlock'], [7, 'db-worker', 'io_uring'], [100, 'ib_write_bw', 'umem'], [100, 'ib_write_bw', 'verbs'],
    ]);
    const verbs = rows[3]!;
    expect(verbs).toEqual({
      pid: 100, comm: 'ib_write_bw', source: 'verbs',
      registrations: 3, deregistrations: 2,
      registeredBytes: 4 * KiB + 2 * MiB, releasedBytes: 2 * MiB, bytesUnknown: 2,
      outstanding: 1, outstandingBytes: 4 * KiB, // 3 - 2; (4 KiB + 2 MiB) - 2 MiB
      mlocks: 0, munlocks: 0, lockedBytes: 0, unlockedBytes: 0,
      failures: 1, failuresByErrno: { unknown: 1 },
    });
    expect(rows[2]).toMatchObject({ registrations: 1, registeredBytes: 4 * KiB, outstanding: 1, failures: 1, failuresByErrno: { ENOMEM: 1 } });
    expect(rows[0]).toMatchObject({
      registrations: 0, mlocks: 2, munlocks: 1, lockedBytes: 2 * MiB, unlockedBytes: MiB, outstanding: 0, outstandingBytes: 0,
      failures: 1, failuresByErrno: { EAGAIN: 1 },
    });
    expect(rows[1]).toMatchObject({ comm: 'db-worker', registrations: 1, registeredBytes: 64 * MiB, outstanding: 1, outstandingBytes: 64 * MiB, failures: 3, failuresByErrno: { EFAULT: 1, ENOMEM: 2 } });

    // Latency: only successful register/mlock calls of known size; failed and unsized ones are not timed.
    expect(summary.latency()).toEqual([
      { source: 'io_uring', op: 'register', sizeClass: '<=64M', count: 1, samples: 1, minNs: 300_000, medianNs: 300_000, p99Ns: 300_000, maxNs: 300_000 },
      { source: 'mlock', op: 'mlock', sizeClass: '<=1M', count: 2, samples: 2, minNs: 4_000, medianNs: 4_000, p99Ns: 6_000, maxNs: 6_000 },
      { source: 'umem', op: 'register', sizeClass: '<=64K', count: 1, samples: 1, minNs: 8_000, medianNs: 8_000, p99Ns: 8_000, maxNs: 8_000 },
      { source: 'verbs', op: 'register', sizeClass: '<=64K', count: 1, samples: 1, minNs: 10_000, medianNs: 10_000, p99Ns: 10_000, maxNs: 10_000 },
      { source: 'verbs', op: 'register', sizeClass: '<=64M', count: 1, samples: 1, minNs: 50_000, medianNs: 50_000, p99Ns: 50_000, maxNs: 50_000 },
    ]);
  });

  it('computes median and p99 per size class over many calls', () => {
    const summary = new TraceSummary();
    // 200 registrations of 4 KiB taking 1..200 µs, given in a shuffled order; 3 of 1 GiB + 1 byte.
    const order = Array.from({ length: 200 }, (_, i) => (i * 77) % 200); // 77 is prime to 200: a permutation
    expect(new Set(order).size).toBe(200);
    for (const i of order) summary.add(ev(1, 'a', 'io_uring', 'register', 4 * KiB, (i + 1) * 1000));
    for (const ns of [9_000_000, 1_000_000, 5_000_000]) summary.add(ev(1, 'a', 'io_uring', 'register', GiB + 1, ns));
    const [small, huge] = summary.latency();
    // sorted 1000..200000: median rank ceil(100) = 100 → 100 µs; p99 rank ceil(198) = 198 → 198 µs.
    expect(small).toEqual({ source: 'io_uring', op: 'register', sizeClass: '<=64K', count: 200, samples: 200, minNs: 1000, medianNs: 100_000, p99Ns: 198_000, maxNs: 200_000 });
    // sorted 1, 5, 9 ms: median rank ceil(1.5) = 2 → 5 ms; p99 rank ceil(2.97) = 3 → 9 ms.
    expect(huge).toEqual({ source: 'io_uring', op: 'register', sizeClass: '>1G', count: 3, samples: 3, minNs: 1_000_000, medianNs: 5_000_000, p99Ns: 9_000_000, maxNs: 9_000_000 });
    const json = toJson(LATENCY_FIELDS, small!);
    expect(json).toEqual({ source: 'io_uring', op: 'register', sizeClass: '<=64K', count: 200, samples: 200, minMicros: 1, medianMicros: 100, p99Micros: 198, maxMicros: 200 });
  });

  it('bounds the kept samples with a reservoir, keeping count, min and max exact', () => {
    // A fixed "random" sequence makes the replacements predictable: r * seen, floored, is the slot.
    const draws = [0.0, 0.9, 0.5]; // 5th add: floor(0*5)=0 → slot 0; 6th: floor(0.9*6)=5 → dropped; 7th: floor(0.5*7)=3 → slot 3
    let next = 0;
    const summary = new TraceSummary({ reservoirCapacity: 4, random: () => draws[next++]! });
    for (const us of [10, 20, 30, 40, 50, 60, 70]) summary.add(ev(1, 'a', 'verbs', 'register', 4096, us * 1000));
    const [row] = summary.latency();
    // kept: [50, 20, 30, 70] µs → sorted 20, 30, 50, 70: median rank 2 → 30; p99 rank ceil(3.96) = 4 → 70.
    expect(row).toEqual({ source: 'verbs', op: 'register', sizeClass: '<=64K', count: 7, samples: 4, minNs: 10_000, medianNs: 30_000, p99Ns: 70_000, maxNs: 70_000 });
    expect(next).toBe(3);
  });

  it('keeps every sample below capacity and a uniform subset above it', () => {
    const reservoir = new Reservoir(100, Math.random);
    for (let i = 0; i < 10_000; i++) reservoir.add(i);
    const kept = reservoir.samples();
    expect(reservoir.count).toBe(10_000);
    expect(kept).toHaveLength(100);
    expect(new Set(kept).size).toBe(100);
    for (const v of kept) expect(v >= 0 && v < 10_000).toBe(true);
    expect(() => new Reservoir(0, Math.random)).toThrow(RangeError);
    expect(() => new TraceSummary({ reservoirCapacity: 1.5 })).toThrow(RangeError);
  });

  it('prints both tables from the same fields as text and JSON, with escaped comms', () => {
    for (const fields of [PROCESS_SUMMARY_FIELDS, LATENCY_FIELDS] as const) {
      for (const field of fields) {
        expect(field.label).toMatch(/^[A-Z0-9][A-Z0-9-]*$/);
        expect(field.key).toMatch(/^[a-z][a-zA-Z0-9]*$/);
      }
      expect(new Set(fields.map((f) => f.key)).size).toBe(fields.length);
    }
    const summary = new TraceSummary();
    summary.add(ev(5, 'evil\x1b[2J', 'verbs', 'failed', 4096, 100, 'ENOMEM'));
    summary.add(ev(5, 'evil\x1b[2J', 'verbs', 'failed', 4096, 100, 'EFAULT'));
    const [row] = summary.processes();
    const comm = PROCESS_SUMMARY_FIELDS.find((f) => f.key === 'comm')!;
    expect(fieldText(comm, row!)).toBe('evil\\x1b[2J');
    const errors = PROCESS_SUMMARY_FIELDS.find((f) => f.key === 'failuresByErrno')!;
    expect(fieldText(errors, row!)).toBe('EFAULT:1,ENOMEM:1');
    expect(toJson(PROCESS_SUMMARY_FIELDS, row!)).toMatchObject({ pid: 5, comm: 'evil\x1b[2J', failures: 2, failuresByErrno: ['EFAULT:1', 'ENOMEM:1'] });
    expect(defaultTextFields(PROCESS_SUMMARY_FIELDS).map((f) => f.label)).toContain('OUTSTANDING');
  });
});
