// File-backed long-term pins on a real disk file system: the lab's ext4 scratch disk (RDMACTL_LAB_DISK).
// With TMPDIR pointing there, the truncate scenario (file-shared) and readonly-private put their
// unnamed files on ext4, not tmpfs, with real verbs MRs (rdma_rxe) and io_uring fixed buffers. The
// test's own readings: statfs of the file behind the mapping (through /proc/self/map_files), its own
// pread and /proc/self/mem, its own page-cache PFN, the kernel's MR table and VmPin; and the kernel's
// answer to the test's own registration of a file it wrote on the disk (`rdmactl reg --file`). Where
// the kernel allows the long-term pin of a shared ext4 page (6.1), truncate shows the 2018 thread —
// the file and the device disagree; where it refuses (6.5+), the row is the refusal, with its errno.
// Then doctor --try on the same disk: its file.longterm-pin prediction must match.
import { closeSync, openSync, readSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VerbsRegistration } from '../../src/engine/verbs/registration.js';
import { MAP_SHARED, PROT_READ, mmap, munmap, view } from '../../src/ffi/libc.js';
import { PATTERN } from '../../src/fork/observe.js';
import { runRow } from '../../src/scenario/engine.js';
import { probeScenarioEnvironment } from '../../src/scenario/environment.js';
import { readonlyPrivateScenario } from '../../src/scenario/scenarios/readonlyPrivate.js';
import { truncateScenario } from '../../src/scenario/scenarios/truncate.js';
import type { ScenarioEnvironment, ScenarioRow, StepTarget } from '../../src/scenario/types.js';
import { allOf, mapFileOf, memBytes, pagemapPfn } from '../scenario/helpers.js';
import { inLab, labDisk, labDiskMissing, labKernel, notInLabReason, statusKb } from './helpers.js';
import { becomeSubreaper, kernelMrs, keyHex, labRuntime, rdmactl } from './verbs-helpers.js';

if (!inLab) console.warn(`SKIPPING lab file-on-disk tests: ${notInLabReason}`);

const LENGTH = 16 * 1024;
const EXT4_SUPER_MAGIC = 0xef53;
const BACKENDS = ['verbs', 'uring'] as const;
type Backend = (typeof BACKENDS)[number];

/** The kernel's answer to the test's own registration of a shared mapping of its own file on the disk. */
interface OwnAttempt { registered: boolean; errno: string | null }

interface Reading { filesystem: number | null; file: Buffer | null; mem: Buffer | null; pfn: number | null; cachePfn: number | null; rowMr: boolean | null }

function readAt(target: StepTarget): Reading {
  const link = mapFileOf(target.addr);
  let file: Buffer | null = null;
  let cachePfn: number | null = null;
  if (link) {
    const fd = openSync(link, 'r');
    try {
      const buf = Buffer.alloc(LENGTH);
      file = buf.subarray(0, readSync(fd, buf, 0, LENGTH, 0));
      if (file.length > 0) {
        const addr = mmap(4096, PROT_READ, MAP_SHARED, fd, 0);
        try {
          if (view(addr, 1)[0]! < 0) throw new Error('unreachable');
          cachePfn = pagemapPfn('self', addr);
        } finally {
          munmap(addr, 4096);
        }
      }
    } finally {
      closeSync(fd);
    }
  }
  const reg = target.registration;
  return {
    filesystem: link ? Number(statfsSync(link).type) : null,
    file,
    mem: memBytes(target.addr, 4096),
    pfn: pagemapPfn('self', target.addr),
    cachePfn,
    rowMr: reg instanceof VerbsRegistration && !reg.closed ? kernelMrs().some((mr) => mr.pid === process.pid && mr.rkey === keyHex(reg.rkey)) : null,
  };
}

describe.skipIf(!inLab)(`file-backed pins on the ext4 scratch disk, ${labKernel.name || '?'} (${labKernel.release})`, () => {
  let env: ScenarioEnvironment;
  let savedTmpdir: string | undefined;
  let ownFile: string;
  const runtime = labRuntime();
  const own = new Map<Backend, OwnAttempt>();

  beforeAll(async () => {
    if (!labDisk) throw new Error(labDiskMissing);
    becomeSubreaper();
    env = await probeScenarioEnvironment(true);
    expect(env.verbsUnavailable).toBeNull();
    // The test's own file on the disk, and the kernel's answer to a shared, writable registration of it.
    ownFile = join(labDisk, `own-${process.pid}.bin`);
    writeFileSync(ownFile, Buffer.alloc(LENGTH, 0x11));
    expect(Number(statfsSync(ownFile).type)).toBe(EXT4_SUPER_MAGIC);
    for (const backend of BACKENDS) {
      const r = rdmactl(['reg', String(LENGTH), '--backend', backend, '--backing', 'file-shared', '--file', ownFile, '--for', '1ms'], runtime.env);
      own.set(backend, { registered: r.status === 0, errno: /\b(E[A-Z]+)\b/.exec(r.stderr)?.[1] ?? null });
      console.log(`[lab ${labKernel.name} ${labKernel.release}] own ${backend} registration of a MAP_SHARED ext4 file: ${r.status === 0 ? 'registered' : `refused: ${r.stderr.trim()}`}`);
    }
    savedTmpdir = process.env['TMPDIR'];
    process.env['TMPDIR'] = labDisk; // where the scenarios' unnamed files go (os.tmpdir())
  });

  afterAll(() => {
    if (savedTmpdir === undefined) delete process.env['TMPDIR'];
    else process.env['TMPDIR'] = savedTmpdir;
    if (ownFile) rmSync(ownFile, { force: true });
    runtime.cleanup();
  });

  it('from 6.5 GUP refuses both with EFAULT; before, verbs pins and io_uring refuses file buffers itself (EOPNOTSUPP)', () => {
    const [verbs, uring] = [own.get('verbs')!, own.get('uring')!];
    const [major, minor] = /^(\d+)\.(\d+)/.exec(labKernel.release)!.slice(1).map(Number) as [number, number];
    const gupRefuses = major > 6 || (major === 6 && minor >= 5);
    expect(uring).toEqual({ registered: false, errno: gupRefuses ? 'EFAULT' : 'EOPNOTSUPP' });
    expect(verbs).toEqual(gupRefuses ? { registered: false, errno: 'EFAULT' } : { registered: true, errno: null });
  });

  async function runRowWithReadings(def: typeof truncateScenario, c: { backend: Backend; backing: 'file-shared' | 'file-private'; variant: string }): Promise<{ row: ScenarioRow; at: Map<string, Reading>; pinBefore: number | null }> {
    const at = new Map<string, Reading>();
    const pinBefore = statusKb('VmPin');
    const row = await runRow(def, c, { length: LENGTH, env, verbsAccess: 0, stepDelayMs: 0, onStep: (step, target) => { at.set(step, readAt(target)); } });
    console.log(`[lab ${labKernel.name} ${labKernel.release}] ${row.scenario} ${row.variant} ${row.backing} ${row.backend} on ext4: ${row.verdict} — ${row.reason}`);
    // Whatever happened, nothing stays registered or pinned.
    expect(kernelMrs().filter((mr) => mr.pid === process.pid)).toEqual([]);
    expect(statusKb('VmPin')).toBe(pinBefore);
    return { row, at, pinBefore };
  }

  for (const backend of BACKENDS) {
    it(`truncate of a shared ext4 file under a ${backend} registration: the 2018 thread, or the refusal`, async () => {
      const { row, at } = await runRowWithReadings(truncateScenario, { backend, backing: 'file-shared', variant: 'truncate' });
      const mine = own.get(backend)!;
      if (!mine.registered) {
        // Refused before any step, with the errno the test's own registration got.
        expect(row.verdict).toBe('refused');
        expect(at.size).toBe(0);
        expect(row.reason).toContain(mine.errno!);
        expect(row.reason).toContain('ext2/3/4');
        return;
      }
      const registered = at.get('registered')!;
      const cut = at.get('truncated')!;
      const wrote = at.get('device-wrote')!;
      expect(registered.filesystem).toBe(EXT4_SUPER_MAGIC);
      expect(allOf(registered.file, PATTERN.preFork)).toBe(true);
      if (backend === 'verbs') expect(registered.rowMr).toBe(true);
      // After the truncate: the file is empty and nothing backs the process's range …
      expect(cut.file!.length).toBe(0);
      expect(cut.mem).toBeNull();
      // … but the pinned pages keep the old bytes for the device, and its write reaches neither.
      expect(row.observations.find((o) => o.step === 'truncated')!.deviceReads).toBe('pre-fork');
      expect(allOf(wrote.file, PATTERN.device)).toBe(false);
      expect(allOf(wrote.mem, PATTERN.device)).toBe(false);
      expect(row.verdict).toBe('device-keeps-old-pages');
    });
  }

  for (const backend of BACKENDS) {
    for (const variant of ['read-access', 'write-access'] as const) {
      it(`readonly-private, ${variant}, ${backend}, of an ext4 file: the verdict matches the test's own PFNs and bytes`, async () => {
        const { row, at } = await runRowWithReadings(readonlyPrivateScenario, { backend, backing: 'file-private', variant });
        expect(row.verdict, JSON.stringify(row)).not.toBe('error');
        const mapped = row.observations.find((o) => o.step === 'mapped');
        expect(mapped?.note).toContain('ext2/3/4');
        if (row.verdict === 'refused') {
          // io_uring pins for writing whatever is asked, and verbs write access wants FOLL_WRITE: a
          // PROT_READ mapping refuses both (the file system does not matter here).
          expect(backend === 'uring' || variant === 'write-access').toBe(true);
          expect(at.size).toBe(0);
          return;
        }
        expect(backend === 'verbs' && variant === 'read-access').toBe(true);
        const registered = at.get('registered')!;
        const written = at.get('file-written')!;
        expect(registered.filesystem).toBe(EXT4_SUPER_MAGIC);
        expect(allOf(written.file, PATTERN.parent)).toBe(true);
        const onPageCache = registered.pfn !== null && registered.pfn === registered.cachePfn;
        expect(allOf(written.mem, onPageCache ? PATTERN.parent : PATTERN.preFork)).toBe(true);
        expect(row.verdict).toBe(onPageCache ? 'page-cache' : 'private-copy');
      });
    }
  }

  for (const backend of BACKENDS) {
    it(`doctor --backing file-shared --backend ${backend} --try on the disk: file.longterm-pin agrees with the kernel`, () => {
      const r = rdmactl(['doctor', '--size', String(LENGTH), '--backing', 'file-shared', '--backend', backend, '--try', '--json'], { ...runtime.env, TMPDIR: labDisk! });
      const doc = JSON.parse(r.stdout) as { findings: Array<{ id: string; status: string; evidence: Record<string, unknown> }>; prediction: { outcome: string; cause: string | null }; try: { outcome: string; errno: string | null } };
      const f = doc.findings.find((x) => x.id === 'file.longterm-pin');
      const tried = doc.findings.find((x) => x.id === 'try.outcome');
      expect(f?.evidence).toMatchObject({ directory: labDisk, filesystem: 'ext2/3/4' });
      const mine = own.get(backend)!;
      if (mine.registered) {
        // Allowed by the probe, or (verbs on a kernel whose io_uring refuses file buffers by a rule of
        // its own) not answered by it: either way no refusal is predicted, and the kernel registers.
        expect(f!.status === 'ok' ? f!.evidence['probe'] : `${f!.status} ${String(f!.evidence['errno'])}`).toBe(f!.status === 'ok' ? 'allowed' : 'skip EOPNOTSUPP');
        expect(doc.prediction.outcome).toBe('registered');
        expect(doc.try.outcome).toBe('registered');
      } else {
        expect(f).toMatchObject({ status: 'fail', evidence: { probe: 'refused', errno: mine.errno } });
        expect(doc.prediction).toMatchObject({ outcome: 'refused', cause: 'file.longterm-pin' });
        expect(doc.try).toMatchObject({ outcome: 'refused', errno: mine.errno });
      }
      expect(tried?.status, r.stdout).toBe('ok');
    });
  }
});
