// Prediction vs reality: `doctor --size S --backend B --try` as uid 65534 without CAP_IPC_LOCK, under
// lowered RLIMIT_MEMLOCK, sizes just under and over each limit, with and without another uid-65534
// process already holding io_uring buffers. In every row the prediction must equal what the kernel
// did, and a refused row must name the true cause. The matrix is printed as a table.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UNPRIVILEGED, builtOrThrow, exited, startRdmactl, unprivilegedUnavailable } from '../helpers/spawn.js';
import { doctorUnprivileged, findingOf, memlockSoft, type DoctorJson } from './helpers.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const noUnprivileged = unprivilegedUnavailable();

interface Row {
  backend: 'uring' | 'mlock';
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
  const header = ['backend', 'limit', 'held by other', 'size', 'predicted', 'cause', 'kernel', 'errno', 'match'];
  const cells = rows.map((r) => [r.backend, fmt(r.limit), r.holderBytes ? fmt(r.holderBytes) : '-', fmt(r.size), r.predicted, r.cause, r.outcome, r.errno, r.match ? 'yes' : `NO ${r.note}`]);
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
    backend, limit, holderBytes, size,
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
