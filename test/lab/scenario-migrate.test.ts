// The migrate scenario on both lab kernels, booted with two NUMA nodes (npm run test:lab boots two by
// default; npm run lab -- --numa 2 by hand). Each row runs in this process; after every step the test
// makes its own reading of where the pages are — PFNs from its own pread of /proc/self/pagemap, each
// PFN's node from the memory blocks sysfs lists per node, the VMA's per-node counts from
// /proc/self/numa_maps — and checks the row's nodes, notes and verdict against it. mlocked and plain
// pages must move; io_uring and verbs pinned pages must stay; an on-demand MR (new kernel) is shown
// with whatever it did, and printed, so the two kernels' runs can be compared.
import { afterAll, describe, expect, it } from 'vitest';
import { IBV_ACCESS_ON_DEMAND } from '../../src/ffi/verbs/enums.js';
import { pageSize } from '../../src/proc/pagemap.js';
import { readMemoryNodes } from '../../src/proc/numa.js';
import { pfnsVisible } from '../../src/fork/environment.js';
import { ONE_NUMA_NODE, migrateScenario, runMigrate, type MigrateProbeTarget } from '../../src/scenario/scenarios/migrate.js';
import type { ScenarioBackend, ScenarioEnvironment, ScenarioRow } from '../../src/scenario/types.js';
import type { Backing } from '../../src/engine/types.js';
import { countOf, nodesOfPfns, nodesWithMemory, numaMapsAt, pfnsAt, type NumaMapsLine } from '../scenario/migrate-readings.js';
import { inLab, labKernel, rxeHasOdp, statusKb } from './helpers.js';

// Whether rxe0 does ODP, as ibv_devinfo reads it from the running kernel.
const odp = inLab && rxeHasOdp();
const nodes = inLab ? nodesWithMemory() : [];
const LENGTH = 1 << 20;

interface Reading {
  target: MigrateProbeTarget;
  pfns: Array<number | null>;
  nodes: Array<number | null>;
  numaMaps: NumaMapsLine | null;
}

async function environment(): Promise<ScenarioEnvironment> {
  let verbsUnavailable: string | null = null;
  try {
    const verbs = await import('../../src/engine/verbs/index.js');
    if (verbs.listDeviceNames().length === 0) verbsUnavailable = 'no RDMA device';
  } catch (err) {
    verbsUnavailable = `libibverbs not usable: ${(err as Error).message}`;
  }
  return { verbsUnavailable, pfnsVisible: pfnsVisible(), memoryNodes: readMemoryNodes() ?? [], pageSize: pageSize() };
}

/** Run one row, with the test's own reading after every step. */
async function runRow(backend: ScenarioBackend, backing: Backing, verbsAccess = 0): Promise<{ row: ScenarioRow; readings: Map<string, Reading> }> {
  const readings = new Map<string, Reading>();
  const page = pageSize();
  const row = await runMigrate({ backend, backing, variant: null }, { length: LENGTH, env: await environment(), verbsAccess, stepDelayMs: 0 }, (step, target) => {
    const pfns = pfnsAt('self', target.addr, target.length / page, page);
    readings.set(step, { target, pfns, nodes: nodesOfPfns(pfns, page), numaMaps: numaMapsAt('self', target.addr) });
  });
  return { row, readings };
}

const printed: string[] = [];
const kb = (bytes: number | null): string => (bytes === null ? '?' : `${bytes / 1024} kB`);
function show(row: ScenarioRow): void {
  const line = `${labKernel.release}: migrate ${row.backend}${row.onDemand ? ' on-demand' : ''} ${row.backing} → ${row.verdict}: ${row.reason ?? ''}` +
    row.observations.map((o) => `\n    ${o.step}: node ${o.node} pfn ${o.pfn} VmPin ${kb(o.pinnedBytes)} VmLck ${kb(o.lockedBytes)} process ${o.processSees} device ${o.deviceReads}${o.note ? ` — ${o.note}` : ''}`).join('');
  printed.push(line);
}

/** The row's first-page nodes and notes agree with the test's own readings at each step. */
function checkAgainstReadings(row: ScenarioRow, readings: Map<string, Reading>): { from: number; to: number; moved: boolean; stayed: boolean } {
  const registered = readings.get('registered')!;
  const afterMove = readings.get('move_pages')!;
  expect(registered.pfns.every((p) => p !== null), 'root sees every PFN in the lab').toBe(true);
  const from = registered.nodes[0]!;
  const to = afterMove.target.targetNode!;
  expect(to).not.toBe(from);
  for (const o of row.observations) {
    const mine = readings.get(o.step);
    if (mine) expect({ step: o.step, node: o.node, pfn: o.pfn }).toEqual({ step: o.step, node: mine.nodes[0], pfn: mine.pfns[0] });
  }
  // The notes count pages per node as move_pages reported them; the test counts them from PFNs.
  for (const n of nodes) {
    const before = countOf(registered.nodes, n);
    const after = countOf(afterMove.nodes, n);
    if (before > 0) expect(row.observations[0]!.note).toContain(`${before}× node ${n}`);
    if (after > 0) expect(row.observations[1]!.note).toMatch(new RegExp(`now .*\\b${after}× node ${n}\\b`));
  }
  const pages = registered.pfns.length;
  const needMove = registered.nodes.map((n, i) => n !== to ? i : -1).filter((i) => i >= 0);
  const moved = needMove.every((i) => afterMove.nodes[i] === to && afterMove.pfns[i] !== registered.pfns[i]);
  const stayed = needMove.every((i) => afterMove.nodes[i] === registered.nodes[i] && afterMove.pfns[i] === registered.pfns[i]);
  // numa_maps (per VMA) agrees: exactly when the VMA is our buffer alone, at least otherwise.
  const maps = afterMove.numaMaps!;
  const onTarget = countOf(afterMove.nodes, to);
  const exact = maps.start === afterMove.target.addr && maps.end === afterMove.target.addr + BigInt(afterMove.target.length) && maps.kernelPageKb * 1024 === pageSize();
  if (exact) expect(maps.pagesPerNode.get(to) ?? 0, maps.line).toBe(onTarget);
  else expect(maps.pagesPerNode.get(to) ?? 0, maps.line).toBeGreaterThanOrEqual(onTarget);
  expect(row.observations[1]!.note).toContain(moved ? `${pages} of ${pages} PFNs changed` : 'PFNs changed');
  return { from, to, moved, stayed };
}

describe.skipIf(!inLab)(`scenario migrate (${labKernel.name || '?'} kernel ${labKernel.release}, ${nodes.length} memory node(s))`, () => {
  const pinnedBefore = inLab ? statusKb('VmPin') : 0;
  const lockedBefore = inLab ? statusKb('VmLck') : 0;

  afterAll(() => {
    if (printed.length > 0) process.stdout.write(`\n${printed.join('\n')}\n`);
    // Nothing left pinned or locked by any row.
    expect({ VmPin: statusKb('VmPin'), VmLck: statusKb('VmLck') }).toEqual({ VmPin: pinnedBefore, VmLck: lockedBefore });
  });

  it.skipIf(nodes.length >= 2)('one memory node: every row is skipped with where to run it', async () => {
    for (const c of migrateScenario.defaultCases) {
      const row = await migrateScenario.run(c, { length: LENGTH, env: await environment(), verbsAccess: 0, stepDelayMs: 0 });
      expect({ verdict: row.verdict, reason: row.reason }).toEqual({ verdict: 'skipped', reason: ONE_NUMA_NODE });
    }
    process.stdout.write(`\nmigrate: this VM has one NUMA node; boot it with npm run test:lab -- --numa 2\n`);
  });

  describe.skipIf(nodes.length < 2)('two memory nodes', () => {
    it('the lab has two nodes with memory, as rdmactl reads them', () => {
      expect(readMemoryNodes()).toEqual(nodes);
      expect(nodes.length).toBeGreaterThanOrEqual(2);
    });

    for (const [backend, backing] of [['plain', 'anon'], ['mlock', 'anon'], ['plain', 'memfd'], ['mlock', 'thp']] as const) {
      it(`${backend} ${backing}: every page moves to the other node, with a new PFN`, async () => {
        const { row, readings } = await runRow(backend, backing);
        show(row);
        if (row.verdict === 'skipped' && backing === 'thp') return; // no THP on this kernel: the reason is printed
        const seen = checkAgainstReadings(row, readings);
        expect({ moved: seen.moved, verdict: row.verdict }, row.reason ?? '').toEqual({ moved: true, verdict: 'moved' });
        expect(row.pinned).toBe(false);
        expect(row.observations.map((o) => o.processSees)).toEqual(['pre-fork', 'pre-fork', 'parent-write']);
        if (backend === 'mlock') expect(row.observations[1]!.lockedBytes).toBeGreaterThanOrEqual(row.length!);
      });
    }

    for (const [backend, backing] of [['uring', 'anon'], ['uring', 'memfd'], ['verbs', 'anon']] as const) {
      it(`${backend} ${backing}: pinned pages stay on their node at their PFN; the device still shares them`, async () => {
        const { row, readings } = await runRow(backend, backing);
        show(row);
        const seen = checkAgainstReadings(row, readings);
        expect({ stayed: seen.stayed, verdict: row.verdict }, row.reason ?? '').toEqual({ stayed: true, verdict: 'pinned-stayed' });
        expect(row.pinned).toBe(true);
        // ib_umem charges VmPin on every kernel; io_uring charges nothing to a CAP_IPC_LOCK process on
        // the new kernel (VmPin 0 here, the buffer's size on 6.1): printed above, asserted for verbs only.
        if (backend === 'verbs') expect(row.observations[1]!.pinnedBytes).toBeGreaterThanOrEqual(row.length!);
        expect(row.observations.map((o) => [o.step, o.processSees, o.deviceReads])).toEqual([
          ['registered', 'pre-fork', 'pre-fork'],
          ['move_pages', 'pre-fork', 'pre-fork'],
          ['process-write', 'parent-write', 'parent-write'],
          ['device-write', 'device-write', 'device-write'],
        ]);
      });
    }

    for (const backend of ['mlock', 'verbs'] as const) {
      it(`${backend}: interrupted after registering, the row stops and releases everything`, async () => {
        const before = { VmPin: statusKb('VmPin'), VmLck: statusKb('VmLck') };
        const controller = new AbortController();
        let during: { VmPin: number | null; VmLck: number | null } | null = null;
        const run = runMigrate({ backend, backing: 'anon', variant: null }, { length: LENGTH, env: await environment(), verbsAccess: 0, stepDelayMs: 50, signal: controller.signal }, (step) => {
          if (step !== 'registered') return;
          during = { VmPin: statusKb('VmPin'), VmLck: statusKb('VmLck') };
          controller.abort('SIGINT');
        });
        await expect(run).rejects.toMatchObject({ name: 'InterruptedError', exitCode: 130 });
        expect(during![backend === 'mlock' ? 'VmLck' : 'VmPin']!).toBeGreaterThanOrEqual(before[backend === 'mlock' ? 'VmLck' : 'VmPin']! + LENGTH / 1024);
        expect({ VmPin: statusKb('VmPin'), VmLck: statusKb('VmLck') }).toEqual(before);
      });
    }

    it(odp ? 'verbs on-demand: the pages move and the device follows them (or the row says what it did)' : 'verbs on-demand: skipped, this kernel\'s rxe has no ODP (ibv_devinfo)', async () => {
      const { row, readings } = await runRow('verbs', 'anon', IBV_ACCESS_ON_DEMAND);
      show(row);
      if (!odp) {
        expect(row.verdict, row.reason ?? '').toBe('skipped');
        return;
      }
      expect(row.onDemand).toBe(true);
      expect(row.pinned).toBe(false);
      const seen = checkAgainstReadings(row, readings);
      // Whatever the kernel did, the verdict must match the test's readings.
      const last = row.observations.at(-1)!;
      if (row.verdict === 'moved') {
        expect(seen.moved).toBe(true);
        expect([row.observations[2]!.deviceReads, last.processSees]).toEqual(['parent-write', 'device-write']);
      } else if (row.verdict === 'partial' || row.verdict === 'stayed') {
        expect(seen.moved).toBe(false);
      } else {
        expect(['device-disconnected', 'device-lost']).toContain(row.verdict);
      }
      // ODP pins nothing of the buffer: what VmPin shows is the device path's bounce buffer MR (at most
      // 1 MiB, pinned), the same before and after the move.
      expect(row.observations[1]!.pinnedBytes).toBe(row.observations[0]!.pinnedBytes);
      expect(row.observations[0]!.pinnedBytes!).toBeLessThanOrEqual(1 << 20);
    });
  });
});
