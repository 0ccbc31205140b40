// doctor's cgroup checks against real v1 memory cgroups made by the test: a process in a cgroup
// named like a systemd unit (x.service), one in a Docker (cgroupfs driver) container path
// /docker/<64 hex>, and --try inside a cgroup whose memory limit is smaller than the request, where
// the kernel's memory cgroup OOM killer is the real wall. Every number in the findings is compared
// with the cgroup files and /proc read here with plain regexes.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, UNPRIVILEGED, builtOrThrow, exited, runSync, startRdmactl, unprivilegedUnavailable } from '../helpers/spawn.js';
import { findingOf, type DoctorJson } from './helpers.js';
import { memoryCgroupPlacement, removeCgroups } from '../helpers/cgroup.js';

const KiB = 1024;
const MiB = 1024 * KiB;

const { skipReason, parentPath, dir } = memoryCgroupPlacement();
if (skipReason) console.warn(`SKIPPING doctor cgroup tests: ${skipReason}`);
const noUnprivileged = unprivilegedUnavailable();
const systemdRuns = existsSync('/run/systemd/system');

const ID = 'feed'.padEnd(64, '0123456789abcdef');
const base = `${parentPath}/rdmactl-doctor-${process.pid}`;
const unitPath = `${base}/x.service`;
const dockerParent = `${base}/docker`;
const dockerPath = `${dockerParent}/${ID}`;
const limitedPath = `${base}/limited`;
// Any user with a delegated subtree names its own cgroups: this one would run `id` in a root shell pasting the fix unquoted.
const hostileUnitPath = `${base}/a b;$(id).service`;
const ALL = [base, unitPath, dockerParent, dockerPath, limitedPath, hostileUnitPath];
const fileNumber = (path: string, file: string): number => Number(readFileSync(`${dir(path)}/${file}`, 'utf8').trim());
const oomKills = (path: string): number => Number(/^oom_kill (\d+)$/m.exec(readFileSync(`${dir(path)}/memory.oom_control`, 'utf8'))?.[1] ?? NaN);

/** argv prefix that moves itself into the cgroup at `path`, then execs the rest. */
const inCgroup = (path: string): string[] => ['sh', '-c', `echo $$ > '${dir(path)}/cgroup.procs' && exec "$@"`, 'sh'];

function doctorIn(path: string, prefix: string[], args: string[]): { status: number | null; json: DoctorJson; stderr: string } {
  const r = runSync([...inCgroup(path), ...prefix, process.execPath, BIN, 'doctor', ...args, '--json']);
  if (r.stdout.trim() === '') throw new Error(`doctor printed nothing (exit ${r.status}): ${r.stderr}`);
  return { status: r.status, json: JSON.parse(r.stdout) as DoctorJson, stderr: r.stderr };
}

function capMask(pid: number, key: string): bigint {
  return BigInt(`0x${new RegExp(`^${key}:\\s*([0-9a-f]+)$`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]}`);
}

beforeAll(() => builtOrThrow());

describe.skipIf(skipReason !== null)('doctor on real memory cgroups', () => {
  beforeAll(() => {
    for (const path of ALL) mkdirSync(dir(path));
    writeFileSync(`${dir(unitPath)}/memory.limit_in_bytes`, String(256 * MiB));
    // The container has no limit of its own: its parent's applies (hierarchical accounting).
    writeFileSync(`${dir(dockerParent)}/memory.limit_in_bytes`, String(384 * MiB));
    // Room for this doctor and its --try child (two node processes), not for a large request.
    writeFileSync(`${dir(limitedPath)}/memory.limit_in_bytes`, String(192 * MiB));
  });

  afterAll(async () => {
    // Only processes this test started can be in these groups; deepest first.
    await removeCgroups(ALL.map(dir));
  });

  it.skipIf(noUnprivileged !== null)('x.service: memlock.unit names the unit (systemctl asked only where systemd runs), memlock.limit\'s fix is a drop-in for it, cgroup.memory reads its limit', () => {
    const r = doctorIn(unitPath, ['prlimit', '--memlock=65536:65536', ...UNPRIVILEGED], ['--size', '128K', '--backend', 'mlock']);
    expect(r.status, r.stderr).toBe(1);
    const unit = findingOf(r.json, 'memlock.unit');
    expect(unit.evidence).toMatchObject({ cgroup: unitPath, unit: 'x.service', unitCgroup: unitPath, file: `/proc/${r.json.target.pid}/cgroup` });
    if (systemdRuns) expect(['ok', 'warn', 'skip']).toContain(unit.status);
    else expect(unit).toMatchObject({ status: 'skip', reason: 'systemd is not running here (no /run/systemd/system): cannot ask for LimitMEMLOCK of x.service' });

    const limit = findingOf(r.json, 'memlock.limit');
    expect(limit).toMatchObject({ status: 'fail', evidence: { softBytes: 64 * KiB, chargedBytes: 128 * KiB } });
    expect(limit.fix[0]).toBe('systemd unit x.service (limits.conf does not apply to it): LimitMEMLOCK=infinity in a drop-in: '
      + 'mkdir -p /etc/systemd/system/x.service.d && printf \'[Service]\\nLimitMEMLOCK=infinity\\n\' > /etc/systemd/system/x.service.d/memlock.conf && systemctl daemon-reload && systemctl restart x.service');
    expect(r.json.prediction).toMatchObject({ outcome: 'refused', cause: 'memlock.limit' });

    expect(findingOf(r.json, 'container.runtime')).toMatchObject({ status: 'ok', evidence: { cgroup: unitPath, runtime: null, containerId: null } });
    const memory = findingOf(r.json, 'cgroup.memory');
    expect(memory).toMatchObject({ status: 'ok', evidence: { cgroup: unitPath, hierarchy: 1, limitCgroup: unitPath, limitBytes: fileNumber(unitPath, 'memory.limit_in_bytes'), requestBytes: 128 * KiB, file: `${dir(unitPath)}/memory.limit_in_bytes` } });
    expect(memory.evidence['limitBytes']).toBe(256 * MiB);
    // The doctor ran inside the group: it used memory there, and less than the limit.
    expect(memory.evidence['usageBytes']).toBeGreaterThan(4 * MiB);
    expect(memory.evidence['usageBytes']).toBeLessThanOrEqual(fileNumber(unitPath, 'memory.max_usage_in_bytes'));
    expect(findingOf(r.json, 'cgroup.rdma')).toMatchObject({ status: 'skip' });
  }, 60_000);

  it.skipIf(noUnprivileged !== null)('a unit named with shell syntax: the drop-in fix quotes it, so pasting it runs nothing but the fix', () => {
    const r = doctorIn(hostileUnitPath, ['prlimit', '--memlock=65536:65536', ...UNPRIVILEGED], ['--size', '128K', '--backend', 'mlock']);
    expect(r.status, r.stderr).toBe(1);
    const limit = findingOf(r.json, 'memlock.limit');
    expect(limit.fix[0]).toContain("mkdir -p '/etc/systemd/system/a b;$(id).service.d' && ");
    expect(limit.fix[0]).toContain("systemctl restart 'a b;$(id).service'");
  });

  it.skipIf(noUnprivileged !== null)('/docker/<id>: container.runtime names docker and the id, IPC_LOCK bounding vs effective as /proc says, the fix is docker\'s --ulimit; the parent\'s memory limit applies', async () => {
    const holder = await startRdmactl(['reg', '1M', '--backend', 'uring', '--json'], [...inCgroup(dockerPath), 'prlimit', '--memlock=8388608:8388608', ...UNPRIVILEGED]);
    try {
      const pid = holder.child.pid!;
      const r = doctorIn(base, [], [String(pid), '--size', '1G', '--backend', 'uring']);
      expect(r.json.target.pid).toBe(pid);
      const container = findingOf(r.json, 'container.runtime');
      const capBnd = capMask(pid, 'CapBnd');
      const capEff = capMask(pid, 'CapEff');
      expect(container.evidence).toMatchObject({
        runtime: 'docker', containerId: ID, cgroup: dockerPath, containerCgroup: dockerPath, softBytes: 8 * MiB, hardBytes: 8 * MiB,
        capBnd: `0x${capBnd.toString(16).padStart(16, '0')}`, capEff: `0x${capEff.toString(16).padStart(16, '0')}`,
        capIpcLockBounding: ((capBnd >> 14n) & 1n) === 1n, capIpcLockEffective: ((capEff >> 14n) & 1n) === 1n,
      });

      // setpriv --inh-caps=-all keeps the bounding set: IPC_LOCK is there, not effective for uid 65534.
      expect(container.evidence['capIpcLockBounding']).toBe(true);
      expect(container).toMatchObject({ status: 'warn', summary: expect.stringContaining(`docker container ${ID.slice(0, 12)} got RLIMIT_MEMLOCK 8 MiB soft / 8 MiB hard and CAP_IPC_LOCK is in its bounding set but not effective`) });
      const dockerFix = `container ${ID.slice(0, 12)} (docker): recreate it with docker run --ulimit memlock=-1:-1`;
      expect(container.fix[0]).toContain(dockerFix);
      expect(findingOf(r.json, 'memlock.limit').fix[0]).toContain(dockerFix);
      expect(findingOf(r.json, 'memlock.unit').evidence).toMatchObject({ unit: null });

      // 1 GiB does not fit the 384 MiB of the container's parent cgroup: io_uring faults the pages in
      // (memory cgroup) before it accounts the pin, so that is the cause, not RLIMIT_MEMLOCK.
      const memory = findingOf(r.json, 'cgroup.memory');
      const usage = fileNumber(dockerParent, 'memory.usage_in_bytes');
      expect(memory).toMatchObject({ status: 'fail', evidence: { cgroup: dockerPath, limitCgroup: dockerParent, limitBytes: fileNumber(dockerParent, 'memory.limit_in_bytes'), requestBytes: 1024 * MiB } });
      expect(memory.evidence['limitBytes']).toBe(384 * MiB);
      expect(Math.abs((memory.evidence['usageBytes'] as number) - usage)).toBeLessThan(4 * MiB);
      expect(memory.summary).toContain(`(an ancestor of ${dockerPath})`);
      expect(memory.fix[0]).toMatch(new RegExp(`^raise the limit: echo \\d+ > ${dir(dockerParent)}/memory.limit_in_bytes`));
      expect(r.json.prediction).toMatchObject({ outcome: 'refused', cause: 'cgroup.memory' });
    } finally {
      holder.child.kill('SIGTERM');
      await exited(holder.child);
    }
  }, 60_000);

  it.skipIf(noUnprivileged !== null)('root without IPC_LOCK in its bounding set, in a container path: "not in its bounding set"', async () => {
    const holder = await startRdmactl(['reg', '1M', '--backend', 'uring', '--json'], [...inCgroup(dockerPath), 'prlimit', '--memlock=8388608:8388608', 'setpriv', '--bounding-set=-ipc_lock', '--inh-caps=-ipc_lock']);
    try {
      const pid = holder.child.pid!;
      expect((capMask(pid, 'CapBnd') >> 14n) & 1n).toBe(0n);
      const r = doctorIn(base, [], [String(pid)]);
      expect(findingOf(r.json, 'container.runtime')).toMatchObject({ status: 'warn', evidence: { capIpcLockBounding: false, capIpcLockEffective: false, softBytes: 8 * MiB }, summary: expect.stringContaining('CAP_IPC_LOCK is not in its bounding set') });
    } finally {
      holder.child.kill('SIGTERM');
      await exited(holder.child);
    }
  }, 60_000);

  it('--try inside a 192 MiB memory cgroup: prediction equals the kernel\'s outcome, and the OOM killer ends the try child only', () => {
    const table: string[][] = [['backend', 'size', 'limit', 'headroom', 'predicted', 'cause', 'kernel', 'oom kills', 'match']];
    try {
      for (const [backend, size] of [['mlock', 16 * MiB], ['mlock', 512 * MiB], ['uring', 16 * MiB], ['uring', 512 * MiB]] as const) {
        const killsBefore = oomKills(limitedPath);
        const r = doctorIn(limitedPath, [], ['--size', String(size), '--backend', backend, '--try']);
        const kills = oomKills(limitedPath) - killsBefore;
        const memory = findingOf(r.json, 'cgroup.memory');
        table.push([backend, `${size / MiB} MiB`, `${(memory.evidence['limitBytes'] as number) / MiB} MiB`, `${Math.round((memory.evidence['headroomBytes'] as number) / MiB)} MiB`,
          r.json.prediction!.outcome, r.json.prediction!.cause ?? '-', r.json.try!.outcome, String(kills), r.json.prediction!.outcome === r.json.try!.outcome ? 'yes' : 'NO']);
        expect(memory.evidence).toMatchObject({ cgroup: limitedPath, limitCgroup: limitedPath, limitBytes: fileNumber(limitedPath, 'memory.limit_in_bytes') });
        expect(r.json.prediction!.outcome, `${backend} ${size}: ${r.json.prediction!.summary}; kernel: ${r.json.try!.message}`).toBe(r.json.try!.outcome);
        expect(findingOf(r.json, 'try.outcome').status).toBe('ok');
        if (size > 192 * MiB) {
          expect(memory.status).toBe('fail');
          expect(r.json.prediction!.cause).toBe('cgroup.memory');
          expect(r.json.try).toMatchObject({ outcome: 'refused', exitCode: null });
          expect(r.json.try!.message).toMatch(/^killed by SIGKILL \(the OOM killer/);
          // The kernel's own count: the group's OOM killer ran, and the doctor itself survived to report.
          expect(kills).toBeGreaterThanOrEqual(1);
          expect(r.status).toBe(1);
        } else {
          expect(memory.status).toBe('ok');
          expect(r.json.try).toMatchObject({ outcome: 'registered', [backend === 'mlock' ? 'lockedBytes' : 'pinnedBytes']: size });
          expect(kills).toBe(0);
        }
      }
    } finally {
      const widths = table[0]!.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
      console.log(['doctor --try in a memory cgroup (root, CAP_IPC_LOCK: only the cgroup limits):', ...table.map((row) => row.map((c, i) => c.padEnd(widths[i]!)).join('  '))].join('\n'));
    }
  }, 120_000);
});
