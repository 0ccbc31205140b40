// munmap and munlock through the engine, on the real kernel, each step checked against the test's
// own readings made at that moment (onStep): VmPin/VmLck, /proc/vmstat pins, /proc/self/mem,
// pagemap, and for io_uring the bytes the registration holds through the test's own WRITE_FIXED.
import { beforeAll, describe, expect, it } from 'vitest';
import { runRow } from '../../src/scenario/engine.js';
import { probeScenarioEnvironment } from '../../src/scenario/environment.js';
import { munlockScenario } from '../../src/scenario/scenarios/munlock.js';
import { munmapScenario } from '../../src/scenario/scenarios/munmap.js';
import type { ScenarioBackend, ScenarioDefinition, ScenarioEnvironment, ScenarioRow } from '../../src/scenario/types.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { STAT_SETTLE_MS, untilQuiet } from '../helpers/machineWide.js';
import { accounting, allOf, memBytes, pfnAt, pinsOutstanding, uringHolds, type StepReading } from './helpers.js';

// The patterns the scenarios write (fork/observe.ts PATTERN), spelled out here on purpose.
const OLD = 0xa1;
const NEW = 0xb2;
const DEVICE = 0xd4;
const PAGE = 4096;
const LENGTH = 4 * PAGE;

let env: ScenarioEnvironment;
beforeAll(async () => {
  env = await probeScenarioEnvironment(false);
});

interface Run {
  row: ScenarioRow;
  at: Map<string, StepReading>;
  before: { pin: number; lck: number; pins: number | null };
  after: { pin: number; lck: number; pins: number | null };
}

async function runOnce(def: ScenarioDefinition, backend: ScenarioBackend, settleAt: string | null = null): Promise<Run> {
  const at = new Map<string, StepReading>();
  if (settleAt) await sleep(STAT_SETTLE_MS);
  const before = { ...accounting(), pins: pinsOutstanding() };
  const row = await runRow(def, { backend, backing: 'anon', variant: null }, {
    length: LENGTH, env, verbsAccess: 0, stepDelayMs: 0,
    onStep: async (step, target) => {
      if (step === settleAt) await sleep(STAT_SETTLE_MS);
      at.set(step, {
        ...accounting(), pins: pinsOutstanding(), mem: memBytes(target.addr, target.length), pfn: pfnAt(target.addr),
        device: uringHolds(target.registration, target.addr, target.length),
      });
    },
  });
  if (settleAt) await sleep(STAT_SETTLE_MS);
  return { row, at, before, after: { ...accounting(), pins: pinsOutstanding() } };
}

/**
 * /proc/vmstat is machine-wide and others on this machine pin and unpin too: run until the counter
 * moved by exactly this row's pages between `step` and the end (at most 3 tries), so the check below
 * is exact.
 */
async function runQuiet(def: ScenarioDefinition, backend: ScenarioBackend, step: string, pages: number): Promise<Run> {
  return untilQuiet(3, () => runOnce(def, backend, step), (run) => {
    const during = run.at.get(step)?.pins ?? null;
    return during === null || run.after.pins === null || during - run.after.pins === pages;
  });
}

function observation(row: ScenarioRow, step: string) {
  const o = row.observations.find((x) => x.step === step);
  expect(o, `no observation '${step}' in ${JSON.stringify(row)}`).toBeDefined();
  return o!;
}

describe('scenario munmap (real kernel)', { timeout: 30_000 }, () => {
  it('uring: the pin keeps the old pages for the device; the process sees nothing, then its new mapping', async () => {
    const { row, at, before, after } = await runQuiet(munmapScenario, 'uring', 'munmap', LENGTH / PAGE);
    expect(row.verdict, JSON.stringify(row)).toBe('device-keeps-old-pages');
    expect(row.length).toBe(LENGTH);
    const registered = at.get('registered')!;
    const unmapped = at.get('munmap')!;
    const wrote = at.get('device wrote')!;
    const remapped = at.get('remapped')!;
    const released = at.get('released')!;

    expect(registered.pin - before.pin).toBe(LENGTH);
    expect(allOf(registered.mem, OLD)).toBe(true);
    expect(allOf(registered.device, OLD)).toBe(true);

    // munmap: VmPin stays, nothing mapped, the ring still reads the old bytes.
    expect(unmapped.pin - before.pin).toBe(LENGTH);
    expect(unmapped.mem).toBeNull();
    expect(unmapped.pfn).toBeNull();
    expect(allOf(unmapped.device, OLD)).toBe(true);
    // The device wrote into the old pages; the test's own read through the ring sees it.
    expect(allOf(wrote.device, DEVICE)).toBe(true);
    // A new mapping at the same address: the process sees its own new bytes, the ring still the old pages.
    expect(allOf(remapped.mem, NEW)).toBe(true);
    expect(allOf(remapped.device, DEVICE)).toBe(true);
    if (registered.pfn !== null && remapped.pfn !== null) expect(remapped.pfn).not.toBe(registered.pfn);
    // Released: the pin is gone, the new mapping untouched by the release.
    expect(released.pin).toBe(before.pin);
    expect(allOf(released.mem, NEW)).toBe(true);
    expect(after.pin).toBe(before.pin);

    // rdmactl's observations equal the test's readings of the same moments.
    for (const step of ['registered', 'munmap', 'remapped', 'released']) expect(observation(row, step).pinnedBytes, step).toBe(at.get(step)!.pin);
    expect(observation(row, 'munmap').processSees).toBe('unmapped');
    expect(observation(row, 'munmap').deviceReads).toBe('pre-fork');
    expect(observation(row, 'remapped').processSees).toBe('parent-write');
    expect(observation(row, 'remapped').deviceReads).toBe('device-write');
    expect(observation(row, 'registered').pfn).toBe(registered.pfn);

    // Outstanding FOLL_PIN pins: held across munmap, released with the registration.
    if (unmapped.pins === null || after.pins === null) {
      console.warn('skipped the /proc/vmstat check: this kernel has no nr_foll_pin_acquired/released');
    } else {
      expect(unmapped.pins - after.pins).toBe(LENGTH / PAGE);
    }
  });

  it('mlock: munmap drops VmLck and frees the pages; nothing is left to release', async () => {
    const { row, at, before, after } = await runOnce(munmapScenario, 'mlock');
    expect(row.verdict, JSON.stringify(row)).toBe('released-with-mapping');
    expect(at.get('registered')!.lck - before.lck).toBe(LENGTH);
    expect(allOf(at.get('registered')!.mem, OLD)).toBe(true);
    expect(at.get('munmap')!.lck).toBe(before.lck);
    expect(at.get('munmap')!.mem).toBeNull();
    expect(at.get('munmap')!.pin).toBe(before.pin);
    expect(allOf(at.get('remapped')!.mem, NEW)).toBe(true);
    expect(at.has('device wrote')).toBe(false); // no device path: mlock pins nothing
    expect(after).toMatchObject({ pin: before.pin, lck: before.lck });
    expect(observation(row, 'registered').lockedBytes).toBe(at.get('registered')!.lck);
    expect(observation(row, 'munmap').lockedBytes).toBe(at.get('munmap')!.lck);
    expect(observation(row, 'remapped').processSees).toBe('parent-write');
  });
});

describe('scenario munlock (real kernel)', { timeout: 30_000 }, () => {
  it('mlock only: munlock releases everything (mlock is not pinning)', async () => {
    const { row, at, before, after } = await runOnce(munlockScenario, 'mlock');
    expect(row.verdict, JSON.stringify(row)).toBe('munlock-releases-all');
    const locked = at.get('locked')!;
    const unlocked = at.get('munlock')!;
    expect(locked.lck - before.lck).toBe(LENGTH);
    expect(locked.pin).toBe(before.pin);
    expect(unlocked.lck).toBe(before.lck);
    expect(unlocked.pin).toBe(before.pin);
    expect(allOf(unlocked.mem, OLD)).toBe(true);
    expect(after).toMatchObject({ pin: before.pin, lck: before.lck });
    expect(observation(row, 'locked').lockedBytes).toBe(locked.lck);
    expect(observation(row, 'munlock').lockedBytes).toBe(unlocked.lck);
    expect(observation(row, 'munlock').pinnedBytes).toBe(unlocked.pin);
  });

  it('mlock + uring: VmLck drops, VmPin stays, the ring and the process still share the pages', async () => {
    const { row, at, before, after } = await runQuiet(munlockScenario, 'uring', 'munlock', LENGTH / PAGE);
    expect(row.verdict, JSON.stringify(row)).toBe('pin-outlives-munlock');
    const locked = at.get('locked')!;
    const unlocked = at.get('munlock')!;
    const wrote = at.get('process wrote')!;
    const devWrote = at.get('device wrote')!;
    expect(locked.lck - before.lck).toBe(LENGTH);
    expect(locked.pin - before.pin).toBe(LENGTH);
    expect(unlocked.lck).toBe(before.lck);
    expect(unlocked.pin - before.pin).toBe(LENGTH);
    expect(allOf(unlocked.device, OLD)).toBe(true);
    // The process wrote: the test's own WRITE_FIXED reads it through the registration.
    expect(allOf(wrote.mem, NEW)).toBe(true);
    expect(allOf(wrote.device, NEW)).toBe(true);
    // The device wrote: the process reads it at its address.
    expect(allOf(devWrote.mem, DEVICE)).toBe(true);
    if (locked.pfn !== null) {
      expect(unlocked.pfn).toBe(locked.pfn);
      expect(devWrote.pfn).toBe(locked.pfn);
    }
    expect(at.get('released')!.pin).toBe(before.pin);
    expect(after).toMatchObject({ pin: before.pin, lck: before.lck });
    for (const step of ['locked', 'munlock', 'released']) {
      expect(observation(row, step).pinnedBytes, step).toBe(at.get(step)!.pin);
      expect(observation(row, step).lockedBytes, step).toBe(at.get(step)!.lck);
    }
    expect(observation(row, 'process wrote').deviceReads).toBe('parent-write');
    expect(observation(row, 'device wrote').processSees).toBe('device-write');
    if (unlocked.pins !== null && after.pins !== null) expect(unlocked.pins - after.pins).toBe(LENGTH / PAGE);
    else console.warn('skipped the /proc/vmstat check: this kernel has no nr_foll_pin_acquired/released');
  });
});
