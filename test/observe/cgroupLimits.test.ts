// The cgroup rules (src/observe/cgroupLimits.ts) over real files in a directory tree that stands in for
// a cgroup mount: which hierarchy a process is charged in, the walk up the ancestors, the tightest
// limit and "near". The host kernel has no rdma controller; the lab tests the real one.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readCgroupRdma, type CgroupMembership, type CgroupMounts } from '../../src/proc/cgroup.js';
import { ProcUnreadableError } from '../../src/proc/procfs.js';
import {
  findTightestRdmaLimit,
  isNearLimit,
  memoryLimits,
  memoryMount,
  nearRdmaLimits,
  rdmaCgroupOf,
  rdmaHeadroom,
  rdmaLimits,
  tightestLimit,
} from '../../src/observe/cgroupLimits.js';

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
