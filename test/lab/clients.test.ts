// Real RDMA programs, not ours, on Soft-RoCE: perftest's ib_write_bw and ibverbs-utils'
// ibv_rc_pingpong (server and client on one node, over the IPv4-mapped RoCE v2 GID). While they run,
// rdmactl's ls, stat, stat --by cgroup, top and the exporter's metrics must agree with the kernel's
// MR table (`rdma -j res show mr`), each process's VmPin and the cgroup's rdma.current. And a client
// refused by rdma.max in its cgroup: doctor names the cause, and the fix it prints makes the same client
// work. (A client refused by RLIMIT_MEMLOCK, with doctor's fix, is in clients-more.test.ts, beside the
// same program run as root.)
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RXE_DEVICE, inLab, labKernel, run, statusKb } from './helpers.js';
import { freePort, ipv4GidIndex, tcpListening as listening, until } from './programs.js';
import { BIN, kernelMrs, labRuntime, lsRows, parseJson, rdmactl } from './verbs-helpers.js';

const CGROUP_ROOT = '/sys/fs/cgroup';
const GROUP = '/rdmactl-clients';
const DIR = `${CGROUP_ROOT}${GROUP}`;

interface Program { child: ChildProcess; output: () => string; exited: Promise<number | null> }
const children: ChildProcess[] = [];

/** Starts argv (optionally inside the test's cgroup), keeping its stdout+stderr. */
function start(argv: string[], inGroup: boolean): Program {
  const child = inGroup
    ? spawn('sh', ['-c', `echo $$ > ${DIR}/cgroup.procs && exec "$@"`, 'sh', ...argv], { stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => out, exited };
}

async function killAll(): Promise<void> {
  for (const child of children.splice(0)) {
    if (child.exitCode !== null || child.signalCode !== null) continue;
    const gone = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await gone;
  }
}

/** `rxe0 hca_handle=1 hca_object=2` of the group's rdma.current → numbers. */
function rdmaCurrent(): Record<string, number> {
  const line = readFileSync(`${DIR}/rdma.current`, 'utf8').split('\n').find((l) => l.startsWith(`${RXE_DEVICE} `)) ?? '';
  return Object.fromEntries([...line.matchAll(/(\w+)=(\d+)/g)].map(([, k, v]) => [k!, Number(v)]));
}

describe.skipIf(!inLab)(`real RDMA programs on ${RXE_DEVICE} (${labKernel.name || '?'} ${labKernel.release})`, () => {
  let rt: ReturnType<typeof labRuntime>;
  let mounted = false;
  let rdmaController = false;
  let gid = 0;

  beforeAll(() => {
    rt = labRuntime();
    gid = ipv4GidIndex();
    const isV2 = / - cgroup2 /.test(readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => l.split(' ')[4] === CGROUP_ROOT) ?? '');
    if (!isV2) {
      const m = run(['mount', '-t', 'cgroup2', 'none', CGROUP_ROOT]);
      if (m.status !== 0) throw new Error(`mount cgroup2: ${m.stderr}`);
      mounted = true;
    }
    rdmaController = readFileSync(`${CGROUP_ROOT}/cgroup.controllers`, 'utf8').split(/\s+/).includes('rdma');
    if (rdmaController) writeFileSync(`${CGROUP_ROOT}/cgroup.subtree_control`, '+rdma');
    else console.warn('rdma.current not compared: this kernel has no rdma cgroup controller');
    mkdirSync(DIR);
  });

  afterAll(async () => {
    await killAll();
    if (existsSync(DIR)) rmdirSync(DIR);
    if (mounted) run(['umount', CGROUP_ROOT]);
    rt?.cleanup();
  });

  it('ib_write_bw and ibv_rc_pingpong pairs: ls, stat, stat --by cgroup, top and the metrics agree with the kernel', async () => {
    const [bwPort, pingPort] = [await freePort(), await freePort()];
    const bwServer = start(['ib_write_bw', '-d', RXE_DEVICE, '-x', String(gid), '-p', String(bwPort), '-D', '600'], true);
    await until(`ib_write_bw listening on ${bwPort}`, () => listening(bwPort));
    const bwClient = start(['ib_write_bw', '-d', RXE_DEVICE, '-x', String(gid), '-p', String(bwPort), '-D', '600', '127.0.0.1'], true);
    // -e: the pingpong pair sleeps on completion events instead of polling, so with ib_write_bw's pair
    // beside it the guest's two vCPUs are not all spent spinning while rdmactl reads.
    const pingServer = start(['ibv_rc_pingpong', '-e', '-d', RXE_DEVICE, '-g', String(gid), '-p', String(pingPort), '-n', '100000000'], true);
    await until(`ibv_rc_pingpong listening on ${pingPort}`, () => listening(pingPort));
    const pingClient = start(['ibv_rc_pingpong', '-e', '-d', RXE_DEVICE, '-g', String(gid), '-p', String(pingPort), '-n', '100000000', '127.0.0.1'], true);
    const programs = [bwServer, bwClient, pingServer, pingClient];
    const pids = programs.map((p) => p.child.pid!);
    await until('an MR of each program in rdma res show mr', () => pids.every((pid) => kernelMrs().some((m) => m.pid === pid)), 120_000);

    const mrs = kernelMrs().filter((m) => pids.includes(m.pid));
    const vmPin = new Map(pids.map((pid) => [pid, statusKb('VmPin', pid)! * 1024]));
    const ls = lsRows(rt.env);
    type Proc = { pid: number; pinnedBytes: number };
    const stat = parseJson<{ processes: Proc[] }>(rdmactl(['stat', '--json'], rt.env), 'stat --json');
    const byCgroup = parseJson<{ groups: Array<{ cgroup: string; pinnedBytes: number; processes: number; rdma?: Array<{ device: string; current: Record<string, number> }> }> }>(
      rdmactl(['stat', '--by', 'cgroup', '--json'], rt.env), 'stat --by cgroup --json');
    const top = parseJson<{ processes: Proc[] }>(run([process.execPath, BIN, 'top', '--json', '--count', '1'], { env: rt.env, timeoutMs: 90_000 }), 'top --json --count 1');
    const metrics = run([process.execPath, BIN, 'stat', '--format', 'prometheus'], { env: rt.env, timeoutMs: 180_000 });
    const current = rdmaController ? rdmaCurrent() : null;
    // The programs are still running: every reading above was taken while their MRs existed.
    for (const p of programs) expect(p.child.exitCode, p.output()).toBeNull();
    const stillPinned = new Map(pids.map((pid) => [pid, statusKb('VmPin', pid)! * 1024]));
    expect(stillPinned).toEqual(vmPin);

    for (const mr of mrs) {
      const row = ls.find((r) => r.pid === mr.pid && r.lkey !== null && Number.parseInt(r.lkey, 16) === Number.parseInt(mr.lkey!, 16));
      expect(row, `MR ${JSON.stringify(mr)} in ls --json`).toBeDefined();
      expect(row!.length).toBe(mr.mrlen);
      expect(row!.device).toBe(RXE_DEVICE);
    }
    for (const pid of pids) {
      const lsBytes = ls.filter((r) => r.pid === pid && r.source === 'rdma').reduce((n, r) => n + r.length, 0);
      expect(lsBytes, `pid ${pid}: ls lengths vs the kernel's MRs`).toBe(mrs.filter((m) => m.pid === pid).reduce((n, m) => n + m.mrlen, 0));
      expect(stat.processes.find((p) => p.pid === pid)?.pinnedBytes, `stat pid ${pid}`).toBe(vmPin.get(pid));
      expect(top.processes.find((p) => p.pid === pid)?.pinnedBytes, `top pid ${pid}`).toBe(vmPin.get(pid));
      expect(metrics.stdout).toMatch(new RegExp(`^rdmactl_process_pinned_bytes\\{pid="${pid}",[^}]*\\} ${vmPin.get(pid)}$`, 'm'));
    }
    const total = [...vmPin.values()].reduce((a, b) => a + b, 0);
    const group = byCgroup.groups.find((g) => g.cgroup === GROUP);
    expect(group, JSON.stringify(byCgroup.groups)).toMatchObject({ processes: 4, pinnedBytes: total });
    if (current) expect(group!.rdma?.find((d) => d.device === RXE_DEVICE)?.current).toEqual(current);
    await killAll();
  }, 600_000);

  it('a client refused by rdma.max in its cgroup: its own error, doctor names the group\'s limit, the printed fix makes the same client work', async (ctx) => {
    if (!rdmaController) {
      const reason = 'no rdma cgroup controller in this kernel: rdma.max cannot refuse a client';
      console.warn(`SKIPPING: ${reason}`);
      ctx.skip(reason);
    }
    await killAll();
    const size = 1024 * 1024;
    const port = await freePort();
    // The server runs outside the group: only the client is limited.
    const server = start(['ibv_rc_pingpong', '-d', RXE_DEVICE, '-g', String(gid), '-p', String(port), '-s', String(size), '-n', '5'], false);
    await until(`ibv_rc_pingpong listening on ${port}`, () => listening(port));
    // Room for one more object: the client's PD fits, its MR (and CQ, QP) do not.
    const inUse = rdmaCurrent()['hca_object'] ?? 0;
    writeFileSync(`${DIR}/rdma.max`, `${RXE_DEVICE} hca_object=${inUse + 1}`);
    const inGroup = (argv: string[], env?: NodeJS.ProcessEnv) => run(['sh', '-c', `echo $$ > ${DIR}/cgroup.procs && exec "$@"`, 'sh', ...argv], { env, timeoutMs: 300_000 });
    const clientArgv = ['ibv_rc_pingpong', '-d', RXE_DEVICE, '-g', String(gid), '-p', String(port), '-s', String(size), '-n', '5', '127.0.0.1'];
    const refused = inGroup(clientArgv);
    expect(refused.status, refused.stdout + refused.stderr).not.toBe(0);
    expect(refused.stderr).toContain("Couldn't register MR");

    const doctor = inGroup([process.execPath, BIN, 'doctor', '--size', String(size), '--backend', 'verbs', '--try', '--json'], rt.env);
    const report = JSON.parse(doctor.stdout) as { findings: Array<{ id: string; status: string; evidence: Record<string, unknown>; fix: string[] }>; prediction: { outcome: string; cause: string }; try: { outcome: string; errno: string } };
    expect(report.prediction, doctor.stdout).toMatchObject({ outcome: 'refused', cause: 'cgroup.rdma' });
    expect(report.try).toMatchObject({ outcome: 'refused', errno: 'EAGAIN' });
    const rdma = report.findings.find((f) => f.id === 'cgroup.rdma')!;
    expect(rdma).toMatchObject({ status: 'fail', evidence: { limitCgroup: GROUP, device: RXE_DEVICE, key: 'hca_object', max: inUse + 1, file: `${DIR}/rdma.max` } });
    // Apply the command doctor printed, as printed (the text before its "(or a higher count)" note).
    const printed = rdma.fix.map((f) => /^(echo .+ > \S+) \(or a higher count\)$/.exec(f)?.[1]).find(Boolean);
    expect(printed, rdma.fix.join('\n')).toBeDefined();
    const applied = run(['sh', '-c', printed!]);
    expect(applied.status, applied.stderr).toBe(0);
    expect(readFileSync(`${DIR}/rdma.max`, 'utf8')).toMatch(new RegExp(`^${RXE_DEVICE} .*hca_object=max`, 'm'));

    const fixed = inGroup(clientArgv);
    expect(fixed.status, fixed.stdout + fixed.stderr).toBe(0);
    expect(await server.exited, server.output()).toBe(0);
  }, 600_000);
});
