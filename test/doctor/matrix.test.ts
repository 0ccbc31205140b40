// Prediction vs reality: `doctor --size S --backend B --try` as uid 65534 without CAP_IPC_LOCK, under
// lowered RLIMIT_MEMLOCK, sizes just under and over each limit, with and without another uid-65534
// process already holding io_uring buffers. In every row the prediction must equal what the kernel
// did, and a refused row must name the true cause. The matrix is printed as a table.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UNPRIVILEGED, builtOrThrow, exited, measuredRingsCharged, startRdmactl, unprivilegedUnavailable } from '../helpers/spawn.js';
import { doctorUnprivileged, findingOf, memlockSoft, type DoctorJson } from './helpers.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const noUnprivileged = unprivilegedUnavailable();

interface Row {
  backend: 'uring' | 'mlock';
  backing: 'anon' | 'thp' | 'hugetlb';
  limit: number | null;
  holderBytes: number;
  size: number;
  predicted: string;
  cause: string;
  outcome: string;
  errno: string;
  expectedCause: string;
  match: boolean;
  note: string;
}

const rows: Row[] = [];
const fmt = (b: number | null): string => (b === null ? 'unlimited' : b >= MiB && b % MiB === 0 ? `${b / MiB} MiB` : `${b / KiB} KiB`);

beforeAll(() => builtOrThrow());

afterAll(() => {
  if (rows.length === 0) return;
  const header = ['backend', 'backing', 'limit', 'held by other', 'size', 'predicted', 'cause', 'kernel', 'errno', 'match'];
  const cells = rows.map((r) => [r.backend, r.backing, fmt(r.limit), r.holderBytes ? fmt(r.holderBytes) : '-', fmt(r.size), r.predicted, r.cause, r.outcome, r.errno, r.match ? 'yes' : `NO ${r.note}`]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]): string => c.map((x, i) => x.padEnd(widths[i]!)).join('  ');
  console.log(['doctor --try matrix (uid 65534, no CAP_IPC_LOCK):', line(header), ...cells.map(line)].join('\n'));
});

/** The cause a refusal must name, decided from the row alone: the request over the limit by itself is memlock.limit; otherwise it is the user's io_uring charge. */
function expectedCause(backend: Row['backend'], limit: number, size: number): string {
  return backend === 'mlock' || size > limit ? 'memlock.limit' : 'uring.user-charge';
}

function runRow(backend: Row['backend'], limit: number, size: number, holderBytes: number, holderPid: number | null): void {
  let json: DoctorJson | null = null;
  // Other uid-65534 tests may start or stop io_uring buffers between prediction and try: one retry.
  for (let attempt = 0; attempt < 2; attempt++) {
    json = doctorUnprivileged(limit, ['--size', String(size), '--backend', backend, '--try', '--json']).json;
    if (json?.prediction?.outcome === json?.try?.outcome) break;
  }
  const prediction = json!.prediction!;
  const tried = json!.try!;
  const cause = expectedCause(backend, limit, size);
  const row: Row = {
    backend, backing: 'anon', limit, holderBytes, size,
    predicted: prediction.outcome, cause: prediction.cause ?? '-', outcome: tried.outcome, errno: tried.errno ?? '-',
    expectedCause: cause, match: prediction.outcome === tried.outcome, note: '',
  };
  rows.push(row);
  expect(prediction.outcome, `prediction for ${backend} ${fmt(size)} under ${fmt(limit)}: ${prediction.summary}; kernel: ${tried.message}`).toBe(tried.outcome);
  expect(findingOf(json!, 'try.outcome').status).toBe('ok');
  if (tried.outcome === 'refused') {
    expect(tried.errno).toBe('ENOMEM');
    expect(prediction.cause).toBe(cause);
    if (holderPid !== null && cause === 'uring.user-charge') expect(findingOf(json!, 'uring.user-charge').summary).toContain(`pid ${holderPid} `);
  } else {
    const charged = backend === 'mlock' ? tried.lockedBytes : tried.pinnedBytes;
    expect(charged).toBe(Math.ceil(size / 4096) * 4096);
  }
}

describe.skipIf(noUnprivileged !== null)('doctor --try: prediction equals the kernel\'s outcome', () => {
  const limits = [64 * KiB, 8 * MiB];
  const offsets = [-20 * KiB, -12 * KiB, -4 * KiB, 0, 4 * KiB];

  for (const backend of ['uring', 'mlock'] as const) {
    for (const limit of limits) {
      it(`${backend}, RLIMIT_MEMLOCK ${fmt(limit)}, sizes around the limit`, () => {
        for (const offset of offsets) runRow(backend, limit, limit + offset, 0, null);
      }, 120_000);
    }
  }

  it.skipIf(memlockSoft('self') !== null)('unlimited RLIMIT_MEMLOCK (needs a test runner whose limit is already unlimited)', () => {
    for (const backend of ['uring', 'mlock'] as const) runRow(backend, Number.MAX_SAFE_INTEGER, 64 * MiB, 0, null);
  });
  if (memlockSoft('self') !== null) {
    console.warn(`SKIPPED unlimited rows: this test runs with RLIMIT_MEMLOCK ${fmt(memlockSoft('self'))} and cannot raise it (no CAP_SYS_RESOURCE); only lower limits are tested`);
  }

  for (const [limit, held] of [[64 * KiB, 32 * KiB], [8 * MiB, 4 * MiB]] as const) {
    it(`uring with another uid-65534 process holding ${fmt(held)} under ${fmt(limit)}`, async () => {
      const holder = await startRdmactl(['reg', String(held), '--backend', 'uring', '--json'], ['prlimit', `--memlock=${limit}:${limit}`, ...UNPRIVILEGED]);
      try {
        const remaining = limit - held;
        for (const offset of offsets) runRow('uring', limit, remaining + offset, held, holder.child.pid!);
      } finally {
        holder.child.kill('SIGTERM');
        await exited(holder.child);
      }
    }, 120_000);
  }
});

// --backing thp and hugetlb map whole huge pages: 32 KiB of thp is a 2 MiB mapping, registered, pinned
// and charged as 2 MiB. The prediction must use that size, not the one asked for.
const THP_BYTES = Number(readFileSync('/sys/kernel/mm/transparent_hugepage/hpage_pmd_size', 'utf8'));
const HUGE_BYTES = (Number(/^Hugepagesize:\s+(\d+) kB$/m.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1]) || 2048) * KiB;
const hugeDir = `/sys/kernel/mm/hugepages/hugepages-${HUGE_BYTES / KiB}kB`;
const hugeAvailable = (): number => Number(readFileSync(`${hugeDir}/free_hugepages`, 'utf8')) - Number(readFileSync(`${hugeDir}/resv_hugepages`, 'utf8'));

function runBackingRow(backend: Row['backend'], backing: 'thp' | 'hugetlb', limit: number, size: number, expected: { outcome: string; cause: string | null; chargedBytes: number | null }): void {
  const json = doctorUnprivileged(limit, ['--size', String(size), '--backend', backend, '--backing', backing, '--try', '--json']).json!;
  const prediction = json.prediction!;
  const tried = json.try!;
  // What the checks charged: the size as mapped, whole huge pages.
  const pageBytes = backing === 'thp' ? THP_BYTES : HUGE_BYTES;
  expect(findingOf(json, 'memlock.limit').evidence['requestBytes']).toBe(Math.ceil(size / pageBytes) * pageBytes);
  rows.push({
    backend, backing, limit, holderBytes: 0, size,
    predicted: prediction.outcome, cause: prediction.cause ?? '-', outcome: tried.outcome, errno: tried.errno ?? '-',
    expectedCause: expected.cause ?? '-', match: prediction.outcome === tried.outcome, note: '',
  });
  expect(prediction.outcome, `prediction for ${backend} ${backing} ${fmt(size)} under ${fmt(limit)}: ${prediction.summary}; kernel: ${tried.message}`).toBe(tried.outcome);
  expect(findingOf(json, 'try.outcome').status).toBe('ok');
  expect(tried.outcome).toBe(expected.outcome);
  expect(prediction.cause).toBe(expected.cause);
  if (expected.chargedBytes !== null) expect(backend === 'mlock' ? tried.lockedBytes : tried.pinnedBytes).toBe(expected.chargedBytes);
  if (tried.outcome === 'refused' && expected.cause !== 'hugepages.reserved') expect(tried.errno).toBe('ENOMEM');
}

describe.skipIf(noUnprivileged !== null)('doctor --try with huge-page backings: predicted on the rounded size', () => {
  const limit = 2 * THP_BYTES;
  for (const backend of ['uring', 'mlock'] as const) {
    it(`${backend}, thp (${fmt(THP_BYTES)} pages): 32 KiB under 64 KiB is refused, and sizes around ${fmt(limit)} are decided by their rounded size`, () => {
      runBackingRow(backend, 'thp', 64 * KiB, 32 * KiB, { outcome: 'refused', cause: 'memlock.limit', chargedBytes: null });
      runBackingRow(backend, 'thp', limit, 32 * KiB, { outcome: 'registered', cause: null, chargedBytes: THP_BYTES });
      runBackingRow(backend, 'thp', limit, THP_BYTES + 4 * KiB, backend === 'mlock'
        ? { outcome: 'registered', cause: null, chargedBytes: limit }
        // io_uring also charges the ring's pages (Linux ≥ 6.15): a buffer of exactly the limit does not fit with them.
        : { outcome: ringsCharged() ? 'refused' : 'registered', cause: ringsCharged() ? 'uring.user-charge' : null, chargedBytes: ringsCharged() ? null : limit });
      runBackingRow(backend, 'thp', limit, limit + 4 * KiB, { outcome: 'refused', cause: 'memlock.limit', chargedBytes: null });
    }, 120_000);

    it(`${backend}, hugetlb (${fmt(HUGE_BYTES)} pages): 32 KiB charges a whole huge page, or is refused when none is free`, () => {
      if (hugeAvailable() < 1) {
        console.warn(`hugetlb rows: no free ${fmt(HUGE_BYTES)} huge page here (nothing reserved; not reserving any on a shared machine): only the refusal for want of pages is verified, not the charge of a registered one`);
        runBackingRow(backend, 'hugetlb', 64 * KiB, 32 * KiB, { outcome: 'refused', cause: 'hugepages.reserved', chargedBytes: null });
        runBackingRow(backend, 'hugetlb', 2 * HUGE_BYTES, 32 * KiB, { outcome: 'refused', cause: 'hugepages.reserved', chargedBytes: null });
        return;
      }
      runBackingRow(backend, 'hugetlb', 64 * KiB, 32 * KiB, { outcome: 'refused', cause: 'memlock.limit', chargedBytes: null });
      runBackingRow(backend, 'hugetlb', 2 * HUGE_BYTES, 32 * KiB, { outcome: 'registered', cause: null, chargedBytes: HUGE_BYTES });
    }, 120_000);
  }
});

/** Whether this kernel charges io_uring's rings against RLIMIT_MEMLOCK, measured once by the test itself. */
let ringsChargedMeasured: boolean | null | undefined;
function ringsCharged(): boolean {
  ringsChargedMeasured ??= measuredRingsCharged();
  if (ringsChargedMeasured === null) throw new Error(`cannot measure the ring charge: ${unprivilegedUnavailable()}`);
  return ringsChargedMeasured;
}
