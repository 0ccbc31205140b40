// numa.node: numa_maps parsing on a two-node fixture, the finding's logic, and the real numa_maps of
// this process with a buffer it really mlocks, checked against the test's own read of the file.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bytesByNode, parseNumaMaps, readNumaMaps } from '../../src/proc/numaMaps.js';
import { readSmaps, type SmapsVma } from '../../src/proc/smaps.js';
import { numaFindingFrom, numaPlacement } from '../../src/doctor/numa.js';
import { register, type RegistrationSet } from '../../src/engine/register.js';

const fixture = readFileSync(new URL('../fixtures/proc/numa_maps-two-nodes.txt', import.meta.url), 'utf8');
const KIB = 1024;

function vma(start: bigint, end: bigint, locked: boolean): SmapsVma {
  return {
    start, end, perms: 'rw-p', offset: 0n, device: '00:00', inode: 0, pathname: '', sizeBytes: Number(end - start), rssBytes: 0,
    lockedBytes: 0, anonymousBytes: 0, anonHugePagesBytes: 0, swapBytes: 0, kernelPageSizeBytes: 4096, flags: new Set(locked ? ['rd', 'wr', 'lo'] : ['rd', 'wr']),
  };
}

describe('numa.node', () => {
  it('parses policy, pages per node, page size, anon and file', () => {
    const vmas = parseNumaMaps(fixture);
    expect(vmas).toHaveLength(5);
    expect(vmas[1]).toMatchObject({ start: 0x7f1200000000n, policy: 'bind:1', anonymous: true, pageBytes: 4 * KIB });
    expect([...vmas[2]!.pagesByNode]).toEqual([[0, 256], [1, 256]]);
    expect(vmas[3]).toMatchObject({ pageBytes: 2048 * KIB, anonymous: false });
    expect(bytesByNode(vmas.slice(3, 4)).get(0)).toBe(2 * 2048 * KIB);
  });

  it('looks at registered VMAs when there are some, else at all anonymous memory', () => {
    const vmas = parseNumaMaps(fixture);
    const smaps = [vma(0x7f1200000000n, 0x7f1200100000n, true), vma(0x7f1300000000n, 0x7f1300200000n, false), vma(0x7ffd1c000000n, 0x7ffd1c008000n, false)];
    const locked = numaPlacement(vmas, smaps, []);
    expect(locked.scope).toBe('registered');
    expect([...locked.bytesByNode]).toEqual([[1, 256 * 4 * KIB]]);
    const uring = numaPlacement(vmas, smaps, [{ start: 0x7f1300001000n, end: 0x7f1300002000n }]);
    expect([...uring.bytesByNode].sort()).toEqual([[0, 256 * 4 * KIB], [1, 512 * 4 * KIB]]);
    const none = numaPlacement(vmas, smaps.map((v) => ({ ...v, flags: new Set(['rd']) })), []);
    expect(none.scope).toBe('anonymous');
    expect(none.bytesByNode.get(0)).toBe((256 + 8) * 4 * KIB);
  });

  it('warns with the remote bytes and a numactl fix; ok when everything is local', () => {
    const placement = { scope: 'registered' as const, bytesByNode: new Map([[0, 4 * KIB], [1, 1024 * KIB]]) };
    const remote = numaFindingFrom('mlx5_0', 0, placement, 42);
    expect(remote).toMatchObject({ id: 'numa.node', status: 'warn', evidence: { deviceNode: 0, localBytes: 4 * KIB, remoteBytes: 1024 * KIB } });
    expect(remote.fix[0]).toContain('numactl --cpunodebind=0 --membind=0');
    expect(numaFindingFrom('mlx5_0', 1, { scope: 'registered', bytesByNode: new Map([[1, 8 * KIB]]) }, 42).status).toBe('ok');
  });

  describe('this process, with 1 MiB it really mlocks', () => {
    let set: RegistrationSet;
    beforeAll(async () => {
      set = await register({ length: 1 << 20, backend: 'mlock' });
    });
    afterAll(() => set.close());

    it('the mlocked VMA is found and its resident pages counted on their node, as numa_maps itself says', () => {
      const addr = set.registrations[0]!.buffer.addr;
      const placement = numaPlacement(readNumaMaps('self')!, readSmaps('self')!, []);
      expect(placement.scope).toBe('registered');
      // The test's own reading: the numa_maps line of the VMA that holds the buffer.
      const lines = readFileSync('/proc/self/numa_maps', 'utf8').split('\n').filter(Boolean);
      const starts = lines.map((l) => BigInt(`0x${l.split(' ')[0]}`));
      const vmaStart = starts.filter((s) => s <= addr).sort((a, b) => (a < b ? 1 : a > b ? -1 : 0))[0]!;
      const line = lines[starts.indexOf(vmaStart)]!;
      const nodes = [...line.matchAll(/ N(\d+)=(\d+)/g)].map((m) => [Number(m[1]), Number(m[2])] as const);
      expect(nodes.length).toBeGreaterThan(0);
      for (const [node, pages] of nodes) expect(placement.bytesByNode.get(node) ?? 0).toBeGreaterThanOrEqual(pages * 4 * KIB);
      const total = [...placement.bytesByNode.values()].reduce((a, b) => a + b, 0);
      expect(total).toBeGreaterThanOrEqual(1 << 20);
    });
  });
});
