// The pure parts of doctor's trace evidence: reading a line of the failure log (anything not exactly
// a version-1 line is skipped), grouping failures by kind inside the window, and the check each
// errno points at.
import { describe, expect, it } from 'vitest';
import { checkForFailure, groupFailures } from '../../src/doctor/traceFailures.js';
import { parseFailureLine, type LoggedFailure } from '../../src/trace/failureLog.js';

const base: LoggedFailure = {
  v: 1, pid: 42, startTime: 1000, comm: 'ib_write_bw', source: 'verbs', attempt: 'register', bytes: 1 << 30, errno: 'ENOMEM', count: 2, firstMs: 1_000_000, lastMs: 1_000_500,
};

describe('parseFailureLine', () => {
  it('reads a line the writer writes', () => {
    expect(parseFailureLine(JSON.stringify(base))).toEqual(base);
    expect(parseFailureLine(JSON.stringify({ ...base, bytes: null }))?.bytes).toBeNull();
    // A verbs NULL return with no umem failure inside it: the writer writes it, so the reader reads it.
    expect(parseFailureLine(JSON.stringify({ ...base, errno: 'unknown' }))?.errno).toBe('unknown');
  });

  it('skips torn, foreign and other-version lines', () => {
    const line = JSON.stringify(base);
    for (const bad of [
      line.slice(0, 40), '', 'null', '[]', JSON.stringify({ ...base, v: 2 }), JSON.stringify({ ...base, pid: -1 }), JSON.stringify({ ...base, pid: '42' }),
      JSON.stringify({ ...base, errno: 'nomem' }), JSON.stringify({ ...base, errno: 'Unknown' }), JSON.stringify({ ...base, errno: 'ENOMEM\u001b[2J' }), JSON.stringify({ ...base, source: 'bpf' }),
      JSON.stringify({ ...base, attempt: 'failed' }), JSON.stringify({ ...base, bytes: 1.5 }), JSON.stringify({ ...base, comm: 7 }),
    ]) {
      expect(parseFailureLine(bad), bad).toBeNull();
    }
  });
});

describe('groupFailures', () => {
  it('sums one kind across lines, keeps kinds apart, leaves out what ended before the window, newest first', () => {
    const lines: LoggedFailure[] = [
      base,
      { ...base, count: 3, firstMs: 1_002_000, lastMs: 1_002_900 },
      { ...base, source: 'io_uring', bytes: 64 << 20, errno: 'ENOMEM', count: 1, firstMs: 1_001_000, lastMs: 1_001_000 },
      { ...base, errno: 'EFAULT', count: 1, firstMs: 900_000, lastMs: 900_000 },
    ];
    expect(groupFailures(lines, 950_000)).toEqual([
      { source: 'verbs', attempt: 'register', errno: 'ENOMEM', bytes: 1 << 30, count: 5, lastMs: 1_002_900, check: 'memlock.limit', alsoSeenBy: null },
      { source: 'io_uring', attempt: 'register', errno: 'ENOMEM', bytes: 64 << 20, count: 1, lastMs: 1_001_000, check: 'memlock.limit', alsoSeenBy: null },
    ]);
    expect(groupFailures(lines, 0)).toHaveLength(3);
  });

  it('counts a verbs failure and the umem failure inside it once, on the verbs group; the rest of umem stays', () => {
    const umem: LoggedFailure = { ...base, source: 'umem', count: 3, lastMs: 1_000_400 };
    const both = groupFailures([base, umem], 0);
    expect(both).toEqual([
      { source: 'verbs', attempt: 'register', errno: 'ENOMEM', bytes: 1 << 30, count: 2, lastMs: 1_000_500, check: 'memlock.limit', alsoSeenBy: 'umem' },
      // One more umem failure than verbs saw: a program whose libibverbs was not probed.
      { source: 'umem', attempt: 'register', errno: 'ENOMEM', bytes: 1 << 30, count: 1, lastMs: 1_000_400, check: 'memlock.limit', alsoSeenBy: null },
    ]);
    expect(groupFailures([base, { ...umem, count: 2 }], 0).map((g) => [g.source, g.alsoSeenBy, g.count])).toEqual([['verbs', 'umem', 2]]);
    // Another size, another errno, or a verbs errno the trace could not tell: not the same calls.
    for (const other of [{ ...umem, bytes: 4096 }, { ...umem, errno: 'EFAULT' }]) {
      expect(groupFailures([base, other], 0).map((g) => [g.source, g.alsoSeenBy])).toEqual([['verbs', null], ['umem', null]]);
    }
    expect(groupFailures([{ ...base, errno: 'unknown' }, umem], 0).map((g) => [g.source, g.errno, g.alsoSeenBy, g.check])).toEqual([
      ['verbs', 'unknown', null, null],
      ['umem', 'ENOMEM', null, 'memlock.limit'],
    ]);
  });
});

describe('checkForFailure', () => {
  it('points each errno at the check that explains it, and at none when no check does', () => {
    expect(checkForFailure('verbs', 'register', 'ENOMEM')).toBe('memlock.limit');
    expect(checkForFailure('umem', 'register', 'ENOMEM')).toBe('memlock.limit');
    expect(checkForFailure('mlock', 'mlock', 'EAGAIN')).toBe('memlock.limit');
    expect(checkForFailure('mlock', 'mlock', 'EPERM')).toBe('memlock.limit');
    expect(checkForFailure('io_uring', 'register', 'EPERM')).toBe('uring.disabled');
    expect(checkForFailure('verbs', 'register', 'EAGAIN')).toBe('cgroup.rdma');
    expect(checkForFailure('verbs', 'register', 'EFAULT')).toBe('file.longterm-pin');
    expect(checkForFailure('io_uring', 'register', 'EOPNOTSUPP')).toBe('file.longterm-pin');
    expect(checkForFailure('verbs', 'register', 'EINVAL')).toBeNull();
    expect(checkForFailure('verbs', 'deregister', 'ENOMEM')).toBeNull();
  });
});
