// `rdmactl doctor` where a real verbs device exists and machine-wide settings may be changed (only
// here, inside the lab VM, never on the host): a verbs MR over RLIMIT_MEMLOCK predicted and tried,
// vm.max_map_count lowered under a process holding fork-init (DONTFORK) MRs, io_uring disabled, and
// a hugetlb MR with and without huge pages reserved.
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyOnForkAttribute, inLab, labKernel, run, RXE_DEVICE } from './helpers.js';
import { BIN, MiB, UNPRIVILEGED, becomeSubreaper, labRuntime } from './verbs-helpers.js';

interface Finding { id: string; status: string; summary: string; evidence: Record<string, unknown>; reason: string | null }
interface DoctorJson {
  findings: Finding[];
  prediction: { outcome: string; cause: string | null } | null;
  try: { outcome: string; exitCode: number | null; errno: string | null; message: string; pinnedBytes: number | null } | null;
}

// Each test starts several node processes (doctor, its --try child) under TCG, on a busy host.
const SLOW = 600_000;

// `ulimit -l` is in KiB; dash sets soft and hard.
const LIMITED_8M = ['/bin/sh', '-c', 'ulimit -l 8192 && exec "$@"', 'sh', ...UNPRIVILEGED];

function doctor(args: string[], env: NodeJS.ProcessEnv, prefix: string[] = []): { status: number | null; json: DoctorJson; stderr: string } {
  const r = run([...prefix, process.execPath, BIN, 'doctor', ...args, '--json'], { env, timeoutMs: 300_000 });
  return { status: r.status, json: JSON.parse(r.stdout) as DoctorJson, stderr: r.stderr };
}

function findingOf(json: DoctorJson, id: string): Finding {
  const f = json.findings.find((x) => x.id === id);
  if (!f) throw new Error(`no finding ${id}`);
  return f;
}

/** Sets a sysctl in the guest for the duration of fn, then restores it. */
function withSysctl<T>(path: string, value: string, fn: () => T): T {
  if (!inLab) throw new Error('sysctls are changed only inside the lab VM');
  const before = readFileSync(path, 'utf8').trim();
  writeFileSync(path, value);
  try {
    return fn();
  } finally {
    writeFileSync(path, before);
  }
}

describe.skipIf(!inLab)(`doctor in the lab on ${labKernel.name || '?'} (${labKernel.release})`, () => {
  let rt: ReturnType<typeof labRuntime>;
  beforeAll(() => {
    becomeSubreaper();
    rt = labRuntime();
  });
  afterAll(() => rt?.cleanup());

  it('verbs: the device, its ports and max_mr are ok; 16 MiB over an 8 MiB limit is predicted refused (memlock.limit) and is; 4 MiB registers', () => {
    const over = doctor(['--size', '16M', '--backend', 'verbs', '--try'], rt.env, LIMITED_8M);
    expect(over.status, over.stderr).toBe(1);
    expect(findingOf(over.json, 'verbs.devices')).toMatchObject({ status: 'ok', summary: expect.stringContaining(RXE_DEVICE) });
    expect(findingOf(over.json, 'verbs.ports').status, findingOf(over.json, 'verbs.ports').summary).toBe('ok');
    expect(findingOf(over.json, 'verbs.max-mr').status).toBe('ok');
    expect(findingOf(over.json, 'memlock.limit')).toMatchObject({ status: 'fail', evidence: { softBytes: 8 * MiB, chargedBytes: 16 * MiB, capIpcLockEffective: false } });
    expect(over.json.prediction).toMatchObject({ outcome: 'refused', cause: 'memlock.limit' });
    expect(over.json.try).toMatchObject({ outcome: 'refused', errno: 'ENOMEM', exitCode: 1 });

    const under = doctor(['--size', '4M', '--backend', 'verbs', '--try'], rt.env, LIMITED_8M);
    expect(under.json.prediction).toMatchObject({ outcome: 'registered', cause: null });
    expect(under.json.try).toMatchObject({ outcome: 'registered', pinnedBytes: 4 * MiB });
    expect(findingOf(under.json, 'try.outcome').status).toBe('ok');
  }, SLOW);

  it('vm.max_map_count lowered to the VMA count of a process holding fork-init MRs: maps.count fails for it, with its DONTFORK VMAs', async (ctx) => {
    // vm.max_map_count is machine-wide: every other process (vitest itself) must stay well under the
    // lowered value, so the holder gets more VMAs than any of them: its own (a node process, a few
    // hundred) plus one per MR, MARGIN more MRs than the busiest process has VMAs. Each buffer is its
    // own memfd, so neighbouring buffers (all DONTFORK after fork-init) cannot merge into one VMA.
    // Each MR of `reg --count` opens its own device context, and rxe on 5.10 caps the contexts open on
    // a device at 512 (the 513th ibv_open_device gets EINVAL), so the count stays well under that.
    const MARGIN = 100;
    const othersMax = Math.max(...readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map((d) => {
      try { return readFileSync(`/proc/${d}/maps`, 'utf8').split('\n').length; } catch { return 0; }
    }));
    const count = othersMax + MARGIN;
    const { spawn } = await import('node:child_process');
    const holder = spawn(process.execPath, [BIN, 'reg', '4K', '--backend', 'verbs', '--backing', 'memfd', '--fork-init', '--count', String(count), '--json'], { env: rt.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let holderStderr = '';
    holder.stderr.on('data', (b: Buffer) => { holderStderr += b.toString('utf8'); });
    try {
      const started = await new Promise<boolean>((resolve) => {
        holder.stdout.once('data', () => resolve(true));
        holder.once('exit', () => resolve(false));
      });
      if (!started) {
        // The device itself refusing another context is a fact of this kernel's driver, not of doctor.
        if (/ibv_open_device: EINVAL/.test(holderStderr)) {
          const reason = `${RXE_DEVICE} refused a device context before ${count} were open (ibv_open_device EINVAL): ${holderStderr.trim()}`;
          console.warn(`SKIPPED: ${reason}`);
          ctx.skip(reason);
        }
        throw new Error(`holder (reg --count ${count}) exited ${holder.exitCode}: ${holderStderr.trim()}`);
      }
      const pid = holder.pid!;
      const vmas = readFileSync(`/proc/${pid}/maps`, 'utf8').trim().split('\n').length;
      const dontFork = readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n').filter((l) => l.startsWith('VmFlags:') && / dc( |$)/.test(l)).length;
      console.log(`busiest other process: ${othersMax} VMAs; holder: ${count} MRs, ${vmas} VMAs, ${dontFork} DONTFORK`);
      expect(vmas).toBeGreaterThan(othersMax + MARGIN);
      const json = withSysctl('/proc/sys/vm/max_map_count', String(vmas), () => doctor([String(pid)], rt.env).json);
      const finding = findingOf(json, 'maps.count');
      expect(finding).toMatchObject({ status: 'fail', evidence: { maxMapCount: vmas, vmaCount: vmas, headroom: 0 } });
      // The holder is a node process: V8 marks its own heap chunks MADV_DONTFORK too, and a GC between
      // the two reads can add or drop one. The MRs' VMAs (count) are all there either way.
      const reported = finding.evidence['dontForkVmas'] as number;
      expect(reported).toBeGreaterThanOrEqual(count);
      expect(Math.abs(reported - dontFork)).toBeLessThanOrEqual(8);
      expect(dontFork).toBeGreaterThanOrEqual(count);
    } finally {
      holder.kill('SIGTERM');
      await new Promise((resolve) => (holder.exitCode !== null || holder.signalCode !== null ? resolve(null) : holder.once('exit', resolve)));
    }
  }, SLOW);

  it('unlimited RLIMIT_MEMLOCK for an unprivileged user (root raises it here): memlock.limit ok, 64 MiB predicted and registered with uring and mlock', () => {
    // The host's test runner cannot raise its limit (no CAP_SYS_RESOURCE); the guest's root can.
    const unlimited = ['prlimit', '--memlock=unlimited:unlimited', ...UNPRIVILEGED];
    for (const backend of ['uring', 'mlock'] as const) {
      const r = doctor(['--size', '64M', '--backend', backend, '--try'], rt.env, unlimited);
      expect(findingOf(r.json, 'memlock.limit')).toMatchObject({ status: 'ok', evidence: { softBytes: null, capIpcLockEffective: false } });
      expect(r.json.prediction).toMatchObject({ outcome: 'registered', cause: null });
      expect(r.json.try).toMatchObject({ outcome: 'registered' });
      const charged = backend === 'mlock' ? (r.json.try as { lockedBytes?: number }).lockedBytes : r.json.try?.pinnedBytes;
      expect(charged).toBe(64 * MiB);
      expect(findingOf(r.json, 'try.outcome').status).toBe('ok');
    }
  }, SLOW);

  const noHugetlb = !existsSync('/proc/sys/vm/nr_hugepages') || !existsSync('/sys/kernel/mm/hugepages/hugepages-2048kB');
  if (noHugetlb && inLab) console.warn(`SKIPPED hugetlb rows: Linux ${labKernel.release} has no 2 MiB hugetlb pool`);
  it.skipIf(noHugetlb)('hugetlb: with no huge page reserved, a 2 MiB hugetlb MR is predicted refused (hugepages.reserved) and is; with 2 reserved it registers', () => {
    const args = ['--size', '2M', '--backend', 'verbs', '--backing', 'hugetlb', '--try'];
    const none = withSysctl('/proc/sys/vm/nr_hugepages', '0', () => doctor(args, rt.env));
    expect(findingOf(none.json, 'hugepages.reserved')).toMatchObject({ status: 'fail', evidence: { neededBytes: 2 * MiB } });
    expect(findingOf(none.json, 'hugepages.reserved').summary).toContain('nr_hugepages 0');
    expect(none.json.prediction).toMatchObject({ outcome: 'refused', cause: 'hugepages.reserved' });
    expect(none.json.try).toMatchObject({ outcome: 'refused' });
    expect(findingOf(none.json, 'try.outcome').status).toBe('ok');

    const reserved = withSysctl('/proc/sys/vm/nr_hugepages', '2', () => {
      // The test's own reading: the kernel really reserved them (it may give fewer when memory is short).
      const total = Number(readFileSync('/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages', 'utf8'));
      expect(total).toBe(2);
      return doctor(args, rt.env);
    });
    expect(findingOf(reserved.json, 'hugepages.reserved').status).toBe('ok');
    expect(reserved.json.prediction).toMatchObject({ outcome: 'registered', cause: null });
    expect(reserved.json.try).toMatchObject({ outcome: 'registered', pinnedBytes: 2 * MiB });
    expect(findingOf(reserved.json, 'try.outcome').status).toBe('ok');
  }, SLOW);

  it('fork.copy-on-fork follows the kernel\'s RDMA netlink: ok when it reports copy-on-fork, skipped as unknown where it predates the attribute', () => {
    const r = doctor(['--size', '4M', '--backend', 'verbs'], rt.env);
    const cof = findingOf(r.json, 'fork.copy-on-fork');
    const attr = copyOnForkAttribute();
    if (attr === 'absent') {
      expect({ status: cof.status, copyOnFork: cof.evidence['copyOnFork'] }).toEqual({ status: 'skip', copyOnFork: null });
      expect(cof.reason).toMatch(/^copy-on-fork unknown \(kernel predates the attribute\): run rdmactl fork/);
    } else {
      expect({ status: cof.status, copyOnFork: cof.evidence['copyOnFork'] }).toEqual({ status: attr ? 'ok' : 'fail', copyOnFork: attr });
    }
  }, SLOW);

  const noSysctl = !existsSync('/proc/sys/kernel/io_uring_disabled');
  if (noSysctl && inLab) console.warn(`SKIPPED io_uring_disabled rows: Linux ${labKernel.release} has no kernel.io_uring_disabled (added in 6.6)`);
  it.skipIf(noSysctl)('kernel.io_uring_disabled = 2: uring.disabled fails, predicted refused and io_uring_setup is refused (EPERM, exit 4)', () => {
    const r = withSysctl('/proc/sys/kernel/io_uring_disabled', '2', () => doctor(['--size', '64K', '--backend', 'uring', '--try'], rt.env));
    expect(findingOf(r.json, 'uring.disabled')).toMatchObject({ status: 'fail', evidence: { ioUringDisabled: 2 } });
    expect(r.json.prediction).toMatchObject({ outcome: 'refused', cause: 'uring.disabled' });
    expect(r.json.try).toMatchObject({ outcome: 'refused', exitCode: 4, errno: 'EPERM' });
    const ok = doctor(['--size', '64K', '--backend', 'uring', '--try'], rt.env);
    expect(findingOf(ok.json, 'uring.disabled').status).toBe('ok');
    // (root: on 7.x kernels io_uring does not add a CAP_IPC_LOCK process's buffers to its VmPin.)
    expect(ok.json.try).toMatchObject({ outcome: 'registered' });
  }, SLOW);

  it.skipIf(noSysctl)('kernel.io_uring_disabled = 1 without a group: root (CAP_SYS_ADMIN) qualifies, nobody is refused', () => {
    withSysctl('/proc/sys/kernel/io_uring_disabled', '1', () => {
      const root = doctor(['--size', '64K', '--backend', 'uring', '--try'], rt.env);
      expect(findingOf(root.json, 'uring.disabled').status).toBe('ok');
      expect(root.json.try?.outcome).toBe('registered');
      const nobody = doctor(['--size', '64K', '--backend', 'uring', '--try'], rt.env, LIMITED_8M);
      expect(findingOf(nobody.json, 'uring.disabled').status).toBe('fail');
      expect(nobody.json.prediction).toMatchObject({ outcome: 'refused', cause: 'uring.disabled' });
      expect(nobody.json.try).toMatchObject({ outcome: 'refused', errno: 'EPERM' });
    });
  }, SLOW);
});
