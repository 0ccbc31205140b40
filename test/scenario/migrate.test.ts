// The migrate scenario on the host: the node-list parser (fixtures), the verdict table, move_pages on
// our own pages against numa_maps read by the test, and — on a machine with one memory node — every
// row skipped with the reason that says where to run it.
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { MAP_ANONYMOUS, MAP_PRIVATE, MPOL_MF_MOVE, PROT_READ, PROT_WRITE, mmap, movePages, munmap, view } from '../../src/ffi/libc.js';
import { SyscallError } from '../../src/lib/errno.js';
import { parseNodeList, readMemoryNodes } from '../../src/proc/numa.js';
import { pageSize } from '../../src/proc/pagemap.js';
import { pfnsVisible } from '../../src/fork/environment.js';
import { MIGRATE_VERDICTS, ONE_NUMA_NODE, migrateScenario, migrateVerdict, summarizeStatus, type MigrateEvidence } from '../../src/scenario/scenarios/migrate.js';
import type { ScenarioEnvironment, ScenarioRunContext } from '../../src/scenario/types.js';
import { numaMapsAt, nodesWithMemory } from './migrate-readings.js';

const fixtureDir = (name: string): string => fileURLToPath(new URL(`../fixtures/sys/${name}`, import.meta.url));
const hostNodes = nodesWithMemory();

describe('memory nodes from /sys/devices/system/node/has_memory', () => {
  it('parses the kernel list format', () => {
    expect(parseNodeList('0\n')).toEqual([0]);
    expect(parseNodeList('0-1\n')).toEqual([0, 1]);
    expect(parseNodeList('0,2-3\n')).toEqual([0, 2, 3]);
    expect(parseNodeList('\n')).toEqual([]);
    expect(() => parseNodeList('0-x')).toThrow(/not a kernel node list/);
    expect(() => parseNodeList('3-1')).toThrow(/backwards/);
  });

  it('reads a sysfs directory, and null where the kernel has no NUMA support', () => {
    expect(readMemoryNodes(fixtureDir('node-one'))).toEqual([0]);
    expect(readMemoryNodes(fixtureDir('node-two'))).toEqual([0, 1]);
    expect(readMemoryNodes(fixtureDir('node-sparse'))).toEqual([0, 2, 3]);
    expect(readMemoryNodes(fixtureDir('no-such-dir'))).toBeNull();
  });

  it('on this machine: the nodes whose meminfo shows memory', () => {
    expect(readMemoryNodes()).toEqual(hostNodes);
  });
});

describe('migrate verdicts from evidence', () => {
  const base: MigrateEvidence = { pinned: false, hasDevice: false, pages: 8, moved: 8, deviceReadsProcessWrite: null, processSeesDeviceWrite: null, deviceError: null };

  it('every verdict the table names can be reached, and only those', () => {
    const reached = new Set([
      migrateVerdict(base),
      migrateVerdict({ ...base, moved: 0 }),
      migrateVerdict({ ...base, pinned: true, moved: 0 }),
      migrateVerdict({ ...base, moved: 3 }),
      migrateVerdict({ ...base, hasDevice: true, deviceReadsProcessWrite: false, processSeesDeviceWrite: true }),
      migrateVerdict({ ...base, hasDevice: true, deviceError: 'device read failed: WR_FLUSH_ERR' }),
    ]);
    expect([...reached].sort()).toEqual(MIGRATE_VERDICTS.map((v) => v.id).sort());
  });

  it('pinned pages that stayed with a device that still shares them: pinned-stayed; an ODP MR that followed: moved', () => {
    const pinned = { ...base, pinned: true, hasDevice: true, moved: 0, deviceReadsProcessWrite: true, processSeesDeviceWrite: true };
    expect(migrateVerdict(pinned)).toBe('pinned-stayed');
    expect(migrateVerdict({ ...pinned, processSeesDeviceWrite: false })).toBe('device-disconnected');
    expect(migrateVerdict({ ...pinned, pinned: false, moved: 8 })).toBe('moved');
    expect(migrateVerdict({ ...pinned, pinned: false, moved: 8, deviceReadsProcessWrite: false })).toBe('device-disconnected');
  });

  it('per-page status reads as counts, nodes first, then errnos by name (in errno order)', () => {
    expect(summarizeStatus([1, 1, -16, 0, -14, -16])).toBe('1× node 0, 2× node 1, 1× -EFAULT, 2× -EBUSY');
    expect(summarizeStatus([])).toBe('');
  });
});

describe('move_pages on our own pages (real kernel)', () => {
  it('reports each page\'s node as numa_maps counts it, and refuses a node without memory', () => {
    const page = pageSize();
    const pages = 16;
    const addr = mmap(pages * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    try {
      view(addr, (pages / 2) * page).fill(0x5a); // the second half never touched: not present
      const list = Array.from({ length: pages }, (_, i) => addr + BigInt(i * page));
      const { status, notMoved } = movePages(0, list, null);
      expect(notMoved).toBe(0);
      expect(status.slice(pages / 2)).toEqual(new Array(pages / 2).fill(-2)); // -ENOENT: not present
      const touched = status.slice(0, pages / 2);
      const maps = numaMapsAt('self', addr);
      expect(maps, 'numa_maps has our VMA').not.toBeNull();
      for (const node of new Set(touched)) {
        expect(node).toBeGreaterThanOrEqual(0);
        expect(hostNodes).toContain(node);
        // The VMA may have merged with a neighbour: numa_maps counts at least our pages on that node.
        const counted = maps!.pagesPerNode.get(node) ?? 0;
        if (maps!.start === addr && maps!.end === addr + BigInt(pages * page)) expect(counted).toBe(touched.filter((n) => n === node).length);
        else expect(counted).toBeGreaterThanOrEqual(touched.filter((n) => n === node).length);
      }
      // Moving to the node a page is on is no move at all: status = that node.
      const here = touched[0]!;
      expect(movePages(0, list.slice(0, 4), [here, here, here, here], MPOL_MF_MOVE).status).toEqual([here, here, here, here]);
      const nowhere = Math.max(...hostNodes, 0) + 1;
      if (nowhere < 64) {
        let err: unknown;
        try { movePages(0, list.slice(0, 1), [nowhere], MPOL_MF_MOVE); } catch (e) { err = e; }
        expect(err).toBeInstanceOf(SyscallError);
        expect((err as SyscallError).errnoName).toBe('ENODEV');
      }
    } finally {
      munmap(addr, pages * page);
    }
  });
});

describe.skipIf(hostNodes.length >= 2)('migrate on a machine with one memory node', () => {
  const env: ScenarioEnvironment = { verbsUnavailable: 'no RDMA device on this host', pfnsVisible: pfnsVisible(), memoryNodes: readMemoryNodes() ?? [], pageSize: pageSize() };
  const ctx: ScenarioRunContext = { length: 1 << 20, env, verbsAccess: 0, stepDelayMs: 0 };

  it('every default row is skipped with the reason that says where to run it', async () => {
    expect(hostNodes.length).toBeLessThan(2);
    expect(migrateScenario.defaultCases.map((c) => c.backend)).toEqual(['plain', 'mlock', 'uring', 'verbs']);
    for (const c of migrateScenario.defaultCases) {
      expect(migrateScenario.notApplicable(c, env)).toBe(ONE_NUMA_NODE);
      const row = await migrateScenario.run(c, ctx);
      expect({ backend: row.backend, verdict: row.verdict, reason: row.reason, observations: row.observations }).toEqual({
        backend: c.backend, verdict: 'skipped', reason: ONE_NUMA_NODE, observations: [],
      });
    }
  });

  it('the reason says what the machine lacks and how to get it, for a user of the installed package', () => {
    expect(ONE_NUMA_NODE).toMatch(/^one NUMA node with memory\b/);
    expect(ONE_NUMA_NODE).toMatch(/needs two\b/);
    expect(ONE_NUMA_NODE).toMatch(/NUMA machine|two NUMA nodes/);
    // The lab and its npm script are not in the package: a reason that names them says where they are.
    if (/npm run lab|\blab\b/.test(ONE_NUMA_NODE)) expect(ONE_NUMA_NODE).toMatch(/source repository/);
  });

  it('backings it cannot move are refused with a reason first', () => {
    expect(migrateScenario.notApplicable({ backend: 'uring', backing: 'file-shared', variant: null }, env)).toMatch(/^migrate moves anonymous and shmem pages/);
  });
});
