// The cgroup rules (src/proc/cgroupLimits.ts) over real files in a directory tree that stands in for
// a cgroup mount: which hierarchy a process is charged in, the walk up the ancestors, the tightest
// limit and "near", and stat --by's grouping on them with the cgroups the scan read. The host kernel
// has no rdma controller; the lab tests the real one.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { listCgroupPaths, readCgroupMemory, readCgroupRdma, readProcCgroup, type CgroupMembership, type CgroupMounts } from '../../src/proc/cgroup.js';
import { scanProcesses } from '../../src/proc/scan.js';
import { register } from '../../src/engine/register.js';
import { groupProcesses } from '../../src/observe/cgroups.js';
import { ProcUnreadableError } from '../../src/proc/procfs.js';
import {
  cgroupNotices,
  findTightestRdmaLimit,
  isNearLimit,
  memoryLimits,
  memoryMount,
  nearRdmaLimits,
  rdmaCgroupOf,
  rdmaHeadroom,
  rdmaLimits,
  tightestLimit,
} from '../../src/proc/cgroupLimits.js';

const MiB = 1024 * 1024;
let root: string;
beforeEach(() => { root = mkdtempSync(join(tmpdir(), 'rdmactl-cglimits-')); });
afterEach(() => rmSync(root, { recursive: true, force: true }));

/** Writes `files` into the cgroup directory of `path` under the fake mount. */
function group(path: string, files: Record<string, string>): void {
  const directory = join(root, path);
  mkdirSync(directory, { recursive: true });
  for (const [name, text] of Object.entries(files)) writeFileSync(join(directory, name), text);
}

const v2 = (): CgroupMounts => ({ v1: new Map(), v2: { mountPoint: root, root: '/' } });
const unified = (path: string): CgroupMembership[] => [{ hierarchyId: 0, controllers: [], path }];

describe('where a process is charged', () => {
  it('memory and rdma on the unified hierarchy only where its root offers them; a v1 hierarchy wins', () => {
    expect(memoryMount(v2(), 2)).toBeNull();
    expect(rdmaCgroupOf(unified('/a'), v2())).toBeNull();
    group('/', { 'cgroup.controllers': 'cpu memory rdma\n' });
    expect(memoryMount(v2(), 2)).toEqual({ mountPoint: root, root: '/' });
    expect(rdmaCgroupOf(unified('/a'), v2())).toEqual({ mount: { mountPoint: root, root: '/' }, path: '/a' });
    const hybrid: CgroupMounts = { v1: new Map([['rdma', { mountPoint: '/sys/fs/cgroup/rdma', root: '/' }]]), v2: { mountPoint: root, root: '/' } };
    const lines: CgroupMembership[] = [{ hierarchyId: 5, controllers: ['rdma'], path: '/v1path' }, ...unified('/a')];
    expect(rdmaCgroupOf(lines, hybrid)).toEqual({ mount: { mountPoint: '/sys/fs/cgroup/rdma', root: '/' }, path: '/v1path' });
  });
});

describe('the walk up the ancestors', () => {
  it('memory: every limited level, use less the page cache it can drop; the least room is the tightest', () => {
    group('/', { 'memory.stat': 'active_file 0\ninactive_file 0\nunevictable 0\n' });
    group('/a.slice', { 'memory.max': `${100 * MiB}\n`, 'memory.current': `${90 * MiB}\n`, 'memory.stat': `active_file ${8 * MiB}\ninactive_file ${2 * MiB}\nunevictable 0\n` });
    group('/a.slice/b.service', { 'memory.max': 'max\n', 'memory.current': `${50 * MiB}\n`, 'memory.stat': 'active_file 0\ninactive_file 0\nunevictable 0\n' });
    const mount = { mountPoint: root, root: '/' };
    const walk = memoryLimits(mount, '/a.slice/b.service', 2);
    expect(walk.refused).toBeNull();
    expect(walk.limits).toEqual([{
      path: '/a.slice', directory: join(root, '/a.slice'), limitBytes: 100 * MiB, usageBytes: 90 * MiB, reclaimableBytes: 10 * MiB,
      unevictableBytes: 0, usedBytes: 80 * MiB, headroomBytes: 20 * MiB,
    }]);
    // 80 of 100 MiB cannot be dropped: not near; 90 would be.
    expect(isNearLimit(walk.limits[0]!.usedBytes, walk.limits[0]!.limitBytes)).toBe(false);
    expect(isNearLimit(90 * MiB, 100 * MiB)).toBe(true);
    group('/a.slice/b.service', { 'memory.max': `${60 * MiB}\n` });
    const tight = tightestLimit(memoryLimits(mount, '/a.slice/b.service', 2).limits, (l) => l.headroomBytes)!;
    expect(tight).toMatchObject({ path: '/a.slice/b.service', headroomBytes: 10 * MiB });
  });

  it('rdma: every finite key of every level; a refused level is named, the walk goes on', () => {
    group('/a', { 'rdma.max': 'rxe0 hca_handle=max hca_object=1000\n', 'rdma.current': 'rxe0 hca_handle=1 hca_object=960\n' });
    group('/a/b', { 'rdma.max': 'rxe0 hca_handle=2 hca_object=max\n', 'rdma.current': 'rxe0 hca_handle=0 hca_object=960\n' });
    const mount = { mountPoint: root, root: '/' };
    const walk = rdmaLimits(mount, '/a/b');
    expect(walk).toEqual({
      refused: null,
      limits: [
        { path: '/a/b', directory: join(root, '/a/b'), device: 'rxe0', key: 'hca_handle', max: 2, current: 0 },
        { path: '/a', directory: join(root, '/a'), device: 'rxe0', key: 'hca_object', max: 1000, current: 960 },
      ],
    });
    // The handles have the least room (2), yet the objects are 96 % used: each resource has its own tightest limit.
    expect(tightestLimit(walk.limits, rdmaHeadroom)).toMatchObject({ key: 'hca_handle' });
    expect(nearRdmaLimits(walk.limits)).toEqual([walk.limits[1]]);
    const refusing = rdmaLimits(mount, '/a/b', (directory) => {
      if (directory.endsWith('/a/b')) throw new ProcUnreadableError(`${directory}/rdma.max`, 'EACCES');
      return readCgroupRdma(directory);
    });
    expect(refusing).toEqual({ refused: `${join(root, '/a/b')}/rdma.max`, limits: [walk.limits[1]] });
  });
});

// The error explanation's search, over real files in a directory that stands in for the v2 mount.
const selfCgroup = readFileSync('/proc/self/cgroup', 'utf8');
const unifiedPath = /^0::(.*)$/m.exec(selfCgroup)?.[1];
const hasV1Rdma = /^\d+:(?:[^:]*,)?rdma(?:,[^:]*)?:/m.test(selfCgroup);
describe.skipIf(unifiedPath === undefined || hasV1Rdma)('findTightestRdmaLimit (skipped without a v2 line in /proc/self/cgroup, or with a v1 rdma hierarchy)', () => {
  it('finds the finite rdma.max key with the least room on the process\'s cgroup path', () => {
    const mounts = { v1: new Map(), v2: { mountPoint: root, root: unifiedPath! } };
    writeFileSync(join(root, 'cgroup.controllers'), 'memory rdma\n');
    expect(findTightestRdmaLimit('self', mounts)).toBeNull();
    writeFileSync(join(root, 'rdma.current'), 'mlx5_0 hca_handle=1 hca_object=10\nrxe0 hca_handle=1 hca_object=2\n');
    writeFileSync(join(root, 'rdma.max'), 'mlx5_0 hca_handle=max hca_object=100\nrxe0 hca_handle=max hca_object=3\n');
    expect(findTightestRdmaLimit('self', mounts)).toEqual({ path: unifiedPath, directory: root, device: 'rxe0', key: 'hca_object', max: 3, current: 2 });
    writeFileSync(join(root, 'rdma.max'), 'rxe0 hca_handle=max hca_object=max\n');
    expect(findTightestRdmaLimit('self', mounts)).toBeNull();
  });
});

describe('stat --by grouping with what the scan read', () => {
  it('takes each holder\'s cgroups from the scan (no second read), and flags the group by the tightest limits on its path and ancestors', () => {
    // A hybrid host: grouped by the v1 memory cgroup; rdma on the unified hierarchy, which offers it.
    const memoryRoot = join(root, 'memory');
    const unifiedRoot = join(root, 'unified');
    const at = (mount: string, path: string, files: Record<string, string>): void => {
      mkdirSync(join(mount, path), { recursive: true });
      for (const [name, text] of Object.entries(files)) writeFileSync(join(mount, path, name), text);
    };
    at(memoryRoot, '/a', { 'memory.limit_in_bytes': `${100 * MiB}\n`, 'memory.usage_in_bytes': `${95 * MiB}\n`, 'memory.stat': 'total_active_file 0\ntotal_inactive_file 0\ntotal_unevictable 0\n' });
    at(memoryRoot, '/a/b', { 'memory.limit_in_bytes': '9223372036854771712\n', 'memory.usage_in_bytes': `${10 * MiB}\n`, 'memory.stat': `total_active_file 0\ntotal_inactive_file 0\ntotal_unevictable ${MiB}\n` });
    at(unifiedRoot, '/', { 'cgroup.controllers': 'rdma\n' });
    at(unifiedRoot, '/a', { 'rdma.max': 'rxe0 hca_handle=max hca_object=10\n', 'rdma.current': 'rxe0 hca_handle=1 hca_object=9\n' });
    const mounts: CgroupMounts = { v1: new Map([['memory', { mountPoint: memoryRoot, root: '/' }]]), v2: { mountPoint: unifiedRoot, root: '/' } };
    // No such process: had the grouping read /proc/PID/cgroup again, it would have dropped it as exited.
    const pid = 2 ** 22 + 4321;
    const cgroup: CgroupMembership[] = [{ hierarchyId: 4, controllers: ['memory'], path: '/a/b' }, { hierarchyId: 0, controllers: [], path: '/a/b' }];
    const row = { pid, uid: 0, user: 'root', comm: 'app', pinnedBytes: MiB, lockedBytes: 0, memlockLimitBytes: null, headroomBytes: null, uringBytes: 0, dontforkBytes: 0, doubleCountedBytes: 0, flags: [] };
    const [group] = groupProcesses([row], 'cgroup', { mounts, scanned: (p) => (p === pid ? { nsPids: [pid, 7], cgroup } : undefined) });
    expect(group).toMatchObject({
      cgroup: '/a/b', hierarchy: 1, processes: 1, members: [{ pid, nsPid: 7, comm: 'app' }],
      // The group's own files: no limit of its own, no rdma files of its own.
      memoryLimitBytes: null, memoryUsageBytes: 10 * MiB, unevictableBytes: MiB, rdma: null,
      // The parent's limits cap it: 95 of 100 MiB, 9 of 10 objects.
      flags: ['near-memory-limit', 'near-rdma-limit'],
    });
    expect(groupProcesses([row], 'cgroup', { mounts, scanned: () => ({ nsPids: [pid], cgroup: 'unreadable' }) })[0]).toMatchObject({ group: '?', cgroup: null, unreadableFiles: ['cgroup'] });
  });
});

describe('the scan reads /proc/PID/cgroup in its pass', () => {
  it('for a process that locks, when asked; not otherwise', async () => {
    using locked = await register({ length: MiB, backend: 'mlock' });
    expect(locked.buffers).toHaveLength(1);
    const [withCgroup] = scanProcesses({ pids: [process.pid], cgroup: true }).processes;
    expect(withCgroup!.lockedBytes).toBeGreaterThanOrEqual(MiB);
    expect(withCgroup!.cgroup).toEqual(readProcCgroup('self'));
    expect(scanProcesses({ pids: [process.pid] }).processes[0]!.cgroup).toBeUndefined();
  });
});

describe('groups of note: shown though no process of theirs pins or locks', () => {
  // A v2 host with memory and rdma: an on-demand-paging pair at rdma.max (VmPin 0), a group at its
  // memory limit, a unit whose sub-cgroup is, and groups that are none of these.
  beforeEach(() => {
    group('/', { 'cgroup.controllers': 'cpu memory rdma\n', 'memory.stat': 'active_file 0\ninactive_file 0\nunevictable 0\n' });
    group('/odp.scope', { 'rdma.current': 'rxe0 hca_handle=2 hca_object=8\n', 'rdma.max': 'rxe0 hca_handle=max hca_object=8\n', 'memory.max': 'max\n', 'memory.current': `${MiB}\n` });
    group('/full.slice', { 'memory.max': `${100 * MiB}\n`, 'memory.current': `${95 * MiB}\n`, 'memory.stat': 'active_file 0\ninactive_file 0\nunevictable 0\n' });
    group('/cached.slice', { 'memory.max': `${100 * MiB}\n`, 'memory.current': `${95 * MiB}\n`, 'memory.stat': `active_file ${20 * MiB}\ninactive_file 0\nunevictable 0\n` });
    group('/quiet.service', { 'memory.max': 'max\n', 'memory.current': `${10 * MiB}\n`, 'rdma.current': 'rxe0 hca_handle=0 hca_object=0\n', 'rdma.max': 'rxe0 hca_handle=max hca_object=max\n' });
    group('/app.service', { 'memory.max': 'max\n', 'memory.current': `${10 * MiB}\n` });
    group('/app.service/worker', { 'memory.max': `${10 * MiB}\n`, 'memory.current': `${10 * MiB}\n`, 'memory.stat': 'active_file 0\ninactive_file 0\nunevictable 0\n' });
  });

  it('the walk lists every cgroup, parents before children, as /proc/PID/cgroup prints the paths', () => {
    const paths = listCgroupPaths({ mountPoint: root, root: '/' });
    expect([...paths].sort()).toEqual(['/', '/app.service', '/app.service/worker', '/cached.slice', '/full.slice', '/odp.scope', '/quiet.service']);
    expect(paths.indexOf('/app.service')).toBeLessThan(paths.indexOf('/app.service/worker'));
    expect(paths[0]).toBe('/');
    // A mount that shows a subtree (a cgroup namespace): the paths keep its root in front.
    expect(listCgroupPaths({ mountPoint: join(root, 'app.service'), root: '/app.service' })).toEqual(['/app.service', '/app.service/worker']);
    expect(listCgroupPaths({ mountPoint: root, root: '/' }, 2)).toHaveLength(2);
  });

  it('cgroupNotices: rdma objects in use, or its own memory or rdma limit near; page cache it can drop does not count', () => {
    const memory = (path: string) => readCgroupMemory(join(root, path), 2);
    const rdma = (path: string) => readCgroupRdma(join(root, path));
    expect(cgroupNotices(memory('/odp.scope'), rdma('/odp.scope'))).toEqual(['rdma-in-use', 'near-rdma-limit']);
    expect(cgroupNotices(memory('/full.slice'), null)).toEqual(['near-memory-limit']);
    expect(cgroupNotices(memory('/cached.slice'), null)).toEqual([]);
    expect(cgroupNotices(memory('/quiet.service'), rdma('/quiet.service'))).toEqual([]);
  });

  it('--by cgroup: each such group is a row of its own, numbers from its files, processes 0; the rest are not shown', () => {
    expect(groupProcesses([], 'cgroup', { mounts: v2() })).toEqual([]);
    const groups = groupProcesses([], 'cgroup', { mounts: v2(), groupsOfNote: true });
    expect(groups.map((g) => g.cgroup).sort()).toEqual(['/app.service/worker', '/full.slice', '/odp.scope']);
    expect(groups.find((g) => g.cgroup === '/odp.scope')).toMatchObject({
      group: '/odp.scope', hierarchy: 2, unit: 'odp.scope', processes: 0, pinnedBytes: 0, lockedBytes: 0, members: [],
      rdma: [{ device: 'rxe0', current: { hca_handle: 2, hca_object: 8 }, max: { hca_handle: null, hca_object: 8 }, objectsHeadroom: 0, handlesHeadroom: null }],
      flags: ['near-rdma-limit'],
    });
    expect(groups.find((g) => g.cgroup === '/full.slice')).toMatchObject({
      processes: 0, memoryLimitBytes: 100 * MiB, memoryUsageBytes: 95 * MiB, memoryHeadroomBytes: 100 * MiB, flags: ['near-memory-limit'],
    });
  });

  it('--by unit: a sub-cgroup near its limit shows as its unit, flagged; a group that also has a holder is one row', () => {
    const byUnit = groupProcesses([], 'unit', { mounts: v2(), groupsOfNote: true });
    expect(byUnit.find((g) => g.group === 'app.service')).toMatchObject({ cgroup: '/app.service', memoryLimitBytes: null, flags: ['near-memory-limit'] });
    expect(byUnit.some((g) => g.cgroup === '/app.service/worker')).toBe(false);

    const pid = 2 ** 22 + 4322;
    const row = { pid, uid: 0, user: 'root', comm: 'app', pinnedBytes: MiB, lockedBytes: 0, memlockLimitBytes: null, headroomBytes: null, uringBytes: 0, dontforkBytes: 0, doubleCountedBytes: 0, flags: [] };
    const withHolder = groupProcesses([row], 'cgroup', { mounts: v2(), groupsOfNote: true, scanned: () => ({ nsPids: [pid], cgroup: unified('/full.slice') }) });
    expect(withHolder.filter((g) => g.cgroup === '/full.slice')).toEqual([expect.objectContaining({ processes: 1, pinnedBytes: MiB, flags: ['near-memory-limit'] })]);
    expect(withHolder[0]!.cgroup).toBe('/full.slice'); // the holder sorts first
  });
});
