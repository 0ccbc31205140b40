// Why an RDMA device did not open, as doctor's verbs.devices says it: the device node's own errno
// (libibverbs reports its /dev/char fallback's ENOENT when open(2) of the node fails with EACCES),
// and the cause — the node's permissions, or an rdma cgroup with no hca_handle left. This host has no
// RDMA device, so the inputs are fixtures; test/lab/verbs-devices.test.ts and test/lab/clients.test.ts
// check real unopenable devices in the Soft-RoCE VM.
import { describe, expect, it } from 'vitest';
import { explainOpenFailure, explainTargetAccess, modeAllowsReadWrite } from '../../src/doctor/verbs.js';
import { classifyOpenFailure } from '../../src/engine/verbs/objects.js';
import type { RdmaLimit } from '../../src/proc/cgroupLimits.js';

const FILE = '/dev/infiniband/uverbs0';
const NOBODY = { uid: 65534, gid: 65534, groups: [] };
const HANDLES_USED_UP: RdmaLimit = { path: '/lab', directory: '/sys/fs/cgroup/lab', device: 'rxe0', key: 'hca_handle', max: 0, current: 0 };

describe('classifyOpenFailure', () => {
  it('the node\'s own errno wins over the one libibverbs left', () => {
    expect(classifyOpenFailure('ENOENT', FILE, 'EACCES')).toEqual({ errno: 'EACCES', file: FILE, stage: 'node' });
  });
  it('a node that opens: the context was refused, with the library\'s errno', () => {
    expect(classifyOpenFailure('EAGAIN', FILE, null)).toEqual({ errno: 'EAGAIN', file: FILE, stage: 'context' });
  });
});

describe('explainOpenFailure', () => {
  it('EACCES on a 0600 root node: permissions, with mode, owner and who we are', () => {
    const e = explainOpenFailure({ device: 'rxe0', errno: 'EACCES', file: FILE, stage: 'node' }, { mode: 0o20600, uid: 0, gid: 0 }, NOBODY, []);
    expect(e.cause).toBe('permissions');
    expect(e.summary).toBe(`rxe0: cannot open ${FILE}: EACCES (mode 0600, owner uid 0 gid 0; this process: uid 65534, gids 65534): the device node's permissions refuse this user`);
    expect(e.fix).toEqual([`chmod 0666 ${FILE} (a udev rule keeps it across reboots: KERNEL=="uverbs*", MODE="0666")`]);
  });
  it('a node of group rdma: joining the group is the first fix', () => {
    const e = explainOpenFailure({ device: 'mlx5_0', errno: 'EACCES', file: FILE, stage: 'node' }, { mode: 0o20660, uid: 0, gid: 108 }, NOBODY, []);
    expect(e.fix[0]).toMatch(/^add the user to group 108, or chmod 0666/);
  });
  it('a refused context with hca_handle used up in the rdma cgroup: the cgroup, and how to raise it', () => {
    const e = explainOpenFailure({ device: 'rxe0', errno: 'EAGAIN', file: FILE, stage: 'context' }, { mode: 0o20666, uid: 0, gid: 0 }, { uid: 0, gid: 0, groups: [] }, [HANDLES_USED_UP]);
    expect(e).toEqual({
      cause: 'cgroup',
      summary: 'rxe0: ibv_open_device: EAGAIN: the rdma cgroup /lab allows 0 hca_handle (device context) on rxe0, 0 in use (rdma.max)',
      fix: ["echo 'rxe0 hca_handle=max' > /sys/fs/cgroup/lab/rdma.max (or a higher count)"],
    });
  });
  it('an hca_handle limit of another device, or one with room, is not the cause', () => {
    const failure = { device: 'rxe0', errno: 'EIO', file: FILE, stage: 'context' } as const;
    expect(explainOpenFailure(failure, null, NOBODY, [{ ...HANDLES_USED_UP, device: 'rxe1' }]).cause).toBe('driver');
    expect(explainOpenFailure(failure, null, NOBODY, [{ ...HANDLES_USED_UP, max: 2, current: 1 }]).cause).toBe('driver');
  });
  it('a missing node', () => {
    expect(explainOpenFailure({ device: 'rxe0', errno: 'ENOENT', file: FILE, stage: 'node' }, null, NOBODY, []).cause).toBe('missing-node');
  });
});

describe('modeAllowsReadWrite: open(2) O_RDWR against the node\'s mode', () => {
  it('owner bits for the owner, group bits for a member (primary or supplementary), other bits for the rest', () => {
    const node = { mode: 0o20660, uid: 0, gid: 108 };
    expect(modeAllowsReadWrite(node, { uid: 0, gid: 0, groups: [] })).toBe(true);
    expect(modeAllowsReadWrite(node, { uid: 1000, gid: 108, groups: [] })).toBe(true);
    expect(modeAllowsReadWrite(node, { uid: 1000, gid: 1000, groups: [27, 108] })).toBe(true);
    expect(modeAllowsReadWrite(node, NOBODY)).toBe(false);
    expect(modeAllowsReadWrite({ mode: 0o20666, uid: 0, gid: 0 }, NOBODY)).toBe(true);
    // The owner's own bits decide for the owner, even when others may.
    expect(modeAllowsReadWrite({ mode: 0o20066, uid: 1000, gid: 0 }, { uid: 1000, gid: 1000, groups: [] })).toBe(false);
    expect(modeAllowsReadWrite({ mode: 0o20644, uid: 0, gid: 0 }, NOBODY)).toBe(false);
  });
});

describe('explainTargetAccess: doctor PID, for a device rdmactl opened itself', () => {
  const open = { mode: 0o20666, uid: 0, gid: 0 };
  const rootOnly = { mode: 0o20600, uid: 0, gid: 0 };
  const nobody = { ...NOBODY, dacOverride: false };
  const NOT_HELD = (): boolean => false;
  it('nothing stops it: null', () => {
    expect(explainTargetAccess('rxe0', FILE, 42, open, nobody, [], NOT_HELD)).toBeNull();
    // The process's fds are read only when something would stop it.
    expect(explainTargetAccess('rxe0', FILE, 42, open, nobody, [], () => { throw new Error('holdsNode asked'); })).toBeNull();
  });
  it('a node its user may not open: permissions, naming the pid and its credentials', () => {
    expect(explainTargetAccess('rxe0', FILE, 42, rootOnly, nobody, [], NOT_HELD)).toEqual({
      cause: 'permissions',
      summary: `rxe0: pid 42 cannot open ${FILE} (mode 0600, owner uid 0 gid 0; pid 42: uid 65534, gids 65534): the device node's permissions refuse its user`,
      fix: [`chmod 0666 ${FILE} (a udev rule keeps it across reboots: KERNEL=="uverbs*", MODE="0666")`],
    });
  });
  it('CAP_DAC_OVERRIDE opens any node', () => {
    expect(explainTargetAccess('rxe0', FILE, 42, rootOnly, { ...NOBODY, dacOverride: true }, [], NOT_HELD)).toBeNull();
  });
  it('no hca_handle left in its rdma cgroup: the cgroup and how to raise it', () => {
    expect(explainTargetAccess('rxe0', FILE, 42, open, nobody, [HANDLES_USED_UP], NOT_HELD)).toEqual({
      cause: 'cgroup',
      summary: 'rxe0: pid 42 cannot open a device context: the rdma cgroup /lab allows 0 hca_handle (device context) on rxe0, 0 in use (rdma.max)',
      fix: ["echo 'rxe0 hca_handle=max' > /sys/fs/cgroup/lab/rdma.max (or a higher count)"],
    });
    // A limit on another device, or one with room, stops nothing.
    expect(explainTargetAccess('rxe0', FILE, 42, open, nobody, [{ ...HANDLES_USED_UP, device: 'mlx5_0' }, { ...HANDLES_USED_UP, max: 2, current: 1 }], NOT_HELD)).toBeNull();
  });
  it('a process that holds the node open has its context: nothing to explain', () => {
    expect(explainTargetAccess('rxe0', FILE, 42, rootOnly, nobody, [HANDLES_USED_UP], () => true)).toBeNull();
  });
});
