// Parsers for iproute2's rdma tool output, on the shapes real versions print.
import { describe, expect, it } from 'vitest';
import { parseCopyOnFork, parseKernelMrs, parsePlainPairs } from '../../src/rdma/iproute.js';

describe('rdma sys show', () => {
  it('reads the JSON form', () => {
    expect(parseCopyOnFork({ netns: 'shared', 'privileged-qkey': 'off', 'copy-on-fork': true })).toBe(true);
    expect(parseCopyOnFork([{ 'copy-on-fork': 'off' }])).toBe(false);
  });

  it('reads the plain form iproute2 6.1 prints even with -j', () => {
    const pairs = parsePlainPairs('netns shared copy-on-fork on\n');
    expect(pairs).toEqual({ netns: 'shared', 'copy-on-fork': 'on' });
    expect(parseCopyOnFork(pairs)).toBe(true);
  });

  it('is null when the kernel does not report it', () => {
    expect(parseCopyOnFork({ netns: 'shared' })).toBeNull();
    expect(parseCopyOnFork(null)).toBeNull();
  });
});

describe('rdma res show mr', () => {
  it('maps each MR, keys as the kernel prints them (hex without 0x, only with CAP_NET_ADMIN)', () => {
    const mrs = parseKernelMrs([
      { ifname: 'rxe0', mrn: 0, rkey: '2aa', lkey: '2aa', mrlen: 67108864, pdn: 1, pid: 143, comm: 'node' },
      { ifname: 'rxe0', mrn: 1, mrlen: 4096, pdn: 2, pid: 150, comm: 'rdmactl' },
    ]);
    expect(mrs).toEqual([
      { device: 'rxe0', mrn: 0, pid: 143, comm: 'node', lengthBytes: 67108864, pdn: 1, lkey: '2aa', rkey: '2aa', iova: null },
      { device: 'rxe0', mrn: 1, pid: 150, comm: 'rdmactl', lengthBytes: 4096, pdn: 2, lkey: null, rkey: null, iova: null },
    ]);
  });

  it('yields no rows for shapes it does not know, instead of throwing', () => {
    expect(parseKernelMrs({ error: 'x' })).toEqual([]);
    expect(parseKernelMrs([null, 3, 'x'])).toEqual([]);
  });
});
