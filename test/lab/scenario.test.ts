// The munmap and munlock scenarios with real verbs MRs (rdma_rxe) on both lab kernels, each step
// checked against the test's own readings at that moment: VmPin/VmLck from /proc/self/status, the
// kernel's MR table (`rdma -j -d res show mr`), and the bytes at the address through /proc/self/mem.
// With --access on-demand (ODP: rxe on the newest kernel only) the same rows run with an ODP MR;
// whatever the device did is printed, so the lab output shows where the two kernels differ.
import { closeSync, openSync, readSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { IBV_ACCESS_ON_DEMAND } from '../../src/ffi/verbs/enums.js';
import { runRow } from '../../src/scenario/engine.js';
import { probeScenarioEnvironment } from '../../src/scenario/environment.js';
import { munlockScenario } from '../../src/scenario/scenarios/munlock.js';
import { munmapScenario } from '../../src/scenario/scenarios/munmap.js';
import type { ScenarioDefinition, ScenarioEnvironment, ScenarioRow } from '../../src/scenario/types.js';
import { inLab, labKernel, notInLabReason, rxeHasOdp, statusKb } from './helpers.js';
import { kernelMrs, type KernelMrRow } from './verbs-helpers.js';

if (!inLab) console.warn(`SKIPPING lab scenario tests: ${notInLabReason}`);

const LENGTH = 16 * 1024;
const OLD = 0xa1;
const NEW = 0xb2;
const DEVICE = 0xd4;

interface Reading {
  pinKb: number | null;
  lckKb: number | null;
  mrs: KernelMrRow[];
  mem: Buffer | null;
}

function memBytes(addr: bigint, length: number): Buffer | null {
  const fd = openSync('/proc/self/mem', 'r');
  try {
    const out = Buffer.alloc(length);
    return readSync(fd, out, 0, length, addr) === length ? out : null;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EIO') return null;
    throw err;
  } finally {
    closeSync(fd);
  }
}

const allOf = (bytes: Buffer | null, value: number): boolean => bytes !== null && bytes.every((b) => b === value);

/**
 * Bytes pinned by this process's MRs in the kernel's table: the row's MR and the device path's own
 * bounce-buffer MR (its RDMA READ/WRITE land there), both pinned (ib_umem_get adds each to VmPin).
 */
const mrBytes = (r: Reading): number => r.mrs.reduce((sum, mr) => sum + mr.mrlen, 0);

let env: ScenarioEnvironment;

async function runWithReadings(def: ScenarioDefinition, verbsAccess: number): Promise<{ row: ScenarioRow; at: Map<string, Reading>; before: Reading }> {
  const at = new Map<string, Reading>();
  const read = (addr: bigint | null): Reading => ({
    pinKb: statusKb('VmPin'), lckKb: statusKb('VmLck'),
    mrs: kernelMrs().filter((mr) => mr.pid === process.pid), mem: addr === null ? null : memBytes(addr, LENGTH),
  });
  const before = read(null);
  const row = await runRow(def, { backend: 'verbs', backing: 'anon', variant: null }, {
    length: LENGTH, env, verbsAccess, stepDelayMs: 0,
    onStep: (step, target) => { at.set(step, read(target.addr)); },
  });
  return { row, at, before };
}

function report(name: string, row: ScenarioRow): void {
  const steps = row.observations.map((o) => `${o.step}: VmPin ${o.pinnedBytes ?? '-'} VmLck ${o.lockedBytes ?? '-'} process ${o.processSees ?? '-'} device ${o.deviceReads ?? '-'}${o.note ? ` (${o.note})` : ''}`);
  console.log(`[lab ${labKernel.name} ${labKernel.release}] ${name}: ${row.verdict}${row.reason ? ` — ${row.reason}` : ''}\n  ${steps.join('\n  ')}`);
}

describe.skipIf(!inLab)(`scenarios with verbs on ${labKernel.name || '?'} (${labKernel.release})`, () => {
  beforeAll(async () => {
    env = await probeScenarioEnvironment(true);
    expect(env.verbsUnavailable).toBeNull();
  });

  it('munmap, pinned MR: the MR keeps the old pages; the device reads them while the process sees nothing, then its new mapping', async () => {
    const { row, at, before } = await runWithReadings(munmapScenario, 0);
    report('munmap verbs', row);
    expect(row.verdict, JSON.stringify(row)).toBe('device-keeps-old-pages');
    const registered = at.get('registered')!;
    const unmapped = at.get('munmap')!;
    const remapped = at.get('remapped')!;
    const released = at.get('released')!;
    expect(registered.mrs.map((mr) => mr.mrlen)).toContain(LENGTH);
    expect((registered.pinKb! - before.pinKb!) * 1024).toBe(mrBytes(registered));
    expect(allOf(registered.mem, OLD)).toBe(true);
    // munmap: the MR is still in the kernel's table and still pinned; nothing mapped at the address.
    expect(unmapped.pinKb).toBe(registered.pinKb);
    expect(unmapped.mrs.map((mr) => mr.mrlen)).toContain(LENGTH);
    expect(unmapped.mem).toBeNull();
    // A new mapping at the address: the process reads its own bytes; the MR still holds the old pages.
    expect(allOf(remapped.mem, NEW)).toBe(true);
    expect(remapped.mrs.map((mr) => mr.mrlen)).toContain(LENGTH);
    // Released: the MR is gone from the kernel's table and VmPin is back.
    expect(released.mrs).toEqual([]);
    expect(released.pinKb).toBe(before.pinKb);
    expect(allOf(released.mem, NEW)).toBe(true);
    // rdmactl's readings agree with the test's.
    const obs = (step: string) => row.observations.find((o) => o.step === step)!;
    expect(obs('munmap').pinnedBytes).toBe(unmapped.pinKb! * 1024);
    expect(obs('munmap').processSees).toBe('unmapped');
    expect(obs('munmap').deviceReads).toBe('pre-fork'); // RDMA READ of the old pages
    expect(obs('device wrote').deviceReads).toBe('device-write');
    expect(obs('remapped').deviceReads).toBe('device-write');
    expect(obs('released').pinnedBytes).toBe(before.pinKb! * 1024);
  });

  it('munlock, pinned MR: VmLck drops, VmPin and the MR stay, RDMA READ/WRITE still reach the process\'s pages', async () => {
    const { row, at, before } = await runWithReadings(munlockScenario, 0);
    report('munlock verbs', row);
    expect(row.verdict, JSON.stringify(row)).toBe('pin-outlives-munlock');
    const locked = at.get('locked')!;
    const unlocked = at.get('munlock')!;
    expect(locked.lckKb! - before.lckKb!).toBe(LENGTH / 1024);
    expect(locked.mrs.map((mr) => mr.mrlen)).toContain(LENGTH);
    expect((locked.pinKb! - before.pinKb!) * 1024).toBe(mrBytes(locked));
    expect(unlocked.lckKb).toBe(before.lckKb);
    expect(unlocked.pinKb).toBe(locked.pinKb);
    expect(unlocked.mrs.map((mr) => mr.mrlen)).toContain(LENGTH);
    expect(allOf(at.get('process wrote')!.mem, NEW)).toBe(true);
    expect(allOf(at.get('device wrote')!.mem, DEVICE)).toBe(true); // the RDMA WRITE landed in the process's page
    expect(at.get('released')!.mrs).toEqual([]);
    expect(at.get('released')!.pinKb).toBe(before.pinKb);
  });

  for (const def of [munmapScenario, munlockScenario]) {
    it(`${def.name} with an on-demand MR: nothing pinned and what the device did is printed, or skipped where rxe has no ODP`, async () => {
      const { row, at, before } = await runWithReadings(def, IBV_ACCESS_ON_DEMAND);
      report(`${def.name} verbs on-demand`, row);
      if (row.verdict === 'skipped') {
        // This kernel's rxe has no ODP (ibv_devinfo says so): the row says so, nothing was registered.
        expect(row.reason).toMatch(/ODP|on-demand/i);
        expect(kernelMrs().filter((mr) => mr.pid === process.pid)).toEqual([]);
        expect(rxeHasOdp(), 'ibv_devinfo says rxe0 has ODP, yet the row was skipped').toBe(false);
        return;
      }
      expect(row.verdict).not.toBe('error');
      expect(row.onDemand).toBe(true);
      // An ODP MR pins nothing: VmPin grew by the device path's pinned bounce MR only (every MR of
      // this process in the kernel's table but the row's own), and stayed there until the release.
      const first = at.get(def.name === 'munmap' ? 'registered' : 'locked')!;
      expect(first.mrs.map((mr) => mr.mrlen)).toContain(LENGTH);
      expect((first.pinKb! - before.pinKb!) * 1024).toBe(mrBytes(first) - LENGTH);
      for (const o of row.observations.filter((x) => x.step !== 'released')) expect(o.pinnedBytes, o.step).toBe(first.pinKb! * 1024);
      if (def.name === 'munlock') expect(row.verdict).toBe('device-follows-process');
      expect(at.get('released')!.mrs).toEqual([]);
      if (def.name === 'munmap') {
        expect(at.get('munmap')!.mem).toBeNull();
        expect(['device-follows-new-mapping', 'device-lost-access', 'device-keeps-old-pages', 'unverified']).toContain(row.verdict);
      }
    });
  }
});
