// The pure functions of src/observe on fixtures (no /proc): range coverage, fork-protection
// coverage, overlap (what a per-registration counter charges twice), the ranges of a held record's
// typed report, and the join of held records with the kernel's rows.

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { isDontFork, isWipeOnFork, parseSmaps } from '../../src/proc/smaps.js';
import { coveredBytes, overlapBytes, type Range } from '../../src/observe/stat.js';
import { forkProtectionOf, joinHeld, markOverlaps, type HeldRange, type RegistrationRow } from '../../src/observe/registrations.js';
import { heldRanges } from '../../src/observe/held.js';
import { sampleReport } from '../held/helpers.js';

const KiB = 1024;
// Four VMAs: 0x7f0000000000 +16K DONTFORK, +16K WIPEONFORK, +32K plain; 0x7f1000000000 64K locked DONTFORK.
const vmas = parseSmaps(readFileSync(new URL('../fixtures/proc/smaps-fork-protections.txt', import.meta.url), 'utf8'));
const BASE = 0x7f0000000000n;
const LOCKED = 0x7f1000000000n;
const range = (start: bigint, bytes: number): Range => ({ start, end: start + BigInt(bytes) });

describe('coveredBytes', () => {
  it('the fixture parses into the four VMAs the tests assume', () => {
    expect(vmas.map((v) => [v.start, v.end - v.start])).toEqual([
      [BASE, 16384n], [BASE + 16384n, 16384n], [BASE + 32768n, 32768n], [LOCKED, 65536n],
    ]);
  });

  it('counts only the part of each matching VMA inside the range', () => {
    expect(coveredBytes(range(BASE, 64 * KiB), vmas, isDontFork)).toBe(16 * KiB);
    expect(coveredBytes(range(BASE, 64 * KiB), vmas, isWipeOnFork)).toBe(16 * KiB);
    expect(coveredBytes(range(BASE + 8192n, 16 * KiB), vmas, isDontFork)).toBe(8 * KiB);
    expect(coveredBytes(range(BASE + 32768n, 32 * KiB), vmas, isDontFork)).toBe(0);
    expect(coveredBytes(range(BASE, 64 * KiB), vmas, () => true)).toBe(64 * KiB);
    expect(coveredBytes(range(0x1000n, 4 * KiB), vmas, () => true)).toBe(0);
  });
});

describe('forkProtectionOf', () => {
  it('whole, partial, none, and unknown without smaps', () => {
    expect(forkProtectionOf(range(BASE, 16 * KiB), vmas)).toBe('dontfork');
    expect(forkProtectionOf(range(BASE + 16384n, 16 * KiB), vmas)).toBe('wipeonfork');
    expect(forkProtectionOf(range(BASE + 32768n, 32 * KiB), vmas)).toBe('none');
    expect(forkProtectionOf(range(BASE, 64 * KiB), vmas)).toBe('partial');
    expect(forkProtectionOf(range(LOCKED, 64 * KiB), vmas)).toBe('dontfork');
    expect(forkProtectionOf(range(BASE, 16 * KiB), null)).toBeNull();
  });
});

describe('overlapBytes', () => {
  it('each range: bytes shared with earlier ranges, a three-way overlap counted once', () => {
    expect(overlapBytes([range(0n, 100), range(50n, 100), range(0n, 200)])).toEqual([0, 50, 150]);
    expect(overlapBytes([range(0n, 4096), range(0n, 4096)])).toEqual([0, 4096]);
    expect(overlapBytes([range(0n, 4096), range(4096n, 4096)])).toEqual([0, 0]);
    expect(overlapBytes([])).toEqual([]);
  });
});

function row(source: RegistrationRow['source'], pid: number, addr: bigint | null, length: number, extra: Partial<RegistrationRow> = {}): RegistrationRow {
  return {
    source, pid, comm: 'app', addr, length, pages: Math.ceil(length / 4096), device: null, lkey: null, rkey: null,
    handle: `${source}-${pid}`, forkProtection: null, overlap: false, doubleCountedBytes: 0, evidence: null, ...extra,
  };
}

describe('markOverlaps', () => {
  it('marks pinned rows of one process over the same pages, and the bytes charged twice; other pids, mlock and address-less rows are left alone', () => {
    const rows = [
      row('rdma', 1, 0x10000n, 8192),
      row('io_uring', 1, 0x11000n, 8192),
      row('io_uring', 2, 0x10000n, 8192),
      row('mlock', 1, 0x10000n, 8192),
      row('rdma', 1, null, 8192),
    ];
    markOverlaps(rows);
    expect(rows.map((r) => [r.overlap, r.doubleCountedBytes])).toEqual([[true, 0], [true, 4096], [false, 0], [false, 0], [false, 0]]);
  });
});

function held(id: string, pid: number, backend: string, addr: bigint | null, length: number, extra: Partial<HeldRange> = {}): HeldRange {
  return { id, pid, backend, addr, length, record: 'ok', device: null, lkey: null, rkey: null, stale: false, ...extra };
}

describe('joinHeld', () => {
  it('a held verbs record gives the kernel MR row its address (matched by pid, length and key) and its fork protection', () => {
    const mr = row('rdma', 10, null, 65536, { device: 'rxe0', lkey: '2aa', rkey: '2aa' });
    const out = joinHeld([mr], [held('a1', 10, 'verbs', LOCKED, 65536, { device: 'rxe0', lkey: '2aa' })], new Map([[10, vmas]]), 4096);
    expect(mr.addr).toBe(LOCKED);
    expect(mr.forkProtection).toBe('dontfork');
    expect(out).toEqual([expect.objectContaining({ source: 'held', pid: 10, addr: LOCKED, length: 65536, pages: 16, handle: 'a1', evidence: 'rdma', rkey: '2aa', forkProtection: 'dontfork' })]);
  });

  it('a key that differs, or a held range the kernel does not show, is evidence "missing"', () => {
    const mr = row('rdma', 10, null, 65536, { lkey: '2aa' });
    const out = joinHeld([mr], [held('b1', 10, 'verbs', BASE, 65536, { lkey: '3bb' })], new Map(), 4096);
    expect(mr.addr).toBeNull();
    expect(out[0]).toMatchObject({ evidence: 'missing', forkProtection: null, addr: BASE });
  });

  it('io_uring and mlock records match a kernel row that contains them; a stale record says so and is never confirmed', () => {
    const ring = row('io_uring', 11, BASE, 65536);
    const locked = row('mlock', 12, LOCKED, 65536);
    const out = joinHeld([ring, locked], [
      held('c1', 11, 'uring', BASE + 4096n, 4096),
      held('c2', 12, 'mlock', LOCKED, 65536, { stale: true }),
    ], new Map(), 4096);
    expect(out.map((r) => [r.handle, r.evidence])).toEqual([['c1', 'io_uring'], ['c2:stale', 'missing']]);
  });

  it('a holder without a record takes every kernel row of its pid not claimed by a record; with none, one empty row', () => {
    const a = row('io_uring', 20, BASE, 4096);
    const b = row('mlock', 20, LOCKED, 8192, { forkProtection: 'dontfork' });
    const out = joinHeld([a, b], [
      held('d1', 20, 'uring', BASE, 4096),
      held('d2', 20, '?', null, 0, { record: 'missing' }),
      held('d3', 21, '?', null, 0, { record: 'damaged' }),
    ], new Map(), 4096);
    expect(out.map((r) => [r.handle, r.addr, r.length, r.evidence, r.forkProtection])).toEqual([
      ['d1', BASE, 4096, 'io_uring', null],
      ['d2:missing-record', LOCKED, 8192, 'mlock', 'dontfork'],
      ['d3:damaged-record', null, 0, 'missing', null],
    ]);
  });
});

// The held source reads the typed report a holder stored: these are the columns of `ls` that come
// from it (device, keys, address, length). A key renamed in the report breaks the build there; here,
// the columns must come out filled, and as the kernel's MR table spells keys (hex without 0x).
describe('heldRanges', () => {
  it('a verbs report gives every handle its device and keys', () => {
    const report = sampleReport('verbs', 10);
    const ranges = heldRanges({ id: 'a1', pid: 10, stale: false }, { ...report, handles: [...report.handles, { ...report.handles[0]!, addr: '0x7f0000001000' }] } as typeof report);
    expect(ranges).toEqual([
      { id: 'a1', pid: 10, backend: 'verbs', addr: BASE, length: 4096, record: 'ok', device: 'rxe0', lkey: '2aa', rkey: '2ab', stale: false },
      { id: 'a1', pid: 10, backend: 'verbs', addr: BASE + 4096n, length: 4096, record: 'ok', device: 'rxe0', lkey: '2aa', rkey: '2ab', stale: false },
    ]);
    // and the join finds the kernel's MR by those keys
    const mr = row('rdma', 10, null, 4096, { device: 'rxe0', lkey: '2aa', rkey: '2ab' });
    expect(joinHeld([mr], ranges.slice(0, 1), new Map(), 4096)).toEqual([expect.objectContaining({ source: 'held', addr: BASE, evidence: 'rdma' })]);
  });

  it.each(['uring', 'mlock'] as const)('a %s report: ranges without device or keys, stale as the entry says', (backend) => {
    expect(heldRanges({ id: 'b1', pid: 11, stale: true }, sampleReport(backend, 11))).toEqual([
      { id: 'b1', pid: 11, backend, addr: BASE, length: 4096, record: 'ok', device: null, lkey: null, rkey: null, stale: true },
    ]);
  });
});
