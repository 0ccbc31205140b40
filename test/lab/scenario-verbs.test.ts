// The exit, overlap-lifetime, readonly-private and truncate scenarios with real verbs MRs (rdma_rxe) on
// both lab kernels, pinned and — where rxe has ODP (the newest kernel) — on-demand. At each step
// (onStep; exit: onChild, while the holder holds) the test makes its own readings: the kernel's MR
// table (`rdma -j -d res show mr`), VmPin from /proc/PID/status, the bytes at the address through
// /proc/self/mem, the file through its own pread (an fd of its own from /proc/self/map_files), the
// file's page-cache page through its own MAP_SHARED mapping, and PFNs from its own pagemap reads. Each
// row's verdict must agree with those readings; where a kernel's outcome is deterministic it is
// asserted per kernel (RDMACTL_LAB_KERNEL_NAME), and a table of every row's verdict is printed so the
// lab output records where the two kernels differ. Then `scenario all --backend verbs --json` through
// the built CLI: no row is an error, the document validates against schema/scenario.json, and
// afterwards the kernel's MR table and /proc/vmstat's pins are back where they were.
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, readSync } from 'node:fs';
import { Ajv } from 'ajv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VerbsRegistration } from '../../src/engine/verbs/registration.js';
import { MAP_SHARED, PROT_READ, mmap, munmap, view } from '../../src/ffi/libc.js';
import { IBV_ACCESS_ON_DEMAND } from '../../src/ffi/verbs/enums.js';
import { PATTERN } from '../../src/fork/observe.js';
import { runRow } from '../../src/scenario/engine.js';
import { probeScenarioEnvironment } from '../../src/scenario/environment.js';
import { exitScenario } from '../../src/scenario/scenarios/exit.js';
import { overlapLifetimeScenario } from '../../src/scenario/scenarios/overlapLifetime.js';
import { readonlyPrivateScenario } from '../../src/scenario/scenarios/readonlyPrivate.js';
import { truncateScenario } from '../../src/scenario/scenarios/truncate.js';
import type { ScenarioCase, ScenarioDefinition, ScenarioEnvironment, ScenarioRow, StepTarget } from '../../src/scenario/types.js';
import { allOf, mapFileOf, memBytes, pagemapPfn, pinsOutstanding } from '../scenario/helpers.js';
import { ROOT, inLab, labKernel, notInLabReason, rxeHasOdp, statusKb } from './helpers.js';
import { BIN, becomeSubreaper, kernelMrs, keyHex, running, vmPinOf, type KernelMrRow } from './verbs-helpers.js';

if (!inLab) console.warn(`SKIPPING lab verbs scenario tests: ${notInLabReason}`);

const LENGTH = 16 * 1024;
const KERNEL = labKernel.name; // 'stable' (Debian 6.1) or 'new' (the newest in sid)
const STAT_SETTLE_MS = inLab ? Number(readFileSync('/proc/sys/vm/stat_interval', 'utf8').trim()) * 1000 + 300 : 0;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Access = 'pinned' | 'on-demand';
const ACCESSES: readonly Access[] = ['pinned', 'on-demand'];
const accessBits = (a: Access): number => (a === 'on-demand' ? IBV_ACCESS_ON_DEMAND : 0);

/** What the test read itself after one step. */
interface Reading {
  pinKb: number | null;
  /** This process's MRs in the kernel's table (the row's and its device paths' bounce MRs). */
  mrs: KernelMrRow[];
  /** The row's live MR (by its rkey) is in the kernel's table; null when the step has no live registration. */
  rowMr: boolean | null;
  /** First page at the address, through /proc/self/mem; null: nothing mapped (EIO). */
  mem: Buffer | null;
  /** The file behind the mapping, through the test's own fd and pread; null for anonymous memory. */
  file: Buffer | null;
  /** PFN of the process's first page, from the test's own pagemap read. */
  pfn: number | null;
  /** PFN of the file's page-cache page, through the test's own MAP_SHARED mapping of it. */
  cachePfn: number | null;
}

/** The test's own pread of the whole file (up to LENGTH bytes; fewer after a truncate). */
function fileBytes(link: string): Buffer {
  const fd = openSync(link, 'r');
  try {
    const out = Buffer.alloc(LENGTH);
    const n = readSync(fd, out, 0, LENGTH, 0);
    return out.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}

/** The file's page-cache PFN of its first page: the test maps the file shared, read-only, and loads a byte. */
function pageCachePfn(link: string): number | null {
  const fd = openSync(link, 'r');
  try {
    const addr = mmap(4096, PROT_READ, MAP_SHARED, fd, 0);
    try {
      if (view(addr, 1)[0]! < 0) throw new Error('unreachable');
      return pagemapPfn('self', addr);
    } finally {
      munmap(addr, 4096);
    }
  } finally {
    closeSync(fd);
  }
}

const ownMrs = (): KernelMrRow[] => kernelMrs().filter((mr) => mr.pid === process.pid);

/** What to read besides the MR table, VmPin, the process's bytes and PFN: the file behind the mapping, its page-cache PFN. */
interface Wanted { file: boolean; cachePfn: boolean }

function readNow(target: StepTarget | null, wanted: Wanted = { file: false, cachePfn: false }): Reading {
  const mrs = ownMrs();
  const reg = target?.registration;
  const rkey = reg instanceof VerbsRegistration && !reg.closed ? keyHex(reg.rkey) : null;
  const link = target && wanted.file ? mapFileOf(target.addr) : null;
  return {
    pinKb: statusKb('VmPin'),
    mrs,
    rowMr: rkey === null ? null : mrs.some((mr) => mr.rkey === rkey),
    mem: target ? memBytes(target.addr, 4096) : null,
    file: link ? fileBytes(link) : null,
    pfn: target ? pagemapPfn('self', target.addr) : null,
    cachePfn: link && wanted.cachePfn ? pageCachePfn(link) : null,
  };
}

let env: ScenarioEnvironment;
/** Every row run, for the per-kernel table. */
const table: Array<{ row: ScenarioRow; access: Access; evidence: string }> = [];

async function runWithReadings(def: ScenarioDefinition, c: ScenarioCase, access: Access, wanted?: Wanted): Promise<{ row: ScenarioRow; at: Map<string, Reading>; before: Reading }> {
  const at = new Map<string, Reading>();
  const before = readNow(null);
  const row = await runRow(def, c, {
    length: LENGTH, env, verbsAccess: accessBits(access), stepDelayMs: 0,
    onStep: (step, target) => { at.set(step, readNow(target, wanted)); },
  });
  return { row, at, before };
}

const bytesOf = (b: Buffer | null): string => (b === null ? 'none' : b.length === 0 ? 'EOF' : allOf(b, b[0]!) ? `0x${b[0]!.toString(16)}×${b.length}` : 'mixed');
const mrsLine = (r: Reading | undefined): string => (r ? `${r.mrs.length} MR${r.rowMr === null ? '' : r.rowMr ? ' (row MR in)' : ' (row MR gone)'}` : '-');

function record(row: ScenarioRow, access: Access, evidence: string): void {
  table.push({ row, access, evidence });
  const steps = row.observations.map((o) => `${o.step}: VmPin ${o.pinnedBytes ?? '-'} process ${o.processSees ?? '-'} device ${o.deviceReads ?? '-'}${o.note ? ` (${o.note})` : ''}`);
  console.log(`[lab ${KERNEL} ${labKernel.release}] ${row.scenario} ${row.variant ?? ''} ${row.backing} ${access}: ${row.verdict}${row.reason ? ` — ${row.reason}` : ''}\n  test saw: ${evidence}\n  ${steps.join('\n  ')}`);
}

/** Rows where rxe has no ODP (ibv_devinfo: no ODP_SUPPORT) come back skipped, saying so, with nothing registered. */
function skippedForOdp(row: ScenarioRow, access: Access): boolean {
  if (access !== 'on-demand' || row.verdict !== 'skipped') return false;
  expect(row.reason).toMatch(/ODP|on-demand/i);
  expect(rxeHasOdp(), 'ibv_devinfo says rxe0 has ODP, yet the row was skipped').toBe(false);
  expect(ownMrs()).toEqual([]);
  return true;
}

/**
 * What each kernel did, asserted exactly where it is deterministic (one kernel, one code path, no
 * timing): the key is scenario/variant/backing/access. Why each differs is said next to it.
 */
const EXPECTED: Record<string, Record<string, string>> = {
  stable: {
    // A pinned MR keeps its pages through exit (released by the kernel when the holder's uverbs file
    // closes), through the other MR's dereg and through munmap.
    'exit//anon/pinned': 'released-at-exit',
    'overlap-lifetime//anon/pinned': 'lifetimes-independent',
    // 6.1's ib_umem_get pins read-only MRs with FOLL_WRITE|FOLL_FORCE (removed in 6.2): the pin breaks
    // COW and the MR holds a private anonymous copy, not the file's page-cache page.
    'readonly-private/read-access/file-private/pinned': 'private-copy',
    // Write access to a PROT_READ mapping: FOLL_WRITE without FOLL_FORCE is refused (EFAULT).
    'readonly-private/write-access/file-private/pinned': 'refused',
    // The pin keeps the old shmem/tmpfs pages after truncate or hole punch; the device's writes land in
    // pages the file no longer has.
    'truncate/truncate/memfd/pinned': 'device-keeps-old-pages',
    'truncate/punch-hole/memfd/pinned': 'device-keeps-old-pages',
    // The guest's TMPDIR is tmpfs: a "regular file" there is shmem, which both kernels let you pin.
    'truncate/truncate/file-shared/pinned': 'device-keeps-old-pages',
  },
  new: {
    'exit//anon/pinned': 'released-at-exit',
    'exit//anon/on-demand': 'released-at-exit',
    'overlap-lifetime//anon/pinned': 'lifetimes-independent',
    // An ODP MR follows the page tables: after munmap there is nothing to fault in.
    'overlap-lifetime//anon/on-demand': 'lost-after-munmap',
    // A read-only MR no longer pins with FOLL_WRITE|FOLL_FORCE (gone in 6.2), yet the pin still lands on
    // a private copy: a long-term read-only pin of a page in a private (COW) mapping makes GUP unshare
    // it first, so the pin stays coherent with the process. Same verdict as 6.1, different path.
    'readonly-private/read-access/file-private/pinned': 'private-copy',
    'readonly-private/write-access/file-private/pinned': 'refused',
    // An ODP MR pins nothing at registration (so write access to a PROT_READ mapping is not refused
    // there) and the device's reads fault in what the process maps: the page-cache page.
    'readonly-private/read-access/file-private/on-demand': 'page-cache',
    'readonly-private/write-access/file-private/on-demand': 'page-cache',
    'truncate/truncate/memfd/pinned': 'device-keeps-old-pages',
    'truncate/punch-hole/memfd/pinned': 'device-keeps-old-pages',
    'truncate/truncate/file-shared/pinned': 'device-keeps-old-pages',
    // ODP after truncate to 0: nothing to fault in beyond EOF, the RDMA READ fails (and the QP errors
    // out); after a hole punch the fault maps the file's new zero page, so the device follows the file.
    'truncate/truncate/memfd/on-demand': 'device-lost-access',
    'truncate/punch-hole/memfd/on-demand': 'device-follows-file',
    'truncate/truncate/file-shared/on-demand': 'device-lost-access',
  },
};

function expectVerdictFor(row: ScenarioRow, access: Access): void {
  const key = `${row.scenario}/${row.variant ?? ''}/${row.backing}/${access}`;
  const expected = EXPECTED[KERNEL]?.[key];
  if (expected !== undefined) expect(row.verdict, `${KERNEL}: ${key} — ${row.reason}`).toBe(expected);
}

describe.skipIf(!inLab)(`exit, overlap-lifetime, readonly-private, truncate with verbs on ${KERNEL || '?'} (${labKernel.release})`, () => {
  beforeAll(async () => {
    becomeSubreaper();
    env = await probeScenarioEnvironment(true);
    expect(env.verbsUnavailable).toBeNull();
    expect(ownMrs()).toEqual([]);
  });

  afterAll(() => {
    if (table.length === 0) return;
    const lines = table.map(({ row, access, evidence }) =>
      `  ${row.scenario.padEnd(17)} ${(row.variant ?? '-').padEnd(12)} ${row.backing.padEnd(12)} ${access.padEnd(9)} ${row.verdict.padEnd(24)} ${evidence}`);
    console.log(`\nverdicts on ${KERNEL} (${labKernel.release}):\n  ${'scenario'.padEnd(17)} ${'variant'.padEnd(12)} ${'backing'.padEnd(12)} ${'access'.padEnd(9)} ${'verdict'.padEnd(24)} test's own readings\n${lines.join('\n')}`);
  });

  for (const access of ACCESSES) {
    it(`exit, ${access} MR: the killed holder's MR leaves the kernel's table and its pins come back`, async () => {
      const seen: { pid: number; pinKb: number | null; mrs: KernelMrRow[] }[] = [];
      const pinsBefore = pinsOutstanding();
      const row = await runRow(exitScenario, { backend: 'verbs', backing: 'anon', variant: null }, {
        length: LENGTH, env, verbsAccess: accessBits(access), stepDelayMs: 0,
        // Called once the holder has registered and before it is killed: read its VmPin and its MRs.
        onChild: (pid) => { seen.push({ pid, pinKb: vmPinOf(pid), mrs: kernelMrs().filter((mr) => mr.pid === pid) }); },
      });
      if (skippedForOdp(row, access)) { record(row, access, 'skipped'); return; }
      expect(row.verdict, JSON.stringify(row)).not.toBe('error');
      expect(seen).toHaveLength(1);
      const { pid, pinKb, mrs } = seen[0]!;
      // The holder's one MR, as long as the row; pinned: VmPin is its length, on-demand: nothing pinned.
      expect(mrs.map((mr) => mr.mrlen)).toEqual([LENGTH]);
      expect(pinKb! * 1024).toBe(access === 'pinned' ? LENGTH : 0);
      // After the row: the holder is gone (reaped), no MR of its pid is left.
      expect(running(pid)).toBe(false);
      expect(existsSync(`/proc/${pid}`)).toBe(false);
      expect(kernelMrs().filter((mr) => mr.pid === pid)).toEqual([]);
      // The machine's outstanding pins come back (nothing else pins in the guest; counters fold every stat_interval).
      let pinsAfter = pinsOutstanding();
      for (let i = 0; i < 5 && pinsAfter !== pinsBefore; i++) { await sleep(STAT_SETTLE_MS); pinsAfter = pinsOutstanding(); }
      if (pinsBefore !== null) expect(pinsAfter).toBe(pinsBefore);
      record(row, access, `holder VmPin ${pinKb} kB, ${mrs.length} MR while held; after: no /proc entry, 0 MRs of pid ${pid}, pins outstanding ${pinsAfter === pinsBefore ? 'back' : `${pinsAfter} vs ${pinsBefore}`}`);
      // The verdict agrees: gone from /proc and from the MR table, pins back → released.
      expect(row.verdict).toBe('released-at-exit');
      expectVerdictFor(row, access);
    });
  }

  for (const access of ACCESSES) {
    it(`overlap-lifetime, two ${access} MRs: the MR table and VmPin follow each release; munmap leaves the last MR`, async () => {
      const { row, at, before } = await runWithReadings(overlapLifetimeScenario, { backend: 'verbs', backing: 'anon', variant: null }, access);
      if (skippedForOdp(row, access)) { record(row, access, 'skipped'); return; }
      expect(row.verdict, JSON.stringify(row)).not.toBe('error');
      const registered = at.get('registered')!;
      const releasedOne = at.get('released-one')!;
      const wrote = at.get('device-wrote')!;
      const unmapped = at.get('munmap')!;
      const released = at.get('released')!;
      // Two MRs over the range plus one bounce MR per device path: four, then the first MR deregistered
      // (its path still open), then the first path closed, then none.
      expect(registered.mrs.map((mr) => mr.mrlen)).toEqual([LENGTH, LENGTH, LENGTH, LENGTH]);
      expect(registered.rowMr).toBe(true);
      expect(releasedOne.mrs).toHaveLength(3);
      expect(releasedOne.rowMr).toBe(true);
      expect(unmapped.mrs).toHaveLength(2);
      expect(unmapped.rowMr).toBe(true);
      expect(released.mrs).toEqual([]);
      // VmPin: every pinned MR counts (ib_umem_get adds each, no dedup); the row's ODP MRs count nothing.
      const rowPinned = access === 'pinned' ? 1 : 0;
      const delta = (r: Reading): number => pinnedDelta(before, r);
      expect(delta(registered)).toBe((2 + 2 * rowPinned) * LENGTH);
      expect(delta(releasedOne)).toBe((2 + rowPinned) * LENGTH);
      expect(delta(unmapped)).toBe((1 + rowPinned) * LENGTH);
      expect(released.pinKb).toBe(before.pinKb);
      // The process's own bytes: the pattern, then the remaining handle's RDMA WRITE, then nothing mapped.
      expect(allOf(registered.mem, PATTERN.preFork)).toBe(true);
      expect(allOf(wrote.mem, PATTERN.device)).toBe(true);
      expect(unmapped.mem).toBeNull();
      const obs = (step: string) => row.observations.find((o) => o.step === step)!;
      expect(obs('device-wrote').processSees).toBe('device-write');
      expect(obs('munmap').processSees).toBe('unmapped');
      record(row, access, `MRs ${registered.mrs.length}/${releasedOne.mrs.length}/${unmapped.mrs.length}/${released.mrs.length}, VmPin +${delta(registered) / 1024}/+${delta(releasedOne) / 1024}/+${delta(unmapped) / 1024}/+${delta(released) / 1024} kB; process after device write ${bytesOf(wrote.mem)}, after munmap ${bytesOf(unmapped.mem)}`);
      if (access === 'pinned') {
        // The remaining MR is pinned (VmPin) and still in the table after munmap: it holds the old pages,
        // so the device's read after munmap must have found the bytes it wrote.
        expect(row.verdict).toBe('lifetimes-independent');
        expect(obs('munmap').deviceReads).toBe('device-write');
      } else {
        // Nothing pins the pages: whether the device reached them after munmap is the row's evidence.
        expect(['lifetimes-independent', 'lost-after-munmap']).toContain(row.verdict);
        expect(row.verdict === 'lost-after-munmap').toBe(obs('munmap').deviceReads !== 'device-write');
      }
      expectVerdictFor(row, access);
    });
  }

  for (const access of ACCESSES) {
    for (const variant of ['read-access', 'write-access'] as const) {
      it(`readonly-private, ${variant}, ${access} MR: which page the process maps (the test's own page-cache mapping) decides the verdict`, async () => {
        const { row, at, before } = await runWithReadings(readonlyPrivateScenario, { backend: 'verbs', backing: 'file-private', variant }, access, { file: true, cachePfn: true });
        if (skippedForOdp(row, access)) { record(row, access, 'skipped'); return; }
        expect(row.verdict, JSON.stringify(row)).not.toBe('error');
        const after = readNow(null);
        expect(after.mrs).toEqual([]);
        expect(after.pinKb).toBe(before.pinKb);
        if (row.verdict === 'refused') {
          // Refused at registration: the scenario never reached a step; nothing was registered.
          expect(at.size).toBe(0);
          expect(row.observations.at(-1)!.note).toMatch(/E[A-Z]+/);
          record(row, access, `refused: ${row.observations.at(-1)!.note}`);
          expectVerdictFor(row, access);
          return;
        }
        const registered = at.get('registered')!;
        const written = at.get('file-written')!;
        expect(registered.rowMr).toBe(true);
        // The file through the test's own pread: the pattern, then the rewrite.
        expect(allOf(registered.file, PATTERN.preFork)).toBe(true);
        expect(allOf(written.file, PATTERN.parent)).toBe(true);
        expect(registered.pfn).not.toBeNull();
        expect(registered.cachePfn).not.toBeNull();
        const onPageCache = registered.pfn === registered.cachePfn;
        // A pinned MR pins what the process maps at registration (pagemap, read by the test): the
        // page-cache page → the device sees the file's rewrite; a private copy → it keeps the old bytes.
        // The process reads the same page as the device, so its bytes (the test's own read) agree.
        expect(allOf(written.mem, onPageCache ? PATTERN.parent : PATTERN.preFork)).toBe(true);
        expect(written.pfn === written.cachePfn).toBe(onPageCache);
        if (access === 'pinned') {
          expect(pinnedDelta(before, registered)).toBe(2 * LENGTH); // the MR and the device path's bounce MR
          expect(row.verdict).toBe(onPageCache ? 'page-cache' : 'private-copy');
        } else {
          expect(pinnedDelta(before, registered)).toBe(LENGTH); // the bounce MR only: ODP pins nothing
          expect(['page-cache', 'private-copy', 'split', 'unverified']).toContain(row.verdict);
          if (row.verdict === 'page-cache') expect(onPageCache).toBe(true);
        }
        record(row, access, `process PFN ${onPageCache ? '=' : '≠'} the test's page-cache PFN; after the rewrite the file reads ${bytesOf(written.file)}, the process ${bytesOf(written.mem)}`);
        expectVerdictFor(row, access);
      });
    }
  }

  for (const access of ACCESSES) {
    for (const [variant, backing] of [['truncate', 'memfd'], ['punch-hole', 'memfd'], ['truncate', 'file-shared']] as const) {
      it(`truncate, ${variant} of a ${backing}, ${access} MR: the test's own pread and /proc/self/mem against what the device did`, async () => {
        const { row, at, before } = await runWithReadings(truncateScenario, { backend: 'verbs', backing, variant }, access, { file: true, cachePfn: false });
        if (skippedForOdp(row, access)) { record(row, access, 'skipped'); return; }
        expect(row.verdict, JSON.stringify(row)).not.toBe('error');
        const after = readNow(null);
        expect(after.mrs).toEqual([]);
        expect(after.pinKb).toBe(before.pinKb);
        if (row.verdict === 'refused') {
          expect(at.size).toBe(0);
          record(row, access, `refused: ${row.observations.at(-1)!.note}`);
          expectVerdictFor(row, access);
          return;
        }
        const registered = at.get('registered')!;
        const cut = at.get(variant === 'punch-hole' ? 'punched' : 'truncated')!;
        const wrote = at.get('device-wrote')!;
        const released = at.get('released')!;
        expect(registered.rowMr).toBe(true);
        expect(cut.rowMr).toBe(true);
        expect(released.rowMr).toBeNull();
        expect(released.mrs).toEqual([]);
        expect(pinnedDelta(before, registered)).toBe((access === 'pinned' ? 2 : 1) * LENGTH);
        expect(allOf(registered.file, PATTERN.preFork)).toBe(true);
        expect(allOf(registered.mem, PATTERN.preFork)).toBe(true);
        if (variant === 'truncate') {
          // The file is empty, and nothing backs the process's range (EIO where a load would SIGBUS).
          expect(cut.file!.length).toBe(0);
          expect(cut.mem).toBeNull();
          expect(allOf(at.get('resized')!.file, 0)).toBe(true);
        } else {
          expect(allOf(cut.file, 0)).toBe(true); // a hole reads zeros
        }
        const obs = (step: string) => row.observations.find((o) => o.step === step)!;
        const fileGotDeviceWrite = allOf(wrote.file, PATTERN.device);
        if (row.verdict === 'device-keeps-old-pages') {
          // The device wrote into the old pages, which neither the file nor the process has any more.
          expect(fileGotDeviceWrite).toBe(false);
          expect(allOf(wrote.mem, PATTERN.device)).toBe(false);
          expect(obs(variant === 'punch-hole' ? 'punched' : 'truncated').deviceReads).toBe('pre-fork');
        } else if (row.verdict === 'device-follows-file') {
          // The device's write (if it worked) landed in the file's current pages: the test's pread sees it.
          if (obs('device-wrote').note?.includes('failed') !== true) expect(fileGotDeviceWrite).toBe(true);
        }
        if (access === 'pinned') {
          // A pinned MR holds the pages it registered; nothing lets it follow the file.
          expect(row.verdict).toBe('device-keeps-old-pages');
        } else {
          expect(['device-lost-access', 'device-follows-file', 'device-keeps-old-pages']).toContain(row.verdict);
        }
        record(row, access, `file ${bytesOf(registered.file)} → ${bytesOf(cut.file)} → after device write ${bytesOf(wrote.file)}; process ${bytesOf(cut.mem)} → ${bytesOf(wrote.mem)}; VmPin +${pinnedDelta(before, registered) / 1024} kB, MRs ${registered.mrs.length} → ${released.mrs.length}`);
        expectVerdictFor(row, access);
      });
    }
  }
});

function pinnedDelta(before: Reading, r: Reading): number {
  return (r.pinKb! - before.pinKb!) * 1024;
}

describe.skipIf(!inLab)(`rdmactl scenario all --backend verbs --json on ${KERNEL || '?'} (${labKernel.release})`, () => {
  it('no row is an error, the document validates against schema/scenario.json, and nothing stays registered or pinned', { timeout: 600_000 }, async () => {
    const schema = JSON.parse(readFileSync(`${ROOT}schema/scenario.json`, 'utf8')) as object;
    const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true });
    const validate = ajv.compile(schema);
    const mrsBefore = kernelMrs();
    await sleep(STAT_SETTLE_MS);
    const pinsBefore = pinsOutstanding();
    const r = spawnSync(process.execPath, [BIN, 'scenario', 'all', '--backend', 'verbs', '--json'], {
      encoding: 'utf8', env: { ...process.env, RDMACTL_DEBUG: '', NO_COLOR: '1' }, timeout: 540_000, maxBuffer: 64 << 20,
    });
    expect(r.error).toBeUndefined();
    const doc = JSON.parse(r.stdout) as { schema: string; rows: Array<{ scenario: string; variant: string | null; backing: string; verdict: string; reason: string | null }> };
    const rows = doc.rows;
    console.log(`\nscenario all --backend verbs on ${KERNEL} (${labKernel.release}), exit ${r.status}:\n${rows.map((x) => `  ${x.scenario.padEnd(17)} ${(x.variant ?? '-').padEnd(24)} ${x.backing.padEnd(12)} ${x.verdict}${x.verdict === 'skipped' || x.verdict === 'error' ? ` — ${x.reason}` : ''}`).join('\n')}`);
    expect(r.status, r.stderr).toBe(0);
    expect(validate(doc), ajv.errorsText(validate.errors)).toBe(true);
    expect(rows.length).toBeGreaterThan(0);
    expect(rows.filter((x) => x.verdict === 'error')).toEqual([]);
    // Every scenario with a verbs backend ran at least one row.
    for (const name of ['exit', 'overlap-lifetime', 'readonly-private', 'truncate', 'munmap', 'munlock']) expect(rows.some((x) => x.scenario === name), name).toBe(true);
    // Afterwards: no MR of that process (or of its holders) in the kernel's table, the table as before.
    expect(kernelMrs().filter((mr) => mr.pid === r.pid)).toEqual([]);
    expect(kernelMrs()).toEqual(mrsBefore);
    // /proc/vmstat's outstanding pins come back; they fold per-CPU deltas every vm.stat_interval.
    let pinsAfter = pinsOutstanding();
    for (let i = 0; i < 6 && pinsAfter !== pinsBefore; i++) { await sleep(STAT_SETTLE_MS); pinsAfter = pinsOutstanding(); }
    if (pinsBefore === null) console.warn('skipped the /proc/vmstat check: this kernel has no nr_foll_pin_acquired/released');
    else expect(pinsAfter).toBe(pinsBefore);
  });
});
