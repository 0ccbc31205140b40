// `rdmactl doctor` end to end: every finding is checked against a reading the test makes itself, and
// every condition is created for real (lowered limits, a second process holding io_uring buffers, an
// environment variable, DONTFORK mappings, a pool without huge pages).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rdmactl } from '../helpers/run.js';
import { hasCapIpcLock } from '../helpers/proc.js';
import { ROOT, UNPRIVILEGED, builtOrThrow, exited, startRdmactl, unprivilegedUnavailable } from '../helpers/spawn.js';
import { makeTempDir } from '../proc/helpers/children.js';
import { doctorAs, doctorUnprivileged, findingOf, memlockSoft, type DoctorJson } from './helpers.js';

const KiB = 1024;
const noUnprivileged = unprivilegedUnavailable();
const hasRdmaDevice = existsSync('/sys/class/infiniband') && readdirSync('/sys/class/infiniband').length > 0;

beforeAll(() => builtOrThrow());

function smapsDontForkCount(pid: number): number {
  return readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n').filter((l) => l.startsWith('VmFlags:') && / dc( |$)/.test(l)).length;
}

describe('doctor: output and errors', () => {
  it('--json: every finding has the stable keys, a known status, and skips carry a reason', async () => {
    const result = await rdmactl('doctor', '--json');
    expect([0, 1]).toContain(result.code);
    const json = JSON.parse(result.stdout) as DoctorJson;
    expect(Object.keys(json)).toEqual(['host', 'schema', 'target', 'request', 'findings', 'prediction', 'try', 'counts', 'failed']);
    expect(json.target).toEqual({ pid: process.pid, comm: expect.any(String), uid: process.getuid!(), self: true });
    for (const f of json.findings) {
      expect(Object.keys(f)).toEqual(['id', 'status', 'summary', 'evidence', 'fix', 'reason']);
      expect(['ok', 'warn', 'fail', 'skip']).toContain(f.status);
      expect(f.id).toMatch(/^[a-z]+\.[a-z-]+$/);
      if (f.status === 'skip') expect(f.reason).toMatch(/\S/);
      else expect(f.reason).toBeNull();
    }
    const ids = json.findings.map((f) => f.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(json.failed).toBe(result.code === 1);
    expect(json.counts['fail']).toBe(json.findings.filter((f) => f.status === 'fail').length);
    // The cgroup checks run (skips say why, e.g. no rdma controller), with this process's cgroup as evidence.
    const ownCgroup = /^\d+:(?:[^:]*,)?memory(?:,[^:]*)?:(.*)$/m.exec(readFileSync('/proc/self/cgroup', 'utf8'))?.[1] ?? /^0::(.*)$/m.exec(readFileSync('/proc/self/cgroup', 'utf8'))?.[1];
    for (const id of ['memlock.unit', 'container.runtime', 'cgroup.memory', 'cgroup.rdma']) {
      const f = findingOf(json, id);
      expect(f.reason ?? '').not.toMatch(/needs cgroup attribution/);
      expect(f.evidence['cgroup']).toBe(ownCgroup);
    }
  });

  it('text: one line per finding (status, id, summary), evidence and fix indented under non-ok ones', async () => {
    const result = await rdmactl('doctor');
    const lines = result.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(new RegExp(`^target: pid ${process.pid} `));
    const findingLines = lines.filter((l) => /^(ok|warn|fail|skip) /.test(l));
    expect(findingLines.length).toBeGreaterThanOrEqual(20);
    expect(findingLines.find((l) => l.includes(' memlock.limit '))).toBeDefined();
    for (let i = 1; i < lines.length - 1; i++) {
      if (/^(warn|fail) /.test(lines[i]!)) expect(lines[i + 1]).toMatch(/^ {6}(evidence|fix): /);
      if (/^(ok|skip) /.test(lines[i]!)) expect(lines[i + 1]).not.toMatch(/^ {6}/);
    }
    expect(lines[lines.length - 1]).toMatch(/^\d+ ok, \d+ warn, \d+ fail, \d+ skip/);
  });

  it.each([
    [['doctor', 'abc'], /invalid PID 'abc'/],
    [['doctor', '--backend', 'uring'], /--backend needs --size/],
    [['doctor', '--size', '1M', '--backend', 'uring', '--try', '1'], /--try registers in a child of rdmactl/],
    [['doctor', '--size', 'lots', '--backend', 'uring'], /invalid --size 'lots'/],
    [['doctor', '--size', '1M', '--backend', 'mlock', '--access', 'local-write'], /--access applies to --backend verbs only/],
    [['doctor', '--access', 'local-write'], /--access needs --size/],
  ])('usage error %j → exit 2, one line', async (args, message) => {
    const result = await rdmactl(...args);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(message);
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });

  it('--size without --backend: auto, as reg resolves it (verbs with a device, else uring), said in one line on stderr', async () => {
    // reg --backend auto is the independent reading: doctor must predict with the backend reg would use.
    const reg = await rdmactl('reg', '4K', '--for', '1ms', '--json');
    expect(reg.code, reg.stderr).toBe(0);
    const regBackend = (JSON.parse(reg.stdout.split('\n')[0]!) as { backend: string }).backend;
    expect(regBackend).toBe(hasRdmaDevice ? 'verbs' : 'uring');
    const result = await rdmactl('doctor', '--size', '64K', '--try', '--json');
    expect([0, 1], result.stderr).toContain(result.code);
    const json = JSON.parse(result.stdout) as DoctorJson;
    expect(json.request).toMatchObject({ sizeBytes: 64 * KiB, backend: regBackend, backing: 'anon' });
    expect(json.prediction).toMatchObject({ backend: regBackend, sizeBytes: 64 * KiB });
    expect(json.try).not.toBeNull();
    const autoLines = (stderr: string): string[] => stderr.split('\n').filter((l) => l.includes('--backend auto'));
    expect(autoLines(reg.stderr)).toHaveLength(1);
    expect(autoLines(result.stderr)).toEqual(autoLines(reg.stderr));
    expect(autoLines(result.stderr)[0]).toMatch(regBackend === 'verbs' ? /^rdmactl: --backend auto: using verbs on \S+$/ : /^rdmactl: --backend auto: no RDMA device, using uring/);
    const text = await rdmactl('doctor', '--size', '64K');
    expect(text.stdout.split('\n')[0]).toMatch(new RegExp(`; request: 64 KiB with ${regBackend} \\(anon\\)$`));
  });

  it('a PID that has exited → exit 1 with one line', async () => {
    const child = spawn('true');
    const pid = child.pid!;
    await exited(child as never);
    const result = await rdmactl('doctor', String(pid));
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(`rdmactl: no process with pid ${pid} (it exited, or never existed)\n`);
  });

  it.skipIf(noUnprivileged !== null)('a PID whose /proc files the kernel hides (hidepid=1) → exit 4 with one line', () => {
    const script = `mount -t proc -o hidepid=1 proc /proc && exec ${UNPRIVILEGED.join(' ')} ${process.execPath} ${ROOT}bin/rdmactl doctor 1`;
    const result = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script], { encoding: 'utf8' });
    if (result.error || /unshare: /.test(result.stderr)) {
      console.warn(`SKIPPED hidepid case: unshare -m is not available here (${result.error?.message ?? result.stderr.trim()})`);
      return;
    }
    expect(result.status).toBe(4);
    expect(result.stderr).toBe('rdmactl: cannot read /proc/1/status: permission denied (run as root or as the process\'s user)\n');
  });
});

describe('doctor: memlock', () => {
  it('root with CAP_IPC_LOCK: "not enforced", with the limit and CapEff read from /proc', async () => {
    const json = JSON.parse((await rdmactl('doctor', '--json')).stdout) as DoctorJson;
    const f = findingOf(json, 'memlock.limit');
    const capEff = /^CapEff:\s+([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))![1]!;
    expect(f.evidence['capEff']).toBe(`0x${capEff}`);
    expect(f.evidence['softBytes']).toBe(memlockSoft('self'));
    expect(f.evidence['capIpcLockEffective']).toBe(hasCapIpcLock());
    if (hasCapIpcLock()) expect(f).toMatchObject({ status: 'ok', summary: expect.stringMatching(/^not enforced: CAP_IPC_LOCK/) });
  });

  it.skipIf(process.getuid?.() !== 0)('uid 0 without CAP_IPC_LOCK in its effective set is enforced: the doctor says so and --try agrees', () => {
    const r = doctorAs(['prlimit', '--memlock=65536:65536', 'setpriv', '--bounding-set=-ipc_lock'], ['--size', '128K', '--backend', 'mlock', '--try', '--json']);
    expect(r.status).toBe(1);
    const f = findingOf(r.json!, 'memlock.limit');
    expect(r.json!.target.uid).toBe(0);
    expect(f).toMatchObject({ status: 'fail', evidence: { capIpcLockEffective: false, softBytes: 65536, chargedBytes: 128 * KiB } });
    expect(r.json!.try).toMatchObject({ outcome: 'refused', errno: 'ENOMEM' });
    expect(r.json!.prediction).toMatchObject({ outcome: 'refused', cause: 'memlock.limit' });
  });

  it.skipIf(noUnprivileged !== null)('memlock.origin names the process that lowered the limit and its parent\'s limit', () => {
    const r = doctorUnprivileged(64 * KiB, ['--json']);
    const f = findingOf(r.json!, 'memlock.origin');
    const chain = f.evidence['chain'] as Array<{ pid: number; softBytes: number | null }>;
    expect(chain[0]).toMatchObject({ pid: process.pid, softBytes: memlockSoft('self') });
    if (memlockSoft('self') !== 64 * KiB) {
      expect(f.evidence['setByPid']).toBe(r.json!.target.pid);
      expect(f.summary).toContain(`set in pid ${r.json!.target.pid} itself (its parent ${process.pid}`);
    }
    expect(findingOf(r.json!, 'memlock.limit')).toMatchObject({ status: 'warn', evidence: { softBytes: 64 * KiB, hardBytes: 64 * KiB, capIpcLockEffective: false } });
  });

  it.skipIf(noUnprivileged !== null)('limits.conf under --root: "@rdma - memlock unlimited" applies to nobody, who has 64 KiB: not started through PAM', () => {
    const dir = makeTempDir('rdmactl-doctor-root-');
    try {
      mkdirSync(join(dir, 'etc/security/limits.d'), { recursive: true });
      writeFileSync(join(dir, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n');
      writeFileSync(join(dir, 'etc/group'), 'root:x:0:\nrdma:x:990:nobody\nnogroup:x:65534:\n');
      writeFileSync(join(dir, 'etc/security/limits.conf'), '*  hard  memlock  65536\n');
      writeFileSync(join(dir, 'etc/security/limits.d/50-rdma.conf'), '# RDMA users\n@rdma  -  memlock  unlimited\n');
      const r = doctorUnprivileged(64 * KiB, ['--root', dir, '--json']);
      const f = findingOf(r.json!, 'memlock.origin');
      expect(f.status).toBe('warn');
      expect(f.summary).toContain(`limits.conf grants soft unlimited, hard unlimited to @rdma (${dir}/etc/security/limits.d/50-rdma.conf:2`);
      expect(f.summary).toContain('but this process has 64 KiB soft / 64 KiB hard: it was not started through a PAM login');
      expect(f.evidence).toMatchObject({ user: 'nobody', groups: ['rdma', 'nogroup'], limitsFiles: [`${dir}/etc/security/limits.conf`, `${dir}/etc/security/limits.d/50-rdma.conf`] });
      // The same files with a matching limit: ok.
      writeFileSync(join(dir, 'etc/security/limits.d/50-rdma.conf'), '@rdma  -  memlock  64\n');
      expect(findingOf(doctorUnprivileged(64 * KiB, ['--root', dir, '--json']).json!, 'memlock.origin').status).toBe('ok');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe.skipIf(noUnprivileged !== null)('doctor: io_uring charges the user across processes', () => {
  let holder: Awaited<ReturnType<typeof startRdmactl>> | null = null;
  afterAll(async () => {
    if (holder) {
      holder.child.kill('SIGTERM');
      await exited(holder.child);
    }
  });

  it('another uid-65534 process holding 32 KiB: the doctor names it, and the prediction matches the kernel under and over the limit', async () => {
    holder = await startRdmactl(['reg', '32K', '--backend', 'uring', '--json'], ['prlimit', '--memlock=65536:65536', ...UNPRIVILEGED]);
    const holderPid = holder.child.pid!;
    // Independent reading: the holder's registered buffer from its fdinfo.
    const fds = readdirSync(`/proc/${holderPid}/fdinfo`);
    const lengths = fds.map((fd) => readFileSync(`/proc/${holderPid}/fdinfo/${fd}`, 'utf8')).flatMap((t) => [...t.matchAll(/^\s+\d+: 0x[0-9a-f]+\/(\d+)$/gm)].map((m) => Number(m[1])));
    expect(lengths).toEqual([32 * KiB]);

    const over = doctorUnprivileged(64 * KiB, ['--size', '24K', '--backend', 'uring', '--try', '--json']);
    const charge = findingOf(over.json!, 'uring.user-charge');
    expect(charge.status).toBe('fail');
    const holders = charge.evidence['holders'] as Array<{ pid: number; bufferBytes: number }>;
    expect(holders.find((h) => h.pid === holderPid)).toMatchObject({ bufferBytes: 32 * KiB });
    expect(charge.summary).toContain(`pid ${holderPid} (node)`);
    expect(findingOf(over.json!, 'memlock.limit').status).toBe('ok'); // 24 KiB alone fits: the cause is the user's charge
    expect(over.json!.prediction).toMatchObject({ outcome: 'refused', cause: 'uring.user-charge' });
    expect(over.json!.try).toMatchObject({ outcome: 'refused', errno: 'ENOMEM' });
    expect(findingOf(over.json!, 'try.outcome').status).toBe('ok');

    const under = doctorUnprivileged(64 * KiB, ['--size', '4K', '--backend', 'uring', '--try', '--json']);
    expect(under.json!.prediction).toMatchObject({ outcome: 'registered' });
    expect(under.json!.try).toMatchObject({ outcome: 'registered', pinnedBytes: 4 * KiB });
    expect(findingOf(under.json!, 'try.outcome').status).toBe('ok');
  });
});

describe('doctor PID: the target\'s own mappings and environment', () => {
  it('fork.env reads the target\'s environment: RDMAV_FORK_SAFE set vs not', async () => {
    const withVar = spawn('sleep', ['30'], { env: { ...process.env, RDMAV_FORK_SAFE: '1' } });
    const without = spawn('sleep', ['30'], { env: { PATH: process.env['PATH'] } });
    try {
      const a = JSON.parse((await rdmactl('doctor', String(withVar.pid), '--json')).stdout) as DoctorJson;
      const b = JSON.parse((await rdmactl('doctor', String(without.pid), '--json')).stdout) as DoctorJson;
      const copyOnFork = findingOf(a, 'fork.copy-on-fork').evidence['copyOnFork'];
      expect(findingOf(a, 'fork.env')).toMatchObject({ status: copyOnFork ? 'warn' : 'ok', evidence: { variables: { RDMAV_FORK_SAFE: '1' } } });
      expect(findingOf(b, 'fork.env')).toMatchObject({ status: copyOnFork ? 'ok' : 'warn', evidence: { variables: {} } });
    } finally {
      withVar.kill();
      without.kill();
      await Promise.all([exited(withVar as never), exited(without as never)]);
    }
  });

  it('maps.count: VMA count, DONTFORK VMAs and vm.max_map_count equal the test\'s own reading', async () => {
    const { child } = await startRdmactl(['reg', '64K', '--count', '4', '--dontfork', '--backend', 'mlock', '--json']);
    try {
      const pid = child.pid!;
      const json = JSON.parse((await rdmactl('doctor', String(pid), '--json')).stdout) as DoctorJson;
      const f = findingOf(json, 'maps.count');
      const vmas = readFileSync(`/proc/${pid}/maps`, 'utf8').trim().split('\n').length;
      const max = Number(readFileSync('/proc/sys/vm/max_map_count', 'utf8'));
      expect(f.evidence).toMatchObject({ vmaCount: vmas, maxMapCount: max, dontForkVmas: smapsDontForkCount(pid), headroom: max - vmas });
      expect(f.evidence['dontForkVmas']).toBeGreaterThanOrEqual(1);
    } finally {
      child.kill('SIGTERM');
      await exited(child);
    }
  });
});

describe('doctor: the machine, huge pages, verbs', () => {
  it('machine.pinned counts a real holder\'s VmPin; MemTotal equals /proc/meminfo', async () => {
    const { child, firstLine } = await startRdmactl(['reg', '1M', '--backend', 'uring', '--json']);
    try {
      const json = JSON.parse((await rdmactl('doctor', '--json')).stdout) as DoctorJson;
      const f = findingOf(json, 'machine.pinned');
      const memTotal = Number(/^MemTotal:\s+(\d+) kB$/m.exec(readFileSync('/proc/meminfo', 'utf8'))![1]) * 1024;
      expect(f.evidence['memTotalBytes']).toBe(memTotal);
      expect(f.evidence['pinnedBytes']).toBeGreaterThanOrEqual(Number((JSON.parse(firstLine) as { pinnedBytesAfter: number }).pinnedBytesAfter));
    } finally {
      child.kill('SIGTERM');
      await exited(child);
    }
  });

  it('machine.available: a request larger than MemAvailable fails and --try does not attempt it', async () => {
    const memAvailable = Number(/^MemAvailable:\s+(\d+) kB$/m.exec(readFileSync('/proc/meminfo', 'utf8'))![1]) * 1024;
    const size = String(Math.ceil((memAvailable * 2) / 1024 ** 3)) + 'G';
    const result = await rdmactl('doctor', '--size', size, '--backend', 'mlock', '--try', '--json');
    expect(result.code).toBe(1);
    const json = JSON.parse(result.stdout) as DoctorJson;
    expect(findingOf(json, 'machine.available').status).toBe('fail');
    expect(json.prediction).toMatchObject({ outcome: 'refused', cause: 'machine.available' });
    expect(findingOf(json, 'try.outcome')).toMatchObject({ status: 'skip', reason: expect.stringMatching(/OOM killer/) });
    expect(json.try).toBeNull();
  });

  it('hugepages and io_uring settings equal what sysfs and /proc/sys say', async () => {
    const json = JSON.parse((await rdmactl('doctor', '--json')).stdout) as DoctorJson;
    const dir = '/sys/kernel/mm/hugepages';
    const pools = readdirSync(dir).map((name) => ({
      pageBytes: Number(/^hugepages-(\d+)kB$/.exec(name)![1]) * 1024,
      total: Number(readFileSync(`${dir}/${name}/nr_hugepages`, 'utf8')),
      free: Number(readFileSync(`${dir}/${name}/free_hugepages`, 'utf8')),
    })).sort((a, b) => a.pageBytes - b.pageBytes);
    expect((findingOf(json, 'hugepages.reserved').evidence['pools'] as Array<Record<string, number>>).map((p) => ({ pageBytes: p['pageBytes'], total: p['total'], free: p['free'] }))).toEqual(pools);
    const thp = /\[(\w+)\]/.exec(readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8'))![1];
    expect(findingOf(json, 'hugepages.thp')).toMatchObject({ status: 'ok', evidence: { mode: thp } });
    const disabledPath = '/proc/sys/kernel/io_uring_disabled';
    const disabled = existsSync(disabledPath) ? Number(readFileSync(disabledPath, 'utf8')) : null;
    expect(findingOf(json, 'uring.disabled').evidence['ioUringDisabled']).toBe(disabled);
  });

  const freeHuge = Number(readFileSync('/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages', 'utf8'));
  it.skipIf(freeHuge > 0)(`hugetlb with no free 2 MiB huge pages (${freeHuge} free here): predicted refused, and the kernel refuses`, async () => {
    const result = await rdmactl('doctor', '--size', '2M', '--backend', 'mlock', '--backing', 'hugetlb', '--try', '--json');
    const json = JSON.parse(result.stdout) as DoctorJson;
    expect(findingOf(json, 'hugepages.reserved')).toMatchObject({ status: 'fail', evidence: { neededBytes: 2 * 1024 * 1024 } });
    expect(json.prediction).toMatchObject({ outcome: 'refused', cause: 'hugepages.reserved' });
    expect(json.try).toMatchObject({ outcome: 'refused', exitCode: 3 });
    expect(findingOf(json, 'try.outcome').status).toBe('ok');
  });

  it.skipIf(hasRdmaDevice)('verbs without a device (none here): verbs.* skip with the reason; --backend verbs is predicted refused and is', async () => {
    const plain = JSON.parse((await rdmactl('doctor', '--json')).stdout) as DoctorJson;
    expect(findingOf(plain, 'verbs.devices')).toMatchObject({ status: 'skip', reason: expect.stringMatching(/^no RDMA device/) });
    const result = await rdmactl('doctor', '--size', '1M', '--backend', 'verbs', '--try', '--json');
    const json = JSON.parse(result.stdout) as DoctorJson;
    expect(findingOf(json, 'verbs.devices').status).toBe('fail');
    expect(json.prediction).toMatchObject({ outcome: 'refused', cause: 'verbs.devices' });
    expect(json.try).toMatchObject({ outcome: 'refused', exitCode: 3 });
  });
});
