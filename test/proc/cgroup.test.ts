// cgroup readers: fixture tests for every format, then the running kernel's own files.
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  cgroupAncestors,
  cgroupDirectory,
  cgroupMounts,
  joinRdma,
  parseCgroupValue,
  parseFlatKeyed,
  parseMountinfo,
  parseNestedKeyed,
  parseProcCgroup,
  readCgroupMemory,
  readCgroupMounts,
  readCgroupRdma,
  readProcCgroup,
  unescapeMountPath,
} from '../../src/proc/cgroup.js';
import { parseStatus } from '../../src/proc/status.js';

const fixture = (name: string): string => readFileSync(new URL(`../fixtures/proc/${name}`, import.meta.url), 'utf8');

describe('/proc/PID/cgroup', () => {
  it('hybrid: v1 controllers, a named hierarchy and the unified line', () => {
    const lines = parseProcCgroup(fixture('cgroup-v1-hybrid.txt'));
    expect(lines).toHaveLength(13);
    expect(lines.find((l) => l.controllers.includes('memory'))).toEqual({ hierarchyId: 11, controllers: ['memory'], path: '/system.slice/rdma-app.service' });
    expect(lines.find((l) => l.controllers.includes('cpuacct'))!.controllers).toEqual(['cpu', 'cpuacct']);
    expect(lines.find((l) => l.controllers.includes('name=systemd'))!.hierarchyId).toBe(9);
    expect(lines.find((l) => l.hierarchyId === 0)).toEqual({ hierarchyId: 0, controllers: [], path: '/system.slice/rdma-app.service' });
  });

  it('v1 only (a docker container with the cgroupfs driver)', () => {
    const lines = parseProcCgroup(fixture('cgroup-v1-docker.txt'));
    expect(lines.map((l) => l.hierarchyId)).toEqual([11, 10, 9, 1]);
    expect(lines.every((l) => l.path.startsWith('/docker/3f4e'))).toBe(true);
  });

  it('v2 only, and a path that contains a colon', () => {
    expect(parseProcCgroup(fixture('cgroup-v2.txt'))).toEqual([{ hierarchyId: 0, controllers: [], path: expect.stringMatching(/^\/kubepods\.slice\/.*\.scope$/) }]);
    expect(parseProcCgroup(fixture('cgroup-v2-colon.txt'))[0]!.path).toBe('/user.slice/odd:name.scope');
  });
});

describe('mountinfo', () => {
  it('finds every v1 controller and the v2 mount of a hybrid host', () => {
    const mounts = cgroupMounts(parseMountinfo(fixture('mountinfo-hybrid.txt')));
    expect(mounts.v1.get('memory')).toEqual({ mountPoint: '/sys/fs/cgroup/memory', root: '/' });
    expect(mounts.v1.get('name=systemd')!.mountPoint).toBe('/sys/fs/cgroup/systemd');
    expect(mounts.v1.has('rw')).toBe(false);
    expect(mounts.v2).toEqual({ mountPoint: '/sys/fs/cgroup/unified', root: '/' });
  });

  it('undoes \\040 escapes, keeps the mounted subtree, first mount wins', () => {
    expect(unescapeMountPath('a\\040b\\011c\\134d')).toBe('a b\tc\\d');
    const mounts = cgroupMounts(parseMountinfo(fixture('mountinfo-v2-escaped.txt')));
    expect(mounts.v2).toEqual({ mountPoint: '/sys/fs/cgroup unified', root: '/kubepods.slice' });
    expect(mounts.v1.size).toBe(0);
  });

  it('maps a cgroup path into the mount, or null when it lies outside the mounted subtree', () => {
    const mount = { mountPoint: '/sys/fs/cgroup unified', root: '/kubepods.slice' };
    expect(cgroupDirectory(mount, '/kubepods.slice/x.slice')).toBe('/sys/fs/cgroup unified/x.slice');
    expect(cgroupDirectory(mount, '/kubepods.slice')).toBe('/sys/fs/cgroup unified');
    expect(cgroupDirectory(mount, '/kubepods.slicex')).toBeNull();
    expect(cgroupDirectory(mount, '/system.slice')).toBeNull();
    expect(cgroupDirectory({ mountPoint: '/sys/fs/cgroup/memory', root: '/' }, '/')).toBe('/sys/fs/cgroup/memory');
    expect(cgroupDirectory({ mountPoint: '/sys/fs/cgroup/memory', root: '/' }, '/a/b')).toBe('/sys/fs/cgroup/memory/a/b');
  });

  it('walks a cgroup path up to the root', () => {
    expect(cgroupAncestors('/a.slice/b.service')).toEqual(['/a.slice/b.service', '/a.slice', '/']);
    expect(cgroupAncestors('/')).toEqual(['/']);
  });
});

describe('controller files', () => {
  it('single values: bytes, max, v1 "unlimited", and garbage is not a number', () => {
    expect(parseCgroupValue('4194304\n')).toBe(4194304);
    expect(parseCgroupValue('max\n')).toBeNull();
    expect(parseCgroupValue('9223372036854771712\n')).toBeNull();
    expect(parseCgroupValue('-1\n')).toBeUndefined();
    expect(parseCgroupValue('')).toBeUndefined();
  });

  it('memory.stat v1 and v2, with unevictable', () => {
    const v1 = parseFlatKeyed(fixture('cgroup-v1-memory.stat'));
    expect(v1.has('total_unevictable')).toBe(true);
    expect(v1.get('unevictable')).toBe(0);
    const v2 = parseFlatKeyed(fixture('cgroup-v2-memory.stat'));
    expect(v2.get('unevictable')).toBe(4194304);
    expect(v2.get('anon_thp')).toBe(67108864);
  });

  it('rdma.max / rdma.current: nested keys, max, unknown keys kept, malformed pairs skipped', () => {
    const max = parseNestedKeyed(fixture('rdma.max'));
    expect(max).toEqual([
      { device: 'mlx5_0', values: { hca_handle: 2, hca_object: 2000 } },
      { device: 'rxe0', values: { hca_handle: null, hca_object: 5 } },
      { device: 'future0', values: { hca_handle: null, hca_object: null, mr_bytes: 1048576 } },
    ]);
    const joined = joinRdma(parseNestedKeyed(fixture('rdma.current')), max);
    expect(joined.map((d) => d.device)).toEqual(['future0', 'mlx5_0', 'rxe0']);
    expect(joined.find((d) => d.device === 'rxe0')).toEqual({ device: 'rxe0', current: { hca_handle: 1, hca_object: 5 }, max: { hca_handle: null, hca_object: 5 } });
    expect(joined.find((d) => d.device === 'future0')!.current).toEqual({});
    expect(parseNestedKeyed('\n\n')).toEqual([]);
  });

  it('NSpid: the pid as each namespace sees it', () => {
    expect(parseStatus(fixture('status-in-container.txt')).nsPids).toEqual([4242, 7]);
    expect(parseStatus(fixture('status-pinner.txt')).nsPids).toEqual([4242]);
  });
});

// Independent readings of the running kernel: regexes here, not the parsers above.
const selfCgroup = readFileSync('/proc/self/cgroup', 'utf8');
const v1MemoryLine = /^\d+:(?:[^:]*,)?memory(?:,[^:]*)?:(.*)$/m.exec(selfCgroup);
const memoryMountLine = /^\S+ \S+ \S+ (\S+) (\S+) .* - cgroup \S+ \S*\bmemory\b/m.exec(readFileSync('/proc/self/mountinfo', 'utf8'));

describe('the running kernel', () => {
  it('reads /proc/self/cgroup line for line', () => {
    const lines = readProcCgroup('self')!;
    expect(lines.map((l) => `${l.hierarchyId}:${l.controllers.join(',')}:${l.path}`).join('\n')).toBe(selfCgroup.trimEnd());
    expect(readProcCgroup(2 ** 22 + 12345)).toBeNull();
  });

  it.skipIf(!v1MemoryLine || !memoryMountLine)('reads our v1 memory cgroup as its files say (skipped: no v1 memory controller here)', () => {
    const mounts = readCgroupMounts();
    const memory = mounts.v1.get('memory')!;
    expect(memory.mountPoint).toBe(memoryMountLine![2]);
    const dir = cgroupDirectory(memory, v1MemoryLine![1]!)!;
    expect(existsSync(`${dir}/cgroup.procs`)).toBe(true);
    const read = readCgroupMemory(dir, 1);
    const limitText = readFileSync(`${dir}/memory.limit_in_bytes`, 'utf8').trim();
    expect(read.limitBytes).toBe(BigInt(limitText) > BigInt(Number.MAX_SAFE_INTEGER) ? null : Number(limitText));
    const unevictable = Number(/^total_unevictable (\d+)$/m.exec(readFileSync(`${dir}/memory.stat`, 'utf8'))![1]);
    expect(read.unevictableBytes).toBe(unevictable);
    expect(read.usageBytes).toBeGreaterThan(0);
    expect(read.missing).toEqual([]);
    expect(readCgroupRdma(dir)).toBeNull();
  });

  it('a removed cgroup reads as gone (null / missing), not as zero', () => {
    const gone = readCgroupMemory('/sys/fs/cgroup/memory/rdmactl-no-such-group', 1);
    expect(gone).toMatchObject({ limitBytes: null, usageBytes: null, unevictableBytes: null, stat: null });
    expect(gone.missing).toEqual(['memory.limit_in_bytes', 'memory.usage_in_bytes', 'memory.stat']);
  });
});
