// The kernel's rdma cgroup controller with real verbs objects (Soft-RoCE): a cgroup v2 group with
// rdma.max set, a holder inside it; `stat --by cgroup` must show rdma.current = rdma.max as the
// cgroup files read here say, and a registration the controller refuses must be explained by the
// group's rdma.max, not RLIMIT_MEMLOCK.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RXE_DEVICE, inLab, labKernel, run, statusKb } from './helpers.js';
import { BIN, MiB, PROBE, labRuntime, parseJson, rdmactl } from './verbs-helpers.js';

const CGROUP_ROOT = '/sys/fs/cgroup';
const GROUP = '/rdmactl-lab';
const DIR = `${CGROUP_ROOT}${GROUP}`;
/** A sibling group for a process that holds rdma objects but pins nothing (v2: no processes in DIR's children). */
const PD_GROUP = '/rdmactl-lab-pd';
const PD_DIR = `${CGROUP_ROOT}${PD_GROUP}`;
type Json = Record<string, unknown>;

/** `rxe0 hca_handle=1 hca_object=2` → { hca_handle: 1, hca_object: 2 } (max → null), read with a regex of our own. */
function rdmaFile(file: string, directory = DIR): Record<string, number | null> {
  const line = readFileSync(`${directory}/${file}`, 'utf8').split('\n').find((l) => l.startsWith(`${RXE_DEVICE} `));
  const out: Record<string, number | null> = {};
  for (const [, key, value] of (line ?? '').matchAll(/(\w+)=(\d+|max)/g)) out[key!] = value === 'max' ? null : Number(value);
  return out;
}

function startIn(args: string[], env: NodeJS.ProcessEnv, directory = DIR, script = BIN): Promise<ChildProcessWithoutNullStreams> {
  const child = spawn('sh', ['-c', `echo $$ > ${directory}/cgroup.procs && exec "$@"`, 'sh', process.execPath, script, ...args], { stdio: 'pipe', env });
  let err = '';
  child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
  return new Promise((resolve, reject) => {
    child.stdout.once('data', () => resolve(child));
    child.once('exit', (code) => reject(new Error(`holder exited (${code}) before registering: ${err}`)));
  });
}

describe.skipIf(!inLab)(`rdma cgroup limits on ${labKernel.name || '?'} (${labKernel.release})`, () => {
  let rt: ReturnType<typeof labRuntime>;
  let mounted = false;
  let holder: ChildProcessWithoutNullStreams | null = null;
  let rdmaController = false;
  let memoryController = false;

  beforeAll(async () => {
    rt = labRuntime();
    const isV2 = / - cgroup2 /.test(readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => l.split(' ')[4] === CGROUP_ROOT) ?? '');
    if (!isV2) {
      const m = run(['mount', '-t', 'cgroup2', 'none', CGROUP_ROOT]);
      if (m.status !== 0) throw new Error(`mount cgroup2: ${m.stderr}`);
      mounted = true;
    }
    const controllers = readFileSync(`${CGROUP_ROOT}/cgroup.controllers`, 'utf8').split(/\s+/);
    rdmaController = controllers.includes('rdma');
    memoryController = controllers.includes('memory');
    if (!rdmaController) {
      console.warn(`SKIPPING rdma cgroup lab tests: this kernel has no rdma controller (controllers: ${controllers.join(' ')})`);
      return;
    }
    writeFileSync(`${CGROUP_ROOT}/cgroup.subtree_control`, memoryController ? '+rdma +memory' : '+rdma');
    mkdirSync(DIR);
    if (memoryController) writeFileSync(`${DIR}/memory.max`, String(512 * MiB));
    holder = await startIn(['reg', '1M', '--backend', 'verbs', '--json'], rt.env);
  });

  afterAll(async () => {
    if (holder && holder.exitCode === null && holder.signalCode === null) {
      const gone = new Promise((resolve) => holder!.once('exit', resolve));
      holder.kill('SIGTERM');
      await gone;
    }
    if (existsSync(DIR)) rmdirSync(DIR);
    if (existsSync(PD_DIR)) rmdirSync(PD_DIR);
    if (mounted) run(['umount', CGROUP_ROOT]);
    rt?.cleanup();
  });

  it('stat --by cgroup: rdma.current equals rdma.max when the group uses all it may; numbers as the cgroup files say', (ctx) => {
    if (!rdmaController) ctx.skip('no rdma controller in this kernel');
    const used = rdmaFile('rdma.current');
    // One device context, and a PD and an MR for the one registration.
    expect(used).toEqual({ hca_handle: 1, hca_object: 2 });
    writeFileSync(`${DIR}/rdma.max`, `${RXE_DEVICE} hca_handle=max hca_object=${used['hca_object']}`);
    const report = parseJson<{ groups: Json[] }>(rdmactl(['stat', '--by', 'cgroup', '--json'], rt.env), 'stat --by cgroup');
    const group = report.groups.find((g) => g['cgroup'] === GROUP)!;
    expect(group, JSON.stringify(report.groups)).toBeDefined();
    expect(group).toMatchObject({ hierarchy: 2, processes: 1, pinnedBytes: statusKb('VmPin', holder!.pid!)! * 1024 });
    expect(group['pinnedBytes']).toBe(MiB);
    const rdma = group['rdma'] as Json[];
    expect(rdma.find((d) => d['device'] === RXE_DEVICE)).toEqual({
      device: RXE_DEVICE,
      current: rdmaFile('rdma.current'),
      max: rdmaFile('rdma.max'),
      objectsHeadroom: 0,
      handlesHeadroom: null,
    });
    expect(rdmaFile('rdma.max')['hca_object']).toBe(rdmaFile('rdma.current')['hca_object']);
    expect(group['flags']).toContain('near-rdma-limit');
    if (memoryController) {
      expect(group['memoryLimitBytes']).toBe(Number(readFileSync(`${DIR}/memory.max`, 'utf8')));
      expect(group['memoryHeadroomBytes']).toBe(512 * MiB - MiB - (group['lockedBytes'] as number));
    } else console.warn('memory limits not checked: no memory controller in this kernel');
    // A pipe: plain-table cells are one word each.
    const text = rdmactl(['stat', '--by', 'cgroup'], rt.env).stdout;
    expect(text).toContain(`${RXE_DEVICE}:obj=2/2,hdl=1/max`);
  });

  it('exporter: rdmactl_cgroup_rdma_current / _max per device and resource as the cgroup files say', (ctx) => {
    if (!rdmaController) ctx.skip('no rdma controller in this kernel');
    const result = rdmactl(['stat', '--format', 'prometheus'], rt.env);
    expect(result.status, result.stderr).toBe(0);
    const series = (name: string, resource: string): number[] => result.stdout.split('\n')
      .filter((l) => l.startsWith(`${name}{`) && l.includes(`cgroup="${GROUP}"`) && l.includes(`device="${RXE_DEVICE}"`) && l.includes(`resource="${resource}"`))
      .map((l) => { const v = l.slice(l.lastIndexOf(' ') + 1); return v === '+Inf' ? Infinity : Number(v); });
    const current = rdmaFile('rdma.current');
    const max = rdmaFile('rdma.max');
    for (const resource of ['hca_handle', 'hca_object']) {
      expect(series('rdmactl_cgroup_rdma_current', resource), resource).toEqual([current[resource]]);
      expect(series('rdmactl_cgroup_rdma_max', resource), resource).toEqual([max[resource] ?? Infinity]);
    }
    expect(max['hca_object']).toBe(current['hca_object']);
    expect(result.stdout).toContain(`rdmactl_cgroup_pinned_bytes{cgroup="${GROUP}",unit="",container="",pod=""} ${statusKb('VmPin', holder!.pid!)! * 1024}`);
    if (memoryController) expect(result.stdout).toContain(`rdmactl_cgroup_memory_max_bytes{cgroup="${GROUP}",unit="",container="",pod=""} ${Number(readFileSync(`${DIR}/memory.max`, 'utf8'))}`);
  });

  it('a registration the rdma controller refuses names the group\'s rdma.max and how to raise it', (ctx) => {
    if (!rdmaController) ctx.skip('no rdma controller in this kernel');
    // Room for one more object: the next registration's PD fits, its MR does not.
    writeFileSync(`${DIR}/rdma.max`, `${RXE_DEVICE} hca_handle=max hca_object=3`);
    const r = run(['sh', '-c', `echo $$ > ${DIR}/cgroup.procs && exec "$@"`, 'sh', process.execPath, BIN, 'reg', '1M', '--backend', 'verbs', '--for', '1ms'], { env: rt.env, timeoutMs: 90_000 });
    expect(r.status, r.stdout + r.stderr).toBe(1);
    expect(r.stderr).toContain('EAGAIN');
    expect(r.stderr).toContain(`the rdma cgroup ${GROUP} limits ${RXE_DEVICE} hca_object to 3 (rdma.max; 2 in use after this attempt released its own), not RLIMIT_MEMLOCK`);
    expect(r.stderr).toContain(`echo '${RXE_DEVICE} hca_object=max' > ${DIR}/rdma.max`);
    expect(r.stderr).not.toContain('RLIMIT_MEMLOCK is');
    // The refused process released what it had: only the holder's objects remain.
    expect(rdmaFile('rdma.current')).toEqual({ hca_handle: 1, hca_object: 2 });
  });

  it('doctor: cgroup.rdma as the files say; a verbs --try needing more objects than are left is predicted refused (cgroup.rdma) and is', (ctx) => {
    if (!rdmaController) ctx.skip('no rdma controller in this kernel');
    interface Finding { id: string; status: string; summary: string; evidence: Json; fix: string[] }
    interface DoctorJson { findings: Finding[]; prediction: Json | null; try: Json | null }
    // doctor exits 1 when a check fails: parse its JSON whatever the status.
    const parseDoctor = (stdout: string, stderr: string): DoctorJson => {
      if (stdout.trim() === '') throw new Error(`doctor printed nothing: ${stderr}`);
      return JSON.parse(stdout) as DoctorJson;
    };
    const doctorIn = (args: string[]): DoctorJson => {
      const r = run(['sh', '-c', `echo $$ > ${DIR}/cgroup.procs && exec "$@"`, 'sh', process.execPath, BIN, 'doctor', ...args, '--json'], { env: rt.env, timeoutMs: 300_000 });
      return parseDoctor(r.stdout, r.stderr);
    };
    const rdmaOf = (json: DoctorJson): Finding => json.findings.find((f) => f.id === 'cgroup.rdma')!;

    // One object left: a new process needs two (its PD and the MR).
    writeFileSync(`${DIR}/rdma.max`, `${RXE_DEVICE} hca_handle=max hca_object=3`);
    const refused = doctorIn(['--size', '1M', '--backend', 'verbs', '--try']);
    expect(rdmaOf(refused)).toMatchObject({
      status: 'fail',
      evidence: { cgroup: GROUP, limitCgroup: GROUP, device: RXE_DEVICE, key: 'hca_object', max: rdmaFile('rdma.max')['hca_object'], current: rdmaFile('rdma.current')['hca_object'], headroom: 1, file: `${DIR}/rdma.max` },
      fix: [`echo '${RXE_DEVICE} hca_object=max' > ${DIR}/rdma.max (or a higher count)`],
    });
    expect(refused.prediction).toMatchObject({ outcome: 'refused', cause: 'cgroup.rdma' });
    expect(refused.try).toMatchObject({ outcome: 'refused', errno: 'EAGAIN' });

    // Two left: it fits, and the kernel agrees.
    writeFileSync(`${DIR}/rdma.max`, `${RXE_DEVICE} hca_handle=max hca_object=4`);
    const fits = doctorIn(['--size', '1M', '--backend', 'verbs', '--try']);
    expect(rdmaOf(fits)).toMatchObject({ status: 'ok', evidence: { max: 4, current: rdmaFile('rdma.current')['hca_object'], headroom: 2 } });
    expect(fits.prediction).toMatchObject({ outcome: 'registered', cause: null });
    expect(fits.try).toMatchObject({ outcome: 'registered', pinnedBytes: MiB });

    // The holder, diagnosed from outside: its group is at the limit.
    writeFileSync(`${DIR}/rdma.max`, `${RXE_DEVICE} hca_handle=max hca_object=2`);
    const plain = rdmactl(['doctor', String(holder!.pid), '--json'], rt.env);
    const full = parseDoctor(plain.stdout, plain.stderr);
    expect(rdmaOf(full)).toMatchObject({ status: 'warn', evidence: { cgroup: GROUP, max: 2, current: rdmaFile('rdma.current')['hca_object'], headroom: 0 } });
  }, 600_000);

  it('a group whose process holds a context and a PD but pins nothing, at rdma.max: stat --by cgroup and the exporter show it (processes 0)', async (ctx) => {
    if (!rdmaController) ctx.skip('no rdma controller in this kernel');
    mkdirSync(PD_DIR);
    let pdHolder: ChildProcessWithoutNullStreams | null = null;
    try {
      pdHolder = await startIn(['hold-pd', RXE_DEVICE], rt.env, PD_DIR, PROBE);
      const pid = pdHolder.pid!;
      expect([statusKb('VmPin', pid), statusKb('VmLck', pid)]).toEqual([0, 0]);
      // One device context (a handle) and one PD (an object); no MR.
      const used = rdmaFile('rdma.current', PD_DIR);
      expect(used).toEqual({ hca_handle: 1, hca_object: 1 });
      writeFileSync(`${PD_DIR}/rdma.max`, `${RXE_DEVICE} hca_handle=max hca_object=${used['hca_object']}`);

      const report = parseJson<{ groups: Json[]; processes: Json[] }>(rdmactl(['stat', '--by', 'cgroup', '--json'], rt.env), 'stat --by cgroup');
      expect(report.processes.map((p) => p['pid'])).not.toContain(pid);
      const group = report.groups.find((g) => g['cgroup'] === PD_GROUP);
      expect(group, JSON.stringify(report.groups.map((g) => g['cgroup']))).toMatchObject({ hierarchy: 2, processes: 0, pinnedBytes: 0, lockedBytes: 0, members: [] });
      expect((group!['rdma'] as Json[]).find((d) => d['device'] === RXE_DEVICE)).toEqual({
        device: RXE_DEVICE, current: rdmaFile('rdma.current', PD_DIR), max: rdmaFile('rdma.max', PD_DIR), objectsHeadroom: 0, handlesHeadroom: null,
      });
      expect(group!['flags']).toContain('near-rdma-limit');
      const text = rdmactl(['stat', '--by', 'cgroup'], rt.env).stdout;
      expect(text.split('\n').find((l) => l.startsWith(`${PD_GROUP} `)), text).toContain(`${RXE_DEVICE}:obj=1/1,hdl=1/max`);

      // What the group's rdma.max means: a third process there cannot get its PD.
      const refused = run(['sh', '-c', `echo $$ > ${PD_DIR}/cgroup.procs && exec "$@"`, 'sh', process.execPath, BIN, 'reg', '1M', '--backend', 'verbs', '--for', '1ms'], { env: rt.env, timeoutMs: 90_000 });
      expect(refused.status, refused.stdout + refused.stderr).toBe(1);
      expect(refused.stderr).toContain('EAGAIN');

      const scrape = rdmactl(['stat', '--format', 'prometheus'], rt.env);
      expect(scrape.status, scrape.stderr).toBe(0);
      expect(scrape.stdout).toContain(`rdmactl_cgroup_processes{cgroup="${PD_GROUP}",unit="",container="",pod=""} 0`);
      expect(scrape.stdout).toContain(`rdmactl_cgroup_pinned_bytes{cgroup="${PD_GROUP}",unit="",container="",pod=""} 0`);
      for (const [resource, value] of Object.entries(rdmaFile('rdma.current', PD_DIR))) {
        expect(scrape.stdout).toContain(`rdmactl_cgroup_rdma_current{cgroup="${PD_GROUP}",unit="",container="",pod="",device="${RXE_DEVICE}",resource="${resource}"} ${value}`);
      }
      expect(scrape.stdout).toContain(`rdmactl_cgroup_rdma_max{cgroup="${PD_GROUP}",unit="",container="",pod="",device="${RXE_DEVICE}",resource="hca_object"} 1`);
    } finally {
      if (pdHolder && pdHolder.exitCode === null && pdHolder.signalCode === null) {
        const gone = new Promise((resolve) => pdHolder!.once('exit', resolve));
        pdHolder.kill('SIGTERM');
        await gone;
      }
      if (existsSync(PD_DIR)) rmdirSync(PD_DIR);
    }
  }, 300_000);
});
