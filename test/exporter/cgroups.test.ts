// Cgroup attribution in the exporter against real v1 memory cgroups made by the test: holders are
// started inside them, the exporter is scraped, and every per-cgroup series and label is compared
// with /proc/PID/status and the cgroup files read here, independently of rdmactl's parsers.
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Scraper } from '../../src/exporter/scrape.js';
import { statusKb } from '../helpers/proc.js';
import { builtOrThrow, exited } from '../helpers/spawn.js';
import { find, httpGet, missingBinary, one, parseExposition, promtool, startExporter, type Sample } from './helpers.js';
import { idleNearLimit, memoryCgroupPlacement, removeCgroups, startInCgroup } from '../helpers/cgroup.js';

const MiB = 1024 * 1024;

const { skipReason, parentPath, dir } = memoryCgroupPlacement();
if (skipReason) console.warn(`SKIPPING exporter cgroup tests: ${skipReason}`);
const noPromtool = missingBinary('promtool', 'prometheus');
if (noPromtool) console.warn(`SKIPPED promtool check of the cgroup scrape: ${noPromtool}`);

const ID = 'feed'.padEnd(64, '0123456789abcdef');
const POD = '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0';
const base = `${parentPath}/rdmactl-exporter-test-${process.pid}.slice`;
const containerPath = `${base}/docker-${ID}.scope`;
const workerPath = `${base}/worker.service`;
// kubelet's cgroupfs layout: /kubepods/<qos>/pod<uid>/<container id>.
const podPath = `${base}/kubepods/burstable/pod${POD}`;
const podContainerPath = `${podPath}/${ID.split('').reverse().join('')}`;
const idlePath = `${base}/idle.service`;
const CREATED = [base, containerPath, workerPath, `${base}/kubepods`, `${base}/kubepods/burstable`, podPath, podContainerPath, idlePath];
const fileNumber = (path: string, file: string): number => Number(readFileSync(`${dir(path)}/${file}`, 'utf8').trim());
const unevictable = (path: string): number => Number(/^total_unevictable (\d+)$/m.exec(readFileSync(`${dir(path)}/memory.stat`, 'utf8'))![1]);

describe.skipIf(skipReason !== null)('exporter cgroup attribution on real memory cgroups', () => {
  const children: ChildProcessWithoutNullStreams[] = [];
  let pinner: ChildProcessWithoutNullStreams;
  let locker: ChildProcessWithoutNullStreams;
  let podLocker: ChildProcessWithoutNullStreams;

  beforeAll(async () => {
    builtOrThrow();
    for (const path of CREATED) if (path !== idlePath) mkdirSync(dir(path));
    writeFileSync(`${dir(base)}/memory.limit_in_bytes`, String(768 * MiB));
    writeFileSync(`${dir(containerPath)}/memory.limit_in_bytes`, String(512 * MiB));
    writeFileSync(`${dir(workerPath)}/memory.limit_in_bytes`, String(256 * MiB));
    pinner = await startInCgroup(dir(containerPath), ['reg', '4M', '--backend', 'uring', '--json']);
    children.push(pinner);
    locker = await startInCgroup(dir(workerPath), ['reg', '3M', '--backend', 'mlock', '--json']);
    children.push(locker);
    podLocker = await startInCgroup(dir(podContainerPath), ['reg', '1M', '--backend', 'mlock', '--json']);
    children.push(podLocker);
  });

  afterAll(async () => {
    for (const child of children) child.kill('SIGTERM');
    for (const child of children) await exited(child);
    // Only processes this test started can be in these groups: anything left is killed so the
    // groups can be removed; deepest first.
    await removeCgroups(CREATED.map(dir));
  });

  async function scrape(options: { maxCgroups?: number } = {}): Promise<Sample[]> {
    return parseExposition((await new Scraper({ version: 'test', maxProcesses: 100, ...options }).collectNow()).text);
  }

  it('per-cgroup series: pinned, locked, memory.max, headroom and unevictable as /proc and the cgroup files say', async () => {
    const unevictableBefore = unevictable(workerPath);
    const samples = await scrape();
    const container = { cgroup: containerPath };
    expect(one(samples, 'rdmactl_cgroup_processes', container)).toBe(1);
    expect(one(samples, 'rdmactl_cgroup_pinned_bytes', container)).toBe(statusKb(pinner.pid!, 'VmPin') * 1024);
    expect(one(samples, 'rdmactl_cgroup_pinned_bytes', container)).toBe(4 * MiB);
    const containerLocked = statusKb(pinner.pid!, 'VmLck') * 1024;
    expect(one(samples, 'rdmactl_cgroup_locked_bytes', container)).toBe(containerLocked);
    expect(one(samples, 'rdmactl_cgroup_memory_max_bytes', container)).toBe(fileNumber(containerPath, 'memory.limit_in_bytes'));
    expect(one(samples, 'rdmactl_cgroup_memory_headroom_bytes', container)).toBe(512 * MiB - 4 * MiB - containerLocked);

    const worker = { cgroup: workerPath };
    expect(one(samples, 'rdmactl_cgroup_pinned_bytes', worker)).toBe(0);
    expect(one(samples, 'rdmactl_cgroup_locked_bytes', worker)).toBe(statusKb(locker.pid!, 'VmLck') * 1024);
    expect(one(samples, 'rdmactl_cgroup_locked_bytes', worker)).toBe(3 * MiB);
    expect(one(samples, 'rdmactl_cgroup_memory_max_bytes', worker)).toBe(256 * MiB);
    expect(one(samples, 'rdmactl_cgroup_memory_headroom_bytes', worker)).toBe(256 * MiB - 3 * MiB);
    // mlocked pages are charged to the group as unevictable; exact only if it held still.
    const unevictableAfter = unevictable(workerPath);
    if (unevictableAfter === unevictableBefore) expect(one(samples, 'rdmactl_cgroup_memory_unevictable_bytes', worker)).toBe(unevictableAfter);
    else console.warn('unevictable not compared exactly: it changed during the scrape');
    expect(one(samples, 'rdmactl_cgroup_memory_unevictable_bytes', worker)).toBeGreaterThanOrEqual(3 * MiB);
    const usage = one(samples, 'rdmactl_cgroup_memory_current_bytes', worker);
    expect(usage).toBeGreaterThanOrEqual(3 * MiB);
    expect(Math.abs(usage - fileNumber(workerPath, 'memory.usage_in_bytes'))).toBeLessThan(16 * MiB);

    // No limit set on the pod's container group: unlimited is +Inf, not a 2^63 number.
    expect(one(samples, 'rdmactl_cgroup_memory_max_bytes', { cgroup: podContainerPath })).toBe(Infinity);
    expect(one(samples, 'rdmactl_cgroup_memory_headroom_bytes', { cgroup: podContainerPath })).toBe(Infinity);
    // The host has no rdma controller: no rdma series for these groups (the lab test covers them).
    expect(find(samples, 'rdmactl_cgroup_rdma_current', container)).toHaveLength(0);
    // Parent groups hold no process of their own: no series.
    expect(find(samples, 'rdmactl_cgroup_pinned_bytes', { cgroup: base })).toHaveLength(0);
  });

  it('unit, container and pod labels on the cgroup and the process series, named from the paths', async () => {
    const samples = await scrape();
    expect(find(samples, 'rdmactl_cgroup_pinned_bytes', { cgroup: containerPath })[0]!.labels).toEqual({ cgroup: containerPath, unit: `docker-${ID}.scope`, container: `docker:${ID}`, pod: '' });
    expect(find(samples, 'rdmactl_cgroup_locked_bytes', { cgroup: workerPath })[0]!.labels).toEqual({ cgroup: workerPath, unit: 'worker.service', container: '', pod: '' });
    const podContainerId = podContainerPath.split('/').pop()!;
    expect(find(samples, 'rdmactl_cgroup_locked_bytes', { cgroup: podContainerPath })[0]!.labels).toMatchObject({ container: `kubernetes:${podContainerId}`, pod: POD });

    // The process series carry the same labels, read from each holder's own /proc/PID/cgroup.
    expect(readFileSync(`/proc/${pinner.pid}/cgroup`, 'utf8')).toContain(`:${containerPath}\n`);
    expect(find(samples, 'rdmactl_process_pinned_bytes', { pid: String(pinner.pid) })[0]!.labels).toMatchObject({ unit: `docker-${ID}.scope`, container: `docker:${ID}`, pod: '' });
    expect(one(samples, 'rdmactl_process_locked_bytes', { pid: String(locker.pid), unit: 'worker.service', container: '', pod: '' })).toBe(statusKb(locker.pid!, 'VmLck') * 1024);
    expect(one(samples, 'rdmactl_process_locked_bytes', { pid: String(podLocker.pid), pod: POD, container: `kubernetes:${podContainerId}` })).toBe(statusKb(podLocker.pid!, 'VmLck') * 1024);
  });

  it('--max-cgroups bounds the per-cgroup series; the rest are summed into cgroup="other"', async () => {
    const samples = await scrape({ maxCgroups: 1 });
    const pinned = find(samples, 'rdmactl_cgroup_pinned_bytes');
    expect(pinned).toHaveLength(2);
    // The largest holder keeps its series: 4 MiB pinned in the container beats every locker here
    // unless something else on the machine pins more.
    const shown = pinned.find((s) => s.labels['cgroup'] !== 'other')!;
    const other = pinned.find((s) => s.labels['cgroup'] === 'other')!;
    expect(other.labels).toEqual({ cgroup: 'other', unit: 'other', container: 'other', pod: 'other' });
    const all = await scrape();
    const everyCgroup = find(all, 'rdmactl_cgroup_pinned_bytes');
    expect(one(samples, 'rdmactl_cgroups_folded')).toBe(everyCgroup.length - 1);
    expect(shown.value).toBe(Math.max(...everyCgroup.map((s) => s.value)));
    expect(one(samples, 'rdmactl_cgroup_locked_bytes', { cgroup: 'other' })).toBeGreaterThanOrEqual(3 * MiB + 1 * MiB);
    // Limits of different groups do not add up: the other series has none.
    expect(find(samples, 'rdmactl_cgroup_memory_max_bytes', { cgroup: 'other' })).toHaveLength(0);
  });

  it('a real exporter serves the cgroup series over HTTP and promtool accepts the scrape', async () => {
    const exporter = await startExporter(['--listen', '127.0.0.1:0']);
    try {
      const response = await httpGet(exporter.url);
      expect(response.status).toBe(200);
      const samples = parseExposition(response.body);
      expect(one(samples, 'rdmactl_cgroup_locked_bytes', { cgroup: workerPath, unit: 'worker.service' })).toBe(statusKb(locker.pid!, 'VmLck') * 1024);
      expect(one(samples, 'rdmactl_cgroup_memory_max_bytes', { cgroup: workerPath })).toBe(fileNumber(workerPath, 'memory.limit_in_bytes'));
      if (!noPromtool) {
        const check = promtool(['check', 'metrics'], response.body);
        expect(check.status, check.output).toBe(0);
      }
    } finally {
      expect((await exporter.stop()).code).toBe(0);
    }
  });

  it('a cgroup at its memory limit whose process pins and locks nothing has its series (processes 0), as its files say', async () => {
    mkdirSync(dir(idlePath));
    const { child: idle, limitBytes } = await idleNearLimit(dir(idlePath), 64 * MiB);
    children.push(idle);
    try {
      expect([statusKb(idle.pid!, 'VmPin'), statusKb(idle.pid!, 'VmLck')]).toEqual([0, 0]);
      const samples = await scrape();
      const idleGroup = { cgroup: idlePath };
      expect(find(samples, 'rdmactl_cgroup_processes', idleGroup)[0]?.labels, JSON.stringify(find(samples, 'rdmactl_cgroup_processes'))).toEqual({ cgroup: idlePath, unit: 'idle.service', container: '', pod: '' });
      expect(one(samples, 'rdmactl_cgroup_processes', idleGroup)).toBe(0);
      expect(one(samples, 'rdmactl_cgroup_pinned_bytes', idleGroup)).toBe(0);
      expect(one(samples, 'rdmactl_cgroup_locked_bytes', idleGroup)).toBe(0);
      expect(one(samples, 'rdmactl_cgroup_memory_max_bytes', idleGroup)).toBe(fileNumber(idlePath, 'memory.limit_in_bytes'));
      expect(one(samples, 'rdmactl_cgroup_memory_max_bytes', idleGroup)).toBe(limitBytes);
      expect(Math.abs(one(samples, 'rdmactl_cgroup_memory_current_bytes', idleGroup) - fileNumber(idlePath, 'memory.usage_in_bytes'))).toBeLessThan(4 * MiB);
      // The process itself pins nothing: no process series of its own.
      expect(find(samples, 'rdmactl_process_pinned_bytes', { pid: String(idle.pid) })).toHaveLength(0);
    } finally {
      idle.kill('SIGTERM');
      await exited(idle);
    }
  });
});
