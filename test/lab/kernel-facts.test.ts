// The kernel facts of one lab kernel, for docs/kernels.md (npm run docs:kernels): every row of
// `rdmactl scenario all --backend verbs --json` and `--backend uring --json` (file backings on the
// ext4 scratch disk), each checked against the test's own readings where it has one — a refusal must
// be the errno the test's own registration of the same kind of mapping got, and an allowed one must
// have registered for the test too; migrate is skipped exactly when the guest has one memory node; the
// kernel's MR table is as before — and the facts rdmactl detects (copy-on-fork, ODP, io_uring_disabled,
// the file.longterm-pin probe, doctor's io_uring ring rule) beside what the kernel does when asked
// directly (VmPin/VmLck growth of rings, buffers, MRs and mlock; an unprivileged registration right at
// RLIMIT_MEMLOCK). One JSON record goes to stdout between markers (lab/facts.mjs); npm run test:lab
// keeps it as CACHE/facts/KERNEL.json.
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ringsCharged } from '../../src/doctor/uring.js';
import { filesystemOf, probeLongtermFilePin } from '../../src/engine/filePin.js';
import { getDeviceList } from '../../src/engine/verbs/objects.js';
import { IoUring } from '../../src/ffi/io_uring.js';
import { MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE, mlock, mmap, munlock, munmap, view, type Pointer } from '../../src/ffi/libc.js';
import { isForkInitialized } from '../../src/ffi/verbs/calls.js';
import { VERBS_FORK_ACCESS } from '../../src/fork/runner.js';
import { SyscallError } from '../../src/lib/errno.js';
import { readSysctlInt } from '../../src/proc/sysctl.js';
import { readonlyPrivateAccess } from '../../src/scenario/scenarios/readonlyPrivate.js';
// @ts-expect-error: a plain ESM module of the lab runner (Node builtins only, no types)
import { FACTS_SCHEMA, cellOf, formatFactsRecord } from '../../lab/facts.mjs';
import { RXE_DEVICE, copyOnForkAttribute, inLab, labDisk, labDiskMissing, labKernel, notInLabReason, rdmaSys, rxeHasOdp, statusKb } from './helpers.js';
import { BIN, UNPRIVILEGED, becomeSubreaper, kernelMrs, labRuntime } from './verbs-helpers.js';

if (!inLab) console.warn(`SKIPPING lab kernel facts: ${notInLabReason}`);

const LENGTH = 16 * 1024;
const LIMIT_KIB = 8192;
const BACKENDS = ['verbs', 'uring'] as const;
type Backend = (typeof BACKENDS)[number];

interface ScenarioDocRow {
  scenario: string;
  variant: string | null;
  backend: string;
  backing: string;
  verdict: string;
  reason: string | null;
  evidence: string;
  observations: Array<{ step: string; note: string | null }>;
}
interface ScenarioDoc {
  kernel: string;
  memoryNodes: number[];
  verbsUnavailable: string | null;
  scenarios: Array<{ name: string; verdicts: Array<{ id: string }> }>;
  rows: ScenarioDocRow[];
}
interface ScenarioRun { status: number | null; stderr: string; pid: number | undefined; doc: ScenarioDoc | null; elapsedMs: number }

/** What the kernel said to the test's own registration: 'allowed' or 'refused ERRNO'. */
type Answer = string;
interface Fact { id: string; title: string; value: string; detail: string | null }

const kib = (bytes: number): string => `${bytes / 1024}K`;

/** The errno of a refused registration; other failures are the test's own problem and throw. */
function answerOf(attempt: () => void): Answer {
  try {
    attempt();
    return 'allowed';
  } catch (err) {
    if (err instanceof SyscallError && (err.call === 'ibv_reg_mr' || err.call.startsWith('ibv_reg_mr') || err.call === 'io_uring_register')) return `refused ${err.errnoName}`;
    throw err;
  }
}

/** The test's own verbs MR over [addr, addr + length): rxe0, a PD, ibv_reg_mr; all released. */
function verbsAttempt(addr: Pointer, length: number, access: number): Answer {
  using list = getDeviceList();
  const device = list.find(RXE_DEVICE);
  if (!device) throw new Error(`${RXE_DEVICE} is not in the device list`);
  using context = device.open();
  const pd = context.allocPd();
  return answerOf(() => pd.registerRange(addr, length, access).close());
}

/** The test's own io_uring fixed buffer over [addr, addr + length), in a ring of its own. */
function uringAttempt(addr: Pointer, length: number): Answer {
  const ring = new IoUring(1);
  try {
    return answerOf(() => ring.registerBuffers([{ addr, length }]));
  } finally {
    ring.close();
  }
}

/** A file of LENGTH bytes in `dir`, mapped as asked, for `use`; everything removed after. */
function withFileMapping<T>(dir: string, prot: number, flags: number, use: (addr: Pointer) => T): T {
  const path = join(dir, `kernel-facts-${process.pid}-${Math.random().toString(36).slice(2)}.bin`);
  writeFileSync(path, Buffer.alloc(LENGTH, 0x11), { flag: 'wx' });
  const fd = openSync(path, prot & PROT_WRITE ? 'r+' : 'r');
  try {
    const addr = mmap(LENGTH, prot, flags, fd, 0);
    try {
      return use(addr);
    } finally {
      munmap(addr, LENGTH);
    }
  } finally {
    closeSync(fd);
    rmSync(path, { force: true });
  }
}

/** Anonymous memory, written (so present), for `use`. */
function withAnon<T>(use: (addr: Pointer) => T): T {
  const addr = mmap(LENGTH, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  try {
    view(addr, LENGTH).fill(0x22);
    return use(addr);
  } finally {
    munmap(addr, LENGTH);
  }
}

/** Waits (up to 30 s) until this process's VmPin is `pin` again: io_uring unaccounts a closed ring's buffers from a worker. */
async function pinSettles(pin: number, what: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (own().pin !== pin) {
    if (Date.now() > deadline) throw new Error(`VmPin did not come back to ${pin} ${what} within 30 s (now ${own().pin})`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** VmPin and VmLck of this process in bytes, read by the test. */
const own = (): { pin: number; lck: number } => ({ pin: statusKb('VmPin')! * 1024, lck: statusKb('VmLck')! * 1024 });

function runScenarioAll(backend: Backend, env: NodeJS.ProcessEnv): ScenarioRun {
  const started = Date.now();
  const r = spawnSync(process.execPath, [BIN, 'scenario', 'all', '--backend', backend, '--json'], { encoding: 'utf8', env, timeout: 420_000, maxBuffer: 64 << 20 });
  if (r.error) throw r.error;
  let doc: ScenarioDoc | null = null;
  try {
    doc = JSON.parse(r.stdout) as ScenarioDoc;
  } catch {
    doc = null;
  }
  return { status: r.status, stderr: r.stderr, pid: r.pid, doc, elapsedMs: Date.now() - started };
}

/** The errno a refused row names ("io_uring_register: EFAULT …" in its 'refused' step). */
const rowErrno = (r: ScenarioDocRow): string | null => /^\S+: (E[A-Z0-9]+)/.exec(r.observations.find((o) => o.step === 'refused')?.note ?? '')?.[1] ?? null;

describe.skipIf(!inLab)(`kernel facts on ${labKernel.name || '?'} (${labKernel.release})`, () => {
  let runtime: ReturnType<typeof labRuntime>;
  const runs = new Map<Backend, ScenarioRun>();
  const facts: Fact[] = [];
  const passed: string[] = [];
  /** The test's own answers for each kind of file mapping a scenario row registers. */
  const answers = new Map<string, Answer>();
  let memoryNodes: number[] = [];
  let mrsBefore: ReturnType<typeof kernelMrs> = [];
  const fact = (id: string, title: string, value: string, detail: string | null = null): void => {
    facts.push({ id, title, value, detail });
  };

  beforeAll(() => {
    if (!labDisk) throw new Error(labDiskMissing);
    becomeSubreaper();
    runtime = labRuntime();
    memoryNodes = readFileSync('/sys/devices/system/node/has_memory', 'utf8').trim().split(',').flatMap((part) => {
      const [a, b] = part.split('-').map(Number) as [number, number | undefined];
      return Array.from({ length: (b ?? a) - a + 1 }, (_, i) => a + i);
    });
    // The test's own registrations of the file mappings the scenarios use, on the same ext4 disk.
    for (const backend of BACKENDS) {
      const attempt = (addr: Pointer, access: number): Answer => (backend === 'verbs' ? verbsAttempt(addr, LENGTH, access) : uringAttempt(addr, LENGTH));
      answers.set(`${backend} file-shared`, withFileMapping(labDisk, PROT_READ | PROT_WRITE, MAP_SHARED, (addr) => attempt(addr, VERBS_FORK_ACCESS)));
      for (const variant of ['read-access', 'write-access']) {
        answers.set(`${backend} file-private ${variant}`, withFileMapping(labDisk, PROT_READ, MAP_PRIVATE, (addr) => attempt(addr, readonlyPrivateAccess(variant, 0))));
      }
      answers.set(`${backend} tmpfs-shared`, withFileMapping('/tmp', PROT_READ | PROT_WRITE, MAP_SHARED, (addr) => attempt(addr, VERBS_FORK_ACCESS)));
    }
    mrsBefore = kernelMrs();
    const env = { ...runtime.env, TMPDIR: labDisk };
    for (const backend of BACKENDS) runs.set(backend, runScenarioAll(backend, env));
  }, 900_000);

  afterAll(() => {
    runtime?.cleanup();
    if (!inLab || runs.size === 0) return;
    const scenarios = Object.fromEntries(BACKENDS.map((backend) => {
      const run = runs.get(backend)!;
      return [backend, {
        exitStatus: run.status, elapsedMs: run.elapsedMs,
        rows: (run.doc?.rows ?? []).map((r) => ({
          scenario: r.scenario, variant: r.variant, backing: r.backing, verdict: r.verdict,
          errno: r.verdict === 'refused' ? rowErrno(r) : null, reason: r.verdict === 'skipped' || r.verdict === 'error' ? r.reason : null, evidence: r.evidence,
        })),
      }];
    }));
    const record = {
      schema: FACTS_SCHEMA,
      kernel: { name: labKernel.name, release: labKernel.release, package: process.env['RDMACTL_LAB_KERNEL_PACKAGE'] ?? null },
      memoryNodes, scenarioFiles: filesystemOf(labDisk!),
      scenarios, facts, passed,
    };
    console.log(`\n${formatFactsRecord(record)}\n`);
  });

  for (const backend of BACKENDS) {
    it(`scenario all --backend ${backend}: every row a verdict of its scenario with evidence; refusals are the kernel's errno for the test's own registration`, () => {
      const run = runs.get(backend)!;
      expect(run.doc, run.stderr).not.toBeNull();
      const doc = run.doc!;
      const table = doc.rows.map((r) => `  ${`${r.scenario}${r.variant ? ` ${r.variant}` : ''}`.padEnd(32)} ${r.backing.padEnd(12)} ${cellOf({ ...r, errno: rowErrno(r) })}${r.reason ? ` — ${r.reason}` : ''}`);
      console.log(`[lab ${labKernel.name} ${labKernel.release}] scenario all --backend ${backend} (${run.elapsedMs} ms, exit ${run.status}):\n${table.join('\n')}`);
      expect(run.status, run.stderr).toBe(0);
      expect(doc.kernel).toBe(labKernel.release);
      if (backend === 'verbs') expect(doc.verbsUnavailable).toBeNull();
      expect(doc.rows.length).toBeGreaterThan(0);
      for (const r of doc.rows) {
        const name = `${r.scenario} ${r.variant ?? ''} ${r.backing}`;
        expect(r.backend, name).toBe(backend);
        expect(r.verdict, name).not.toBe('error');
        if (r.verdict === 'skipped') {
          expect(r.reason, name).toBeTruthy();
          // The one row this lab may skip: migrate, exactly when the guest has a single memory node.
          expect(r.scenario, `${name}: ${r.reason}`).toBe('migrate');
          expect(memoryNodes.length, name).toBe(1);
          continue;
        }
        const verdicts = doc.scenarios.find((s) => s.name === r.scenario)!.verdicts.map((v) => v.id);
        expect(verdicts, name).toContain(r.verdict);
        expect(r.observations.length, name).toBeGreaterThan(0);
        expect(r.evidence, name).toBeTruthy();
        if (r.scenario === 'migrate') expect(memoryNodes.length, name).toBeGreaterThan(1);
        const mine = r.backing === 'file-shared' ? answers.get(`${backend} file-shared`) : r.backing === 'file-private' ? answers.get(`${backend} file-private ${r.variant}`) : undefined;
        if (r.verdict === 'refused') {
          // The kernel refused the row's registration: the test's own registration of the same kind of
          // mapping on the same file system was refused with the same errno.
          expect(mine, `${name}: refused, but the test has no registration of its own to compare`).toBeDefined();
          expect(`refused ${rowErrno(r)}`, name).toBe(mine);
        } else if (mine !== undefined) {
          expect(mine, `${name}: ${r.verdict}, yet the test's own registration was refused`).toBe('allowed');
        }
      }
      // Nothing of the run is left in the kernel's MR table.
      expect(kernelMrs().filter((mr) => mr.pid === run.pid)).toEqual([]);
      passed.push(`scenario-${backend}`);
    });
  }

  it('the MR table is as before the runs', () => {
    expect(kernelMrs()).toEqual(mrsBefore);
    passed.push('mr-table');
  });

  it('facts rdmactl detects, each beside the kernel\'s own answer', () => {
    // copy-on-fork: rdmactl's netlink reading; iproute2 agrees where the attribute exists.
    const cof = copyOnForkAttribute();
    const sys = rdmaSys();
    expect(sys['copy-on-fork']).toBe(cof === true ? 'on' : 'off');
    fact('copy-on-fork', 'RDMA netlink copy-on-fork attribute (rdma sys show)', cof === 'absent' ? 'absent' : cof ? 'on' : 'off');
    fact('fork-init', 'libibverbs ibv_is_fork_initialized()', isForkInitialized());
    // ODP: rdmactl's query (ibv_query_device_ex) against ibv_devinfo -v.
    const odp = (() => {
      using list = getDeviceList();
      using context = list.find(RXE_DEVICE)!.open();
      return context.odpCaps();
    })();
    expect(odp?.supported ?? null).toBe(rxeHasOdp());
    fact('rxe-odp', 'rxe0 on-demand paging (ODP)', odp?.supported ? `yes (RC: ${odp.rc.join(',') || '-'})` : 'no');
    // kernel.io_uring_disabled (6.6+): rdmactl's sysctl reader against the test's own read.
    let disabled: string | null = null;
    try {
      disabled = readFileSync('/proc/sys/kernel/io_uring_disabled', 'utf8').trim();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    expect(readSysctlInt('kernel.io_uring_disabled')).toBe(disabled === null ? null : Number(disabled));
    fact('io-uring-disabled', 'kernel.io_uring_disabled sysctl', disabled === null ? 'absent' : `present (${disabled})`);
    const vmstat = readFileSync('/proc/vmstat', 'utf8');
    fact('foll-pin-counters', '/proc/vmstat nr_foll_pin_acquired/released', /^nr_foll_pin_acquired \d+$/m.test(vmstat) ? 'present' : 'absent');
    // Long-term write pins of shared files: the test's own registrations, and doctor's probe (file.longterm-pin).
    for (const backend of BACKENDS) {
      fact(`ext4-shared-${backend}`, `long-term pin of a MAP_SHARED ext4 file: ${backend === 'verbs' ? 'verbs MR' : 'io_uring buffer'}`, answers.get(`${backend} file-shared`)!);
    }
    const probe = probeLongtermFilePin(labDisk!);
    expect(probe.filesystem).toBe('ext2/3/4');
    const probed = probe.outcome === 'allowed' ? 'allowed' : `${probe.outcome} ${probe.errnoName}`;
    expect(probed).toBe(answers.get('uring file-shared'));
    fact('doctor-file-longterm-pin', 'doctor file.longterm-pin probe on ext4', probed);
    for (const backend of BACKENDS) {
      fact(`tmpfs-shared-${backend}`, `long-term pin of a MAP_SHARED tmpfs file: ${backend === 'verbs' ? 'verbs MR' : 'io_uring buffer'}`, answers.get(`${backend} tmpfs-shared`)!);
    }
    fact('ro-private-verbs-read', 'remote-read verbs MR of a PROT_READ MAP_PRIVATE ext4 file', answers.get('verbs file-private read-access')!);
    passed.push('detected');
  });

  it('accounting: what rings, fixed buffers, MRs and mlock add to VmPin and VmLck, read by the test', async () => {
    // Root has CAP_IPC_LOCK: nothing is refused, but the kernel still counts in the process's mm.
    // A closed ring is torn down by a kernel worker, which unaccounts its buffers later (6.1 showed a
    // verbs MR as +0K because the rings closed just before gave back 16K meanwhile): each step starts
    // once VmPin is back where it was.
    await pinSettles(0, 'before the rings (the test holds no registration now)');
    const before = own();
    const ring = new IoUring(8);
    let ringGrowth: { pin: number; lck: number };
    try {
      const after = own();
      ringGrowth = { pin: after.pin - before.pin, lck: after.lck - before.lck };
    } finally {
      ring.close();
    }
    fact('uring-ring-charge', 'root: io_uring_setup (8 entries), VmPin / VmLck growth', ringGrowth.pin === 0 && ringGrowth.lck === 0 ? 'none' : `VmPin +${kib(ringGrowth.pin)}, VmLck +${kib(ringGrowth.lck)}`);
    const twice = (register: (addr: Pointer) => () => void): string => withAnon((addr) => {
      const base = own();
      const first = register(addr);
      try {
        const one = own();
        const second = register(addr);
        try {
          const two = own();
          return `VmPin +${kib(one.pin - base.pin)} then +${kib(two.pin - one.pin)}, VmLck +${kib(two.lck - base.lck)}`;
        } finally {
          second();
        }
      } finally {
        first();
      }
    });
    await pinSettles(before.pin, 'after io_uring_setup and close');
    const uringTwice = twice((addr) => {
      const r = new IoUring(8);
      r.registerBuffers([{ addr, length: LENGTH }]);
      return () => r.close();
    });
    await pinSettles(before.pin, 'after the two rings with buffers closed');
    fact('uring-twice', `root: one ${kib(LENGTH)} range as a fixed buffer of two rings`, uringTwice);
    // munlock's io_uring row can only tell the pin outlived munlock where VmPin shows the buffer: the
    // test's own registration says whether it does for this (CAP_IPC_LOCK) process.
    const uringShows = !uringTwice.startsWith('VmPin +0K');
    const munlockRow = runs.get('uring')?.doc?.rows.find((r) => r.scenario === 'munlock');
    expect(munlockRow?.verdict, uringTwice).toBe(uringShows ? 'pin-outlives-munlock' : 'unverified');
    // Two MRs of one PD, as an application holding two handles has them (overlap-lifetime does the same).
    const verbsTwice = (() => {
      using list = getDeviceList();
      using context = list.find(RXE_DEVICE)!.open();
      const pd = context.allocPd();
      return twice((addr) => {
        const mr = pd.registerRange(addr, LENGTH, VERBS_FORK_ACCESS);
        return () => mr.close();
      });
    })();
    fact('verbs-twice', `root: one ${kib(LENGTH)} range in two verbs MRs`, verbsTwice);
    const mlocked = withAnon((addr) => {
      const base = own();
      mlock(addr, LENGTH);
      try {
        const after = own();
        return `VmPin +${kib(after.pin - base.pin)}, VmLck +${kib(after.lck - base.lck)}`;
      } finally {
        munlock(addr, LENGTH);
      }
    });
    fact('mlock', `root: mlock of ${kib(LENGTH)}`, mlocked);
    // Whatever the kernel counts, a registration counts its own pages in VmPin; mlock is VmLck.
    expect(verbsTwice).toMatch(new RegExp(`^VmPin \\+${kib(LENGTH)} then \\+${kib(LENGTH)}`));
    expect(mlocked).toBe(`VmPin +0K, VmLck +${kib(LENGTH)}`);
    console.log(`[lab ${labKernel.name} ${labKernel.release}] ring ${JSON.stringify(ringGrowth)}; uring twice: ${uringTwice}; verbs twice: ${verbsTwice}; mlock: ${mlocked}`);
    passed.push('accounting');
  });

  it('an unprivileged io_uring holder: what its buffer adds to its VmPin and VmLck, read by the test while it holds', async () => {
    const argv = ['/bin/sh', '-c', `ulimit -l ${LIMIT_KIB} && exec "$@"`, 'sh', ...UNPRIVILEGED, process.execPath, BIN, 'reg', String(LENGTH), '--backend', 'uring', '--json', '--for', '100s'];
    const holder = spawn(argv[0]!, argv.slice(1), { env: { ...runtime.env, XDG_RUNTIME_DIR: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      let out = '';
      let err = '';
      holder.stderr!.on('data', (b: Buffer) => { err += b.toString(); });
      const registered = await new Promise<{ pid: number; pinnedBytesBefore: number; pinnedBytesAfter: number }>((resolve, reject) => {
        holder.stdout!.on('data', (b: Buffer) => {
          out += b.toString();
          const line = out.split('\n').find((l) => l.includes('"event":"registered"'));
          if (line) resolve(JSON.parse(line) as { pid: number; pinnedBytesBefore: number; pinnedBytesAfter: number });
        });
        holder.on('exit', (code) => reject(new Error(`reg --backend uring exited with ${code} before registering:\n${out}\n${err}`)));
      });
      const pin = statusKb('VmPin', registered.pid)! * 1024;
      const lck = statusKb('VmLck', registered.pid)! * 1024;
      const grew = registered.pinnedBytesAfter - registered.pinnedBytesBefore;
      console.log(`[lab ${labKernel.name} ${labKernel.release}] nobody holding ${kib(LENGTH)} of io_uring buffers: VmPin ${pin}, VmLck ${lck}; reg says VmPin ${registered.pinnedBytesBefore} → ${registered.pinnedBytesAfter}`);
      // rdmactl's before/after reading agrees with the test's own while it holds.
      expect(registered.pinnedBytesAfter).toBe(pin);
      fact('uring-unprivileged', `unprivileged: one ${kib(LENGTH)} io_uring fixed buffer (and its ring), VmPin / VmLck of the holder`, `VmPin +${kib(grew)} (${kib(pin)}), VmLck ${kib(lck)}`);
      passed.push('uring-unprivileged');
    } finally {
      holder.kill('SIGTERM');
      await new Promise((resolve) => { if (holder.exitCode !== null || holder.signalCode !== null) resolve(null); else holder.on('exit', resolve); });
    }
  });

  it('io_uring at RLIMIT_MEMLOCK for an unprivileged user: the kernel\'s answer, and doctor\'s ring rule beside it', () => {
    const argv = ['/bin/sh', '-c', `ulimit -l ${LIMIT_KIB} && exec "$@"`, 'sh', ...UNPRIVILEGED, process.execPath, BIN, 'reg', `${LIMIT_KIB / 1024}MiB`, '--backend', 'uring', '--for', '1ms', '--json'];
    const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', env: { ...runtime.env, XDG_RUNTIME_DIR: '' }, timeout: 120_000 });
    if (r.error) throw r.error;
    const errno = /\b(E[A-Z]{3,})\b/.exec(r.stderr)?.[1] ?? null;
    const outcome = r.status === 0 ? 'registered' : `refused ${errno}`;
    console.log(`[lab ${labKernel.name} ${labKernel.release}] nobody, RLIMIT_MEMLOCK ${LIMIT_KIB} KiB, a new ring with ${LIMIT_KIB} KiB of fixed buffers: ${outcome}${r.status === 0 ? '' : ` (${r.stderr.trim()})`}`);
    // The kernel's only reason to refuse here is the memlock charge.
    expect(outcome === 'registered' || outcome === 'refused ENOMEM', r.stderr).toBe(true);
    fact('uring-at-limit', `unprivileged, RLIMIT_MEMLOCK ${LIMIT_KIB / 1024} MiB: a new ring and ${LIMIT_KIB / 1024} MiB of fixed buffers`, outcome);
    const rule = ringsCharged();
    fact('doctor-ring-rule', 'doctor counts a new ring\'s pages against RLIMIT_MEMLOCK', `${rule ? 'yes' : 'no'}${rule === (outcome !== 'registered') ? '' : ' (the kernel disagrees)'}`);
    passed.push('uring-limit');
  });
});
