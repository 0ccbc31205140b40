// A `stat --by cgroup` row as the exporter's cgroup row: the cases a host without an rdma controller
// cannot produce (rdma.max per device and resource) and the ones that must not become numbers
// (unreadable or vanished files). Real-kernel behaviour is in cgroups.test.ts and the lab tests.
import { describe, expect, it } from 'vitest';
import { cgroupRow } from '../../src/exporter/attribution.js';
import type { GroupRow } from '../../src/observe/cgroups.js';

const MiB = 1024 * 1024;

function group(overrides: Partial<GroupRow>): GroupRow {
  return {
    group: '/a.slice/b.service',
    cgroup: '/a.slice/b.service',
    hierarchy: 2,
    unit: 'b.service',
    container: null,
    runtime: null,
    podUid: null,
    qosClass: null,
    slurmJob: null,
    slurmStep: null,
    processes: 2,
    pinnedBytes: 8 * MiB,
    lockedBytes: 2 * MiB,
    uringBytes: 0,
    memoryLimitBytes: 64 * MiB,
    memoryUsageBytes: 30 * MiB,
    memoryHeadroomBytes: 54 * MiB,
    unevictableBytes: 2 * MiB,
    rdma: null,
    flags: [],
    unreadableFiles: [],
    members: [],
    ...overrides,
  };
}

describe('cgroupRow', () => {
  it('memory: limit, usage, unevictable and headroom (limit minus pinned and locked, as stat --by)', () => {
    expect(cgroupRow(group({}))).toEqual({
      cgroup: '/a.slice/b.service',
      labels: { unit: 'b.service', container: '', pod: '' },
      processes: 2,
      pinnedBytes: 8 * MiB,
      lockedBytes: 2 * MiB,
      memoryCurrentBytes: 30 * MiB,
      memoryMaxBytes: 64 * MiB,
      memoryHeadroomBytes: 54 * MiB,
      memoryUnevictableBytes: 2 * MiB,
      rdma: [],
    });
    const unlimited = cgroupRow(group({ memoryLimitBytes: null, memoryHeadroomBytes: null }))!;
    expect(unlimited.memoryMaxBytes).toBe(Infinity);
    expect(unlimited.memoryHeadroomBytes).toBe(Infinity);
  });

  it('rdma: one row per device and resource; a resource rdma.max leaves out is unlimited', () => {
    const row = cgroupRow(group({
      rdma: [
        { device: 'rxe0', current: { hca_handle: 1, hca_object: 5 }, max: { hca_handle: null, hca_object: 5 }, objectsHeadroom: 0, handlesHeadroom: null },
        { device: 'mlx5_0', current: { hca_handle: 0, hca_object: 0 }, max: {}, objectsHeadroom: null, handlesHeadroom: null },
      ],
    }))!;
    expect(row.rdma).toEqual([
      { device: 'rxe0', resource: 'hca_handle', current: 1, max: null },
      { device: 'rxe0', resource: 'hca_object', current: 5, max: 5 },
      { device: 'mlx5_0', resource: 'hca_handle', current: 0, max: null },
      { device: 'mlx5_0', resource: 'hca_object', current: 0, max: null },
    ]);
  });

  it('container and pod labels: runtime:id as ls -o container prints it, the pod uid', () => {
    const id = 'ab'.repeat(32);
    const row = cgroupRow(group({ container: id, runtime: 'containerd', podUid: '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0' }))!;
    expect(row.labels).toEqual({ unit: 'b.service', container: `containerd:${id}`, pod: '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0' });
  });

  it('an unreadable limit is unknown (no series), not unlimited; a vanished group exports only what it held', () => {
    const refused = cgroupRow(group({ memoryLimitBytes: null, memoryHeadroomBytes: null, unreadableFiles: ['memory.max'], flags: ['unreadable'] }))!;
    expect(refused.memoryMaxBytes).toBeNull();
    expect(refused.memoryHeadroomBytes).toBeNull();
    expect(refused.memoryCurrentBytes).toBe(30 * MiB);
    const gone = cgroupRow(group({ memoryLimitBytes: null, memoryUsageBytes: null, unevictableBytes: null, flags: ['gone'] }))!;
    expect(gone).toMatchObject({ pinnedBytes: 8 * MiB, memoryMaxBytes: null, memoryCurrentBytes: null, memoryHeadroomBytes: null, rdma: [] });
    // A process whose /proc/PID/cgroup was refused has no cgroup to export.
    expect(cgroupRow(group({ cgroup: null, group: '?' }))).toBeNull();
  });
});
