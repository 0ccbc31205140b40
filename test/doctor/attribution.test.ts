// The pure parts of doctor's cgroup checks: systemctl's LimitMEMLOCK output and each runtime's fix.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cgroupRdma, containerMemlockFix, parseSystemdLimits } from '../../src/doctor/attribution.js';
import type { ProcessAttribution } from '../../src/doctor/types.js';
import type { DoctorContext } from '../../src/doctor/types.js';

describe('doctor attribution helpers', () => {
  it('systemctl show -p LimitMEMLOCK -p LimitMEMLOCKSoft: bytes, infinity → null, absent or odd → undefined', () => {
    expect(parseSystemdLimits('LimitMEMLOCK=8388608\nLimitMEMLOCKSoft=65536\n')).toEqual({ hardBytes: 8388608, softBytes: 65536 });
    expect(parseSystemdLimits('LimitMEMLOCK=infinity\nLimitMEMLOCKSoft=infinity\n')).toEqual({ hardBytes: null, softBytes: null });
    expect(parseSystemdLimits('LimitMEMLOCK=\n')).toEqual({ hardBytes: undefined, softBytes: undefined });
    expect(parseSystemdLimits('LimitMEMLOCK=lots\nLimitMEMLOCKSoft=8388608')).toEqual({ hardBytes: undefined, softBytes: 8388608 });
  });

  it('each runtime gets its own fix, naming the container', () => {
    const id = 'ab'.repeat(32);
    expect(containerMemlockFix('docker', id)).toMatch(/^container abababababab \(docker\): recreate it with docker run --ulimit memlock=-1:-1/);
    expect(containerMemlockFix('podman', id)).toContain('podman run --ulimit memlock=-1:-1');
    expect(containerMemlockFix('cri-o', id)).toContain('default_ulimits = ["memlock=-1:-1"]');
    for (const runtime of ['containerd', 'kubernetes'] as const) {
      expect(containerMemlockFix(runtime, id)).toContain('/etc/systemd/system/containerd.service.d/memlock.conf');
      expect(containerMemlockFix(runtime, id)).toContain('LimitMEMLOCK=infinity');
    }
  });
});

describe('cgroup.rdma over a directory that stands in for the unified mount', () => {
  it('warns for objects nearly used up in an ancestor even when the group\'s handles have less room (each key has its own tightest limit)', () => {
    const root = mkdtempSync(join(tmpdir(), 'rdmactl-doctor-rdma-'));
    try {
      mkdirSync(join(root, 'a/b'), { recursive: true });
      writeFileSync(join(root, 'cgroup.controllers'), 'memory rdma\n');
      writeFileSync(join(root, 'a/rdma.max'), 'rxe0 hca_handle=max hca_object=1000\n');
      writeFileSync(join(root, 'a/rdma.current'), 'rxe0 hca_handle=1 hca_object=960\n');
      writeFileSync(join(root, 'a/b/rdma.max'), 'rxe0 hca_handle=2 hca_object=max\n');
      writeFileSync(join(root, 'a/b/rdma.current'), 'rxe0 hca_handle=0 hca_object=960\n');
      const attribution: ProcessAttribution = {
        cgroupPath: '/a/b', version: 2, systemdUnit: null, container: null,
        memberships: [{ hierarchyId: 0, controllers: [], path: '/a/b' }],
        mounts: { v1: new Map(), v2: { mountPoint: root, root: '/' } },
      };
      const ctx = { attribution, request: { backend: 'mlock', sizeBytes: null }, target: { self: false } } as unknown as DoctorContext;
      const finding = cgroupRdma(ctx, null);
      expect(finding).toMatchObject({
        status: 'warn',
        summary: 'rxe0 hca_object 960/1000 in rdma cgroup /a: within 10 % of the limit',
        evidence: { cgroup: '/a/b', limitCgroup: '/a', key: 'hca_object', headroom: 40, file: `${join(root, 'a')}/rdma.max` },
      });
      expect((finding.evidence['limits'] as unknown[]).length).toBe(2);
      writeFileSync(join(root, 'a/rdma.current'), 'rxe0 hca_handle=1 hca_object=10\n');
      expect(cgroupRdma(ctx, null)).toMatchObject({ status: 'ok', summary: 'rxe0 hca_handle 0/2 in rdma cgroup /a/b (the tightest of 2 limits)' });
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
