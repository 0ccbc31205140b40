// exit on the real kernel: a holder (rdmactl reg, a child process) is SIGKILLed; its pins and locks
// must come back. The test reads the holder's /proc/PID/status itself while it holds, and the
// machine's /proc/vmstat and /proc/meminfo before and after, and compares by delta (other processes
// pin and lock at the same time, so a run whose readings another process disturbed is run again).
import { describe, expect, it } from 'vitest';
import { exitScenario } from '../../src/scenario/scenarios/exit.js';
import { statusKb } from '../helpers/proc.js';
import { builtOrThrow } from '../helpers/spawn.js';
import { exists } from '../fork/helpers.js';
import { untilQuiet } from '../helpers/machineWide.js';
import { TEST_LENGTH, meminfoKb, scenarioContext, vmstatPinsOutstanding } from './helpers.js';

const PAGES = TEST_LENGTH / 4096;

// Machine-wide: other processes pin and lock too. The count fell by what the holder held, or is back
// where it was.
const pinsCameBack = (before: number, whileHeld: number, after: number): boolean => whileHeld - after >= PAGES || after <= before;
const lockCameBack = (beforeKb: number, whileHeldKb: number, afterKb: number): boolean => whileHeldKb - afterKb >= TEST_LENGTH / 1024 || afterKb <= beforeKb;

describe('scenario exit', () => {
  builtOrThrow();

  it('uring: the killed holder\'s pins come back by at least what it pinned, and its /proc entry goes', async () => {
    const run = await untilQuiet(5, async () => {
      let holder = 0;
      let heldVmPinKb = -1;
      let pinsWhileHeld = 0;
      const pinsBefore = vmstatPinsOutstanding();
      const row = await exitScenario.run({ backend: 'uring', backing: 'anon', variant: null }, scenarioContext({
        onChild: (pid) => {
          holder = pid;
          heldVmPinKb = statusKb(pid, 'VmPin');
          pinsWhileHeld = vmstatPinsOutstanding();
        },
      }));
      return { holder, heldVmPinKb, row, pinsBefore, pinsWhileHeld, pinsAfter: vmstatPinsOutstanding() };
    }, (r) => pinsCameBack(r.pinsBefore, r.pinsWhileHeld, r.pinsAfter));
    const { row, heldVmPinKb, holder, pinsBefore, pinsWhileHeld, pinsAfter } = run;
    expect(row.reason).toMatch(/after SIGKILL/);
    expect(row.verdict).toBe('released-at-exit');
    expect(heldVmPinKb).toBe(TEST_LENGTH / 1024);
    expect(row.observations[0]).toMatchObject({ step: 'registered', pinnedBytes: heldVmPinKb * 1024 });
    expect(exists(holder)).toBe(false);
    expect(pinsCameBack(pinsBefore, pinsWhileHeld, pinsAfter), `pins ${pinsBefore} → ${pinsWhileHeld} → ${pinsAfter}`).toBe(true);
    expect(row.observations.map((o) => o.step)).toEqual(expect.arrayContaining(['registered', 'killed', 'exited', 'released']));
  });

  it('mlock: meminfo Mlocked falls by at least what the holder locked', async () => {
    const run = await untilQuiet(5, async () => {
      let heldVmLckKb = -1;
      let mlockedWhileHeld = 0;
      const mlockedBefore = meminfoKb('Mlocked');
      const row = await exitScenario.run({ backend: 'mlock', backing: 'anon', variant: null }, scenarioContext({
        onChild: (pid) => {
          heldVmLckKb = statusKb(pid, 'VmLck');
          mlockedWhileHeld = meminfoKb('Mlocked');
        },
      }));
      return { row, heldVmLckKb, mlockedBefore, mlockedWhileHeld, mlockedAfter: meminfoKb('Mlocked') };
    }, (r) => lockCameBack(r.mlockedBefore, r.mlockedWhileHeld, r.mlockedAfter));
    const { row, heldVmLckKb, mlockedBefore, mlockedWhileHeld, mlockedAfter } = run;
    expect(row.verdict).toBe('released-at-exit');
    expect(heldVmLckKb).toBe(TEST_LENGTH / 1024);
    expect(row.observations[0]!.lockedBytes).toBe(heldVmLckKb * 1024);
    expect(lockCameBack(mlockedBefore, mlockedWhileHeld, mlockedAfter), `Mlocked ${mlockedBefore} → ${mlockedWhileHeld} → ${mlockedAfter} kB`).toBe(true);
  });

  it('plain has nothing to release, verbs needs a device: skipped with the reason', async () => {
    const plain = await exitScenario.run({ backend: 'plain', backing: 'anon', variant: null }, scenarioContext());
    expect(plain).toMatchObject({ verdict: 'skipped', reason: expect.stringMatching(/plain registers nothing/) });
    const verbs = await exitScenario.run({ backend: 'verbs', backing: 'anon', variant: null }, scenarioContext());
    expect(verbs).toMatchObject({ verdict: 'skipped', reason: 'no RDMA device on this host' });
  });

  it('interrupted while the holder holds: the holder is killed and reaped, nothing stays pinned', async () => {
    const controller = new AbortController();
    let holder = 0;
    const pinned = statusKb('self', 'VmPin');
    const run = exitScenario.run({ backend: 'uring', backing: 'anon', variant: null }, scenarioContext({
      signal: controller.signal, stepDelayMs: 200,
      onChild: (pid) => { holder = pid; controller.abort('SIGINT'); },
    }));
    await expect(run).rejects.toMatchObject({ name: 'InterruptedError', exitCode: 130 });
    expect(holder).toBeGreaterThan(0);
    expect(exists(holder)).toBe(false);
    expect(statusKb('self', 'VmPin')).toBe(pinned);
  });
});
