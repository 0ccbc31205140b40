// More real RDMA programs on Soft-RoCE, each checked against the kernel's own readings:
//  - rdma_cm pairs (rdmacm-utils' rping, perftest's ib_write_bw -R): ls lists exactly the kernel's MRs
//    of their pids, stat's VmPin per process is /proc/PID/status's;
//  - RLIMIT_MEMLOCK for root (CAP_IPC_LOCK: the kernel does not enforce it for pins) and for an
//    unprivileged user (refused; doctor's fix, applied, makes the same client work);
//  - rdma.max hca_handle=0: the client cannot open the device (its errno read with strace), doctor names
//    the cgroup once and skips what needs an open device, devices prints - for what it could not read;
//  - fork: ibv_rc_pingpong with and without RDMAV_FORK_SAFE=1, its MR's VMAs (smaps VmFlags dc) against
//    what rdmactl fork and doctor say about copy-on-fork and libibverbs' fork protection.
import { readFileSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RXE_DEVICE, check, copyOnForkAttribute, inLab, labKernel, run, statusKb } from './helpers.js';
import { Programs, cmListening, freePort, ipv4GidIndex, onPath, rdmaCgroup, tcpListening, until, uverbsErrno } from './programs.js';
import { BIN, MiB, UNPRIVILEGED, kernelMrs, labRuntime, lsRows, parseJson, rdmactl, type KernelMrRow } from './verbs-helpers.js';

const GUEST_ADDR = '10.0.2.15';
const GROUP = '/rdmactl-clients-more';

interface Finding { id: string; status: string; summary: string; evidence: Record<string, unknown>; fix: string[]; reason: string | null }
interface DoctorReport {
  findings: Finding[];
  prediction: { outcome: string; cause: string | null } | null;
  try: { outcome: string; errno: string | null; pinnedBytes: number | null } | null;
}

function doctorJson(r: ReturnType<typeof run>, what: string): DoctorReport {
  try {
    return JSON.parse(r.stdout) as DoctorReport;
  } catch {
    throw new Error(`${what} printed no JSON (status ${r.status}):\n${r.stdout}\n${r.stderr}`);
  }
}

function skipLoudly(ctx: { skip: (note?: string) => void }, reason: string): void {
  console.warn(`SKIPPING: ${reason}`);
  ctx.skip(reason);
}

/** The kernel's MRs of `pids`, sorted, as comparable tuples. */
function mrsOf(pids: readonly number[]): KernelMrRow[] {
  return kernelMrs().filter((m) => pids.includes(m.pid)).sort((a, b) => a.mrn - b.mrn);
}

/** "Max locked memory" soft limit of a process in bytes, from /proc/PID/limits (null: unlimited). */
function memlockSoft(pid: number): number | null {
  const line = readFileSync(`/proc/${pid}/limits`, 'utf8').split('\n').find((l) => l.startsWith('Max locked memory'))!;
  const soft = line.slice('Max locked memory'.length).trim().split(/\s+/)[0]!;
  return soft === 'unlimited' ? null : Number(soft);
}

/** Bytes of anonymous private VMAs (no file; [heap] counts) carrying VmFlags `dc` (VM_DONTCOPY: MADV_DONTFORK; `dd` is VM_DONTDUMP), from smaps. */
function anonDontForkBytes(pid: number): number {
  let total = 0;
  let size = 0;
  let anon = false;
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ \d+\s*(.*)$/.exec(line);
    if (head) {
      size = Number(BigInt(`0x${head[2]}`) - BigInt(`0x${head[1]}`));
      const path = head[4]!.trim();
      anon = head[3]!.endsWith('p') && (path === '' || path === '[heap]');
    } else if (line.startsWith('VmFlags:') && anon && line.slice(8).trim().split(/\s+/).includes('dc')) {
      total += size;
    }
  }
  return total;
}

describe.skipIf(!inLab)(`more real RDMA programs on ${RXE_DEVICE} (${labKernel.name || '?'} ${labKernel.release})`, () => {
  const programs = new Programs();
  let rt: ReturnType<typeof labRuntime>;
  let gid = 0;

  beforeAll(() => {
    rt = labRuntime();
    gid = ipv4GidIndex();
  });
  afterEach(async () => { await programs.stopAll(); });
  afterAll(async () => {
    await programs.stopAll();
    rt?.cleanup();
  });

  /**
   * Starts an rdma_cm server (ready when the kernel lists its CM id listening on `port`) and its client;
   * once both hold MRs that stay unchanged, ls --json must list exactly the kernel's MRs of the two pids
   * and stat --json their VmPin as /proc/PID/status says, all read while both still run.
   */
  async function checkPair(name: string, serverArgv: string[], clientArgv: string[], port: number): Promise<void> {
    const server = programs.start(serverArgv);
    await until(`${name} server listening on RDMA CM port ${port}`, () => {
      if (server.child.exitCode !== null) throw new Error(`${name} server exited ${server.child.exitCode}: ${server.output().slice(-2000)}`);
      return cmListening(server.pid, port);
    });
    const client = programs.start(clientArgv);
    const pair = [server, client];
    const pids = pair.map((p) => p.pid);
    const alive = () => pair.every((p) => p.child.exitCode === null && p.child.signalCode === null);
    const outputs = () => pair.map((p) => `${p.pid}: ${p.output().slice(-1000)}`).join('\n');
    // The server registers when the client connects: wait until both pids have MRs and two readings a second apart agree.
    let previous = '';
    await until(`MRs of the ${name} pair, unchanged for a second`, () => {
      if (!alive()) throw new Error(`${name}: a program exited:\n${outputs()}`);
      const now = mrsOf(pids);
      const stable = pids.every((pid) => now.some((m) => m.pid === pid)) && JSON.stringify(now) === previous;
      previous = JSON.stringify(now);
      if (!stable) run(['sleep', '1']);
      return stable;
    }, 180_000);

    const before = mrsOf(pids);
    const vmPin = new Map(pids.map((pid) => [pid, statusKb('VmPin', pid)! * 1024]));
    const ls = lsRows(rt.env).filter((r) => pids.includes(r.pid) && r.source === 'rdma');
    const stat = parseJson<{ processes: Array<{ pid: number; pinnedBytes: number }> }>(rdmactl(['stat', '--json', ...pids.map(String)], rt.env), 'stat --json PIDS');
    const after = mrsOf(pids);
    // Every reading above was taken while the programs ran and their MRs did not change.
    expect(alive(), outputs()).toBe(true);
    expect(after).toEqual(before);
    expect(new Map(pids.map((pid) => [pid, statusKb('VmPin', pid)! * 1024]))).toEqual(vmPin);
    await programs.stopAll();

    // Exactly the kernel's MRs: the same (pid, mrn, lkey, rkey, length) set, nothing more, nothing less.
    // Keys as numbers (the kernel prints hex without 0x; 5.10 gives an MR without remote access rkey 0).
    const hex = (k: string | null | undefined) => (k === null || k === undefined ? '-' : Number.parseInt(k, 16));
    const key = (pid: number, handle: string, lkey: string | null | undefined, rkey: string | null | undefined, length: number) => `${pid} ${handle} ${hex(lkey)} ${hex(rkey)} ${length}`;
    expect(ls.map((r) => key(r.pid, r.handle, r.lkey, r.rkey, r.length)).sort(), name)
      .toEqual(before.map((m) => key(m.pid, `mrn${m.mrn}`, m.lkey, m.rkey, m.mrlen)).sort());
    for (const r of ls) expect(r.device).toBe(RXE_DEVICE);
    for (const pid of pids) {
      expect(stat.processes.find((p) => p.pid === pid)?.pinnedBytes, `${name}: stat VmPin of pid ${pid}`).toBe(vmPin.get(pid));
      // The kernel pins whole pages for each MR: VmPin covers at least the MRs' bytes.
      expect(vmPin.get(pid)!).toBeGreaterThanOrEqual(before.filter((m) => m.pid === pid).reduce((n, m) => n + m.mrlen, 0));
    }
    console.log(`${name} MRs on ${labKernel.release}: ${before.map((m) => `pid ${m.pid} mrn${m.mrn} ${m.mrlen} B lkey ${m.lkey} rkey ${m.rkey}`).join('; ')}; VmPin ${[...vmPin].map(([pid, b]) => `${pid}: ${b} B`).join(', ')}`);
  }

  it('rdma_cm pairs (rping, ib_write_bw -R): ls lists exactly the kernel\'s MRs of their pids, stat\'s VmPin is /proc\'s', async (ctx) => {
    const missing = ['rping', 'ib_write_bw'].filter((p) => onPath(p) === null);
    if (missing.length > 0) return skipLoudly(ctx, `${missing.join(', ')} not installed (rdmacm-utils, perftest)`);
    if (!readFileSync('/proc/misc', 'utf8').split('\n').some((l) => l.trim().endsWith(' rdma_cm'))) {
      return skipLoudly(ctx, 'no rdma_cm misc device (rdma_ucm is not loaded): librdmacm programs cannot run');
    }
    // One pair at a time: a running pair keeps the guest's two CPUs busy.
    const rpingPort = await freePort();
    const rpingArgs = ['-a', GUEST_ADDR, '-p', String(rpingPort), '-C', '100000000', '-S', '4096', '-v'];
    await checkPair('rping', ['rping', '-s', ...rpingArgs], ['rping', '-c', ...rpingArgs], rpingPort);
    const bwPort = await freePort();
    const bwArgs = ['ib_write_bw', '-R', '-d', RXE_DEVICE, '-p', String(bwPort), '-D', '600'];
    await checkPair('ib_write_bw -R', bwArgs, [...bwArgs, GUEST_ADDR], bwPort);
  }, 600_000);

  it('RLIMIT_MEMLOCK: root (CAP_IPC_LOCK) pins past it as doctor predicts; nobody is refused, and doctor\'s printed fix makes the same client work', async () => {
    const size = MiB;
    const limit = 65536;
    const port = await freePort();
    const pingpong = (n: number, client: boolean) => ['ibv_rc_pingpong', '-d', RXE_DEVICE, '-g', String(gid), '-p', String(port), '-s', String(size), '-n', String(n), ...(client ? ['127.0.0.1'] : [])];

    // Root, with the limit lowered by the shell (ulimit -l takes KiB): the kernel counts the pin and does
    // not refuse it. The server registers its buffer before it waits for a peer, so it holds the MR while
    // idle (a running pair busy-polls both CPUs of the guest).
    const underLimit = (argv: string[]) => ['sh', '-c', `ulimit -l ${limit / 1024} && exec "$@"`, 'sh', ...argv];
    const rootDoctor = doctorJson(run(underLimit([process.execPath, BIN, 'doctor', '--size', String(size), '--backend', 'verbs', '--try', '--json']), { env: rt.env, timeoutMs: 300_000 }), 'root doctor --try');
    const rootServer = programs.start(underLimit(pingpong(5, false)));
    await until(`ibv_rc_pingpong listening on ${port}`, () => {
      if (rootServer.child.exitCode !== null) throw new Error(`root server exited ${rootServer.child.exitCode}: ${rootServer.output()}`);
      return tcpListening(port);
    });
    const rootMr = kernelMrs().find((m) => m.pid === rootServer.pid);
    expect(rootMr?.mrlen, JSON.stringify(kernelMrs())).toBe(size);
    const rootPinned = statusKb('VmPin', rootServer.pid)! * 1024;
    expect(memlockSoft(rootServer.pid)).toBe(limit);
    expect(rootPinned, 'the kernel pinned past RLIMIT_MEMLOCK for root').toBeGreaterThan(limit);
    const memlockRoot = rootDoctor.findings.find((f) => f.id === 'memlock.limit')!;
    expect(memlockRoot, JSON.stringify(rootDoctor.findings)).toMatchObject({ status: 'ok', evidence: { softBytes: limit, capIpcLockEffective: true } });
    expect(memlockRoot.summary).toMatch(/not enforced: CAP_IPC_LOCK/);
    expect(rootDoctor.prediction).toMatchObject({ outcome: 'registered', cause: null });
    expect(rootDoctor.try).toMatchObject({ outcome: 'registered' });
    expect(rootDoctor.try!.pinnedBytes!).toBeGreaterThanOrEqual(size);
    // doctor on the root program itself: its limit, its VmPin, not enforced.
    const onServer = doctorJson(rdmactl(['doctor', String(rootServer.pid), '--json'], rt.env), `doctor ${rootServer.pid}`);
    expect(onServer.findings.find((f) => f.id === 'memlock.limit'), JSON.stringify(onServer.findings))
      .toMatchObject({ status: 'ok', evidence: { softBytes: limit, pinnedBytes: rootPinned, capIpcLockEffective: true } });
    // And the exchange completes, the root client under the same limit.
    const rootClient = run(underLimit(pingpong(5, true)), { timeoutMs: 120_000 });
    expect(rootClient.status, rootClient.stdout + rootClient.stderr).toBe(0);
    expect(await rootServer.exited, rootServer.output()).toBe(0);

    // The same command as nobody without capabilities: refused by the limit.
    const server = programs.start(pingpong(5, false));
    await until(`ibv_rc_pingpong listening on ${port}`, () => tcpListening(port));
    const client = (memlock: string) => run(['prlimit', `--memlock=${memlock}`, ...UNPRIVILEGED, ...pingpong(5, true)], { timeoutMs: 120_000 });
    const refused = client(`${limit}:${limit}`);
    expect(refused.status, refused.stdout + refused.stderr).not.toBe(0);
    expect(refused.stderr).toContain("Couldn't register MR");
    const doctor = doctorJson(run(['prlimit', `--memlock=${limit}:${limit}`, ...UNPRIVILEGED, process.execPath, BIN, 'doctor', '--size', String(size), '--backend', 'verbs', '--try', '--json'], { env: rt.env, timeoutMs: 300_000 }), 'nobody doctor --try');
    expect(doctor.prediction, JSON.stringify(doctor.findings)).toMatchObject({ outcome: 'refused', cause: 'memlock.limit' });
    expect(doctor.try).toMatchObject({ outcome: 'refused', errno: 'ENOMEM' });
    const memlock = doctor.findings.find((f) => f.id === 'memlock.limit')!;
    expect(memlock).toMatchObject({ status: 'fail', evidence: { softBytes: limit, capIpcLockEffective: false } });
    expect(memlock.summary).toMatch(/RLIMIT_MEMLOCK/);
    const printed = memlock.fix.map((f) => /prlimit --pid \$\$ --memlock=(\S+)/.exec(f)?.[1]).find(Boolean);
    expect(printed, memlock.fix.join('\n')).toBeDefined();
    const fixed = client(printed!);
    expect(fixed.status, fixed.stdout + fixed.stderr).toBe(0);
    expect(await server.exited, server.output()).toBe(0);
  }, 600_000);

  it('rdma.max hca_handle=0: the client cannot open the device; doctor names the cgroup once, devices prints -, the fix makes the client work', async (ctx) => {
    const cg = rdmaCgroup(GROUP);
    try {
      if (!cg.rdma) return skipLoudly(ctx, 'no rdma cgroup controller in this kernel: rdma.max cannot refuse a device context');
      const port = await freePort();
      const pingpong = (client: boolean) => ['ibv_rc_pingpong', '-d', RXE_DEVICE, '-g', String(gid), '-p', String(port), '-n', '5', ...(client ? ['127.0.0.1'] : [])];
      const server = programs.start(pingpong(false));
      await until(`ibv_rc_pingpong listening on ${port}`, () => tcpListening(port));
      cg.setMax(`${RXE_DEVICE} hca_handle=0 hca_object=max`);
      const inGroup = (argv: string[], env?: NodeJS.ProcessEnv) => run(['sh', '-c', `echo $$ > ${cg.dir}/cgroup.procs && exec "$@"`, 'sh', ...argv], { env, timeoutMs: 300_000 });

      // The client's own error, and its errno from the kernel's syscall return (strace), when strace is here.
      const log = `/tmp/rdmactl-hca-handle-${process.pid}.strace`;
      const strace = onPath('strace');
      const refused = inGroup(strace ? ['strace', '-f', '-o', log, '-e', 'trace=openat,ioctl,write', ...pingpong(true)] : pingpong(true));
      expect(refused.status, refused.stdout + refused.stderr).not.toBe(0);
      expect(refused.stderr).toContain(`Couldn't get context for ${RXE_DEVICE}`);
      let clientErrno: string | null = null;
      if (strace) {
        clientErrno = uverbsErrno(readFileSync(log, 'utf8'));
        expect(clientErrno, readFileSync(log, 'utf8').slice(-3000)).not.toBeNull();
      } else {
        console.warn('strace is not installed: the client\'s errno is not compared with doctor\'s (its message is)');
      }
      expect(cg.current()['hca_handle'] ?? 0).toBe(0);

      const doctorRun = inGroup([process.execPath, BIN, 'doctor', '--size', String(MiB), '--backend', 'verbs', '--try', '--json'], rt.env);
      const doctor = doctorJson(doctorRun, 'doctor in the group');
      const devices = doctor.findings.find((f) => f.id === 'verbs.devices')!;
      const device = (devices.evidence['devices'] as Array<{ name: string; errno: string | null; cause: string | null }>).find((d) => d.name === RXE_DEVICE);
      expect(devices.status, devices.summary).toBe('fail');
      expect(device).toMatchObject({ cause: 'cgroup' });
      if (clientErrno) expect(device!.errno, 'doctor\'s errno vs the client\'s (strace)').toBe(clientErrno);
      expect(devices.summary).toContain(`the rdma cgroup ${GROUP} allows 0 hca_handle`);
      // One finding for the device: what needs an open device is skipped with that reason, never a false fix.
      for (const id of ['verbs.ports', 'verbs.max-mr']) {
        expect(doctor.findings.find((f) => f.id === id), id).toMatchObject({ status: 'skip', reason: expect.stringMatching(/^no device could be opened/) });
      }
      const all = JSON.stringify(doctor.findings);
      expect(all).not.toMatch(/bring the link up|max_mr_size 0\b/);
      expect(doctor.findings.filter((f) => f.status === 'fail' && f.id.startsWith('verbs.')).map((f) => f.id)).toEqual(['verbs.devices']);
      // cgroup.rdma reads the same limit: it may agree, never contradict.
      const rdma = doctor.findings.find((f) => f.id === 'cgroup.rdma')!;
      expect(rdma).toMatchObject({ status: 'fail', evidence: { key: 'hca_handle', max: 0, limitCgroup: GROUP } });
      expect(doctor.prediction).toMatchObject({ outcome: 'refused', cause: 'verbs.devices' });
      expect(doctor.try).toMatchObject({ outcome: 'refused', errno: clientErrno ?? device!.errno });

      // doctor PID from outside the group (rdmactl opens the device; the process in the group could not).
      const member = programs.start(['sleep', '300'], { cgroupDir: cg.dir });
      await until(`pid ${member.pid} in ${GROUP}`, () => readFileSync(`${cg.dir}/cgroup.procs`, 'utf8').split('\n').includes(String(member.pid)));
      const aboutMember = doctorJson(rdmactl(['doctor', String(member.pid), '--size', String(MiB), '--backend', 'verbs', '--json'], rt.env), 'doctor PID from outside the group');
      const memberDevices = aboutMember.findings.find((f) => f.id === 'verbs.devices')!;
      expect(memberDevices.status, memberDevices.summary).toBe('fail');
      expect(memberDevices.summary).toContain(`${RXE_DEVICE}: pid ${member.pid} cannot open a device context: the rdma cgroup ${GROUP} allows 0 hca_handle`);
      expect((memberDevices.evidence['devices'] as Array<{ name: string }>).find((d) => d.name === RXE_DEVICE)).toMatchObject({ cause: 'cgroup', refusedFor: member.pid, errno: null });
      expect(memberDevices.fix).toEqual(devices.fix);
      expect(aboutMember.prediction).toMatchObject({ outcome: 'refused', cause: 'verbs.devices' });
      member.child.kill('SIGKILL');
      await member.exited;

      // devices: - (null in JSON) for what could not be read; outside the group the same fields are numbers.
      const text = inGroup([process.execPath, BIN, 'devices'], rt.env);
      expect(text.status, text.stderr).toBe(0);
      for (const label of ['max_mr', 'max_mr_size (bytes)', 'page_size_cap', 'max_qp', 'max_pd']) {
        expect(text.stdout, label).toMatch(new RegExp(`^${label.replace(/[()]/g, '\\$&')}\\s+-$`, 'm'));
      }
      expect(text.stdout).toMatch(new RegExp(`^error\\s+ibv_open_device: ${device!.errno}$`, 'm'));
      const inside = parseJson<{ devices: Array<{ name: string; maxMr: number | null; maxPd: number | null; ports: unknown }> }>(inGroup([process.execPath, BIN, 'devices', '--json'], rt.env), 'devices --json in the group');
      expect(inside.devices.find((d) => d.name === RXE_DEVICE)).toMatchObject({ maxMr: null, maxPd: null, ports: null });
      const outside = parseJson<{ devices: Array<{ name: string; maxMr: number | null }> }>(rdmactl(['devices', '--json'], rt.env), 'devices --json');
      const devinfoMaxMr = Number(/^\s*max_mr:\s+(\d+)$/m.exec(check(['ibv_devinfo', '-v', '-d', RXE_DEVICE]))![1]);
      expect(outside.devices.find((d) => d.name === RXE_DEVICE)?.maxMr).toBe(devinfoMaxMr);

      // The fix as printed.
      const printed = devices.fix.map((f) => /^(echo .+ > \S+) \(or a higher count\)$/.exec(f)?.[1]).find(Boolean);
      expect(printed, devices.fix.join('\n')).toBeDefined();
      const applied = run(['sh', '-c', printed!]);
      expect(applied.status, applied.stderr).toBe(0);
      const fixed = inGroup(pingpong(true));
      expect(fixed.status, fixed.stdout + fixed.stderr).toBe(0);
      expect(await server.exited, server.output()).toBe(0);
    } finally {
      await programs.stopAll();
      cg.undo();
    }
  }, 600_000);

  it('fork: ibv_rc_pingpong with and without RDMAV_FORK_SAFE=1 against rdmactl fork, the copy-on-fork attribute and the client\'s VmFlags', async () => {
    const attr = copyOnForkAttribute();
    type ForkDoc = { copyOnFork: boolean | null; copyOnForkSource: string; verbsForkStatus: string; scenarios: Array<{ protection: string; verdict: string; reason: string | null }> };
    // ibv_fork_init is process-wide and must come before any registration: fork-init rows run on their own.
    const forkDoc = (protect: 'none' | 'fork-init', forkSafe: boolean) => parseJson<ForkDoc>(
      rdmactl(['fork', '--backend', 'verbs', '--protect', protect, '--writer', 'parent', '--json'], { ...rt.env, RDMAV_FORK_SAFE: forkSafe ? '1' : undefined, IBV_FORK_SAFE: undefined }),
      `fork --backend verbs --protect ${protect}${forkSafe ? ' (RDMAV_FORK_SAFE=1)' : ''}`);
    const rowOf = (doc: ForkDoc, protect: string) => {
      expect(doc.scenarios.map((r) => r.protection)).toEqual([protect]);
      return doc.scenarios[0]!;
    };
    const unmapped = new Map<boolean, boolean>();
    const results: string[] = [];
    for (const forkSafe of [false, true]) {
      const env = { ...process.env };
      delete env['RDMAV_FORK_SAFE'];
      delete env['IBV_FORK_SAFE'];
      if (forkSafe) env['RDMAV_FORK_SAFE'] = '1';
      // The server registers its buffer before it waits for a peer: it holds the MR while idle.
      const port = await freePort();
      const server = programs.start(['ibv_rc_pingpong', '-d', RXE_DEVICE, '-g', String(gid), '-p', String(port), '-s', '4096'], { env });
      await until(`ibv_rc_pingpong listening on ${port}`, () => {
        if (server.child.exitCode !== null) throw new Error(`server exited ${server.child.exitCode}: ${server.output()}`);
        return tcpListening(port);
      });
      const mrBytes = kernelMrs().filter((m) => m.pid === server.pid).reduce((n, m) => n + m.mrlen, 0);
      expect(mrBytes).toBeGreaterThanOrEqual(4096);
      const dontFork = anonDontForkBytes(server.pid);
      const doctor = doctorJson(rdmactl(['doctor', String(server.pid), '--json'], rt.env), `doctor ${server.pid}`);
      await programs.stopAll();
      const doc = forkDoc('none', forkSafe);

      // rdmactl's copy-on-fork answer is the kernel attribute, or unknown where the kernel predates it.
      expect({ copyOnFork: doc.copyOnFork, source: doc.copyOnForkSource }).toEqual(attr === 'absent'
        ? { copyOnFork: null, source: 'unknown (kernel predates the attribute)' }
        : { copyOnFork: attr, source: 'rdma sys show' });
      // ibv_is_fork_initialized in rdmactl's process (same library, same environment as the client).
      expect(doc.verbsForkStatus).toBe(attr === true ? 'unneeded' : forkSafe ? 'enabled' : 'disabled');
      // rdmactl's verdict for an MR registered the way the client registered its own (same library, same
      // variables) against the client's VMAs: the child is left unmapped exactly when the client's MR
      // pages carry MADV_DONTFORK. Without the variable nothing is marked and the pinned MR stays with the
      // parent (every lab kernel copies pinned pages at fork, 5.10 included, as verbs-fork.test.ts shows).
      const row = rowOf(doc, 'none');
      results.push(`RDMAV_FORK_SAFE=${forkSafe ? 1 : 'unset'}: fork status ${doc.verbsForkStatus}, rdmactl fork --protect none ${row.verdict}, client MADV_DONTFORK (VmFlags dc) ${dontFork} B of a ${mrBytes} B MR`);
      expect(['coherent', 'child-unmapped'], JSON.stringify(row)).toContain(row.verdict);
      unmapped.set(forkSafe, row.verdict === 'child-unmapped');
      if (row.verdict === 'child-unmapped') expect(dontFork, `client DONTFORK bytes (${results.at(-1)})`).toBeGreaterThanOrEqual(mrBytes);
      else expect(dontFork, `client DONTFORK bytes (${results.at(-1)})`).toBe(0);
      if (!forkSafe) expect(row.verdict).toBe('coherent');
      // doctor on the client: copy-on-fork as the attribute says; fork.env claims MADV_DONTFORK marking only where the VMAs show it.
      const cof = doctor.findings.find((f) => f.id === 'fork.copy-on-fork')!;
      expect(cof.status).toBe(attr === 'absent' ? 'skip' : attr ? 'ok' : cof.status === 'warn' ? 'warn' : 'fail');
      const envFinding = doctor.findings.find((f) => f.id === 'fork.env')!;
      expect(Object.keys(envFinding.evidence['variables'] as object)).toEqual(forkSafe ? ['RDMAV_FORK_SAFE'] : []);
      results.push(`  doctor ${server.pid}: fork.copy-on-fork ${cof.status}; fork.env ${envFinding.status}: ${envFinding.summary}`);
      if (/marks every MR MADV_DONTFORK/.test(envFinding.summary)) expect(dontFork, envFinding.summary).toBeGreaterThanOrEqual(mrBytes);
      if (dontFork === 0) expect(envFinding.summary).not.toMatch(/marks every MR MADV_DONTFORK/);
    }
    // ibv_fork_init called by rdmactl does what RDMAV_FORK_SAFE=1 made the client's library do.
    const init = forkDoc('fork-init', false);
    const initRow = rowOf(init, 'fork-init');
    results.push(`rdmactl fork --protect fork-init: fork status before ${init.verbsForkStatus}, verdict ${initRow.verdict}`);
    console.log(`fork on ${labKernel.release} (copy-on-fork attribute ${String(attr)}):\n  ${results.join('\n  ')}`);
    expect(initRow.verdict === 'child-unmapped', JSON.stringify(initRow)).toBe(unmapped.get(true));
  }, 600_000);
});
