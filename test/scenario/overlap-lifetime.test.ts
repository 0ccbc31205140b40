// overlap-lifetime on the real kernel. While the row runs (it pauses at each step), the test samples
// its own /proc/self/status: VmPin must go to twice the range with two io_uring handles, to once after
// releasing one, and back at the end; two mlocks must never lock the range twice.
import { describe, expect, it } from 'vitest';
import { overlapLifetimeScenario } from '../../src/scenario/scenarios/overlapLifetime.js';
import { statusKb } from '../helpers/proc.js';
import { TEST_LENGTH, scenarioContext } from './helpers.js';

const KB = TEST_LENGTH / 1024;

/** Samples a /proc/self/status field every few ms while `fn` runs; returns the distinct values in order. */
async function sampling<T>(field: 'VmPin' | 'VmLck', fn: () => Promise<T>): Promise<{ result: T; seen: number[] }> {
  const seen: number[] = [];
  const sample = (): void => {
    const kb = statusKb('self', field);
    if (seen.at(-1) !== kb) seen.push(kb);
  };
  sample();
  const timer = setInterval(sample, 5);
  try {
    const result = await fn();
    sample();
    return { result, seen };
  } finally {
    clearInterval(timer);
  }
}

describe('scenario overlap-lifetime', () => {
  it('uring: two rings on one range count twice, one release halves VmPin, the other ring still reaches the pages after munmap', async () => {
    const before = statusKb('self', 'VmPin');
    const { result: row, seen } = await sampling('VmPin', () =>
      overlapLifetimeScenario.run({ backend: 'uring', backing: 'anon', variant: null }, scenarioContext({ stepDelayMs: 60 })));
    expect(row.verdict, row.reason ?? '').toBe('lifetimes-independent');
    expect(seen).toEqual([before, before + 2 * KB, before + KB, before]);
    const steps = Object.fromEntries(row.observations.map((o) => [o.step, o]));
    expect(steps['registered']).toMatchObject({ pinnedBytes: (before + 2 * KB) * 1024, processSees: 'pre-fork', deviceReads: 'pre-fork' });
    expect(steps['released-handle-read']).toMatchObject({ deviceReads: 'failed', note: expect.stringMatching(/EFAULT/) });
    expect(steps['released-one']).toMatchObject({ pinnedBytes: (before + KB) * 1024, deviceReads: 'pre-fork' });
    expect(steps['device-wrote']).toMatchObject({ processSees: 'device-write', deviceReads: 'device-write' });
    expect(steps['munmap']).toMatchObject({ processSees: 'unmapped', deviceReads: 'device-write', pinnedBytes: (before + KB) * 1024 });
    expect(steps['released']!.pinnedBytes).toBe(before * 1024);
    expect(statusKb('self', 'VmPin')).toBe(before);
  });

  it('mlock: the second mlock adds nothing and one munlock unlocks the range', async () => {
    const before = statusKb('self', 'VmLck');
    const { result: row, seen } = await sampling('VmLck', () =>
      overlapLifetimeScenario.run({ backend: 'mlock', backing: 'anon', variant: null }, scenarioContext({ stepDelayMs: 60 })));
    expect(row.verdict, row.reason ?? '').toBe('locks-do-not-stack');
    expect(seen).toEqual([before, before + KB, before]);
    expect(row.observations[0]!.lockedBytes).toBe((before + KB) * 1024);
    expect(row.observations.find((o) => o.step === 'munmap')!.processSees).toBe('unmapped');
  });

  it('plain has no handles, verbs needs a device: skipped with the reason', async () => {
    expect(await overlapLifetimeScenario.run({ backend: 'plain', backing: 'anon', variant: null }, scenarioContext()))
      .toMatchObject({ verdict: 'skipped', reason: expect.stringMatching(/no handles/) });
    expect(await overlapLifetimeScenario.run({ backend: 'verbs', backing: 'anon', variant: null }, scenarioContext()))
      .toMatchObject({ verdict: 'skipped', reason: 'no RDMA device on this host' });
  });

  it('interrupted between steps: both handles and the buffer are released', async () => {
    const before = statusKb('self', 'VmPin');
    const controller = new AbortController();
    setTimeout(() => controller.abort('SIGTERM'), 30);
    await expect(overlapLifetimeScenario.run({ backend: 'uring', backing: 'anon', variant: null }, scenarioContext({ signal: controller.signal, stepDelayMs: 500 })))
      .rejects.toMatchObject({ name: 'InterruptedError', exitCode: 143 });
    expect(statusKb('self', 'VmPin')).toBe(before);
  });
});
