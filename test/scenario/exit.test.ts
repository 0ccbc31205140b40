// exit on the real kernel: a holder (an attached holder, a child process) is SIGKILLed; its pins and locks
// must come back. The test reads the holder's /proc/PID/status itself while it holds, and the
// machine's /proc/vmstat and /proc/meminfo before and after, and compares by delta (other processes
// pin and lock at the same time, so a run whose readings another process disturbed is run again).
import { closeSync, readdirSync, readlinkSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { pidfdOpen, syscall } from '../../src/ffi/libc.js';
import { exitScenario } from '../../src/scenario/scenarios/exit.js';
import { statusKb } from '../helpers/proc.js';
import { builtOrThrow } from '../helpers/spawn.js';
import { exists } from '../fork/helpers.js';
import { startLockChurn, untilQuiet } from '../helpers/machineWide.js';
import { TEST_LENGTH, accounting, meminfoKb, scenarioContext, vmstatPinsOutstanding } from './helpers.js';

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

/** A copy, in this process, of `pid`'s io_uring fd (pidfd_getfd): the ring, and its pins, outlive `pid`. */
function takeRingOf(pid: number): number {
  const fd = readdirSync(`/proc/${pid}/fd`).find((name) => readlinkSync(`/proc/${pid}/fd/${name}`) === 'anon_inode:[io_uring]');
  if (fd === undefined) throw new Error(`pid ${pid} has no io_uring fd`);
  const pidfd = pidfdOpen(pid);
  try {
    return syscall('pidfd_getfd', 438, pidfd, Number(fd), 0);
  } finally {
    closeSync(pidfd);
  }
}

describe('scenario exit: verdicts from the holder\'s own pages and address space, not machine-wide counters', { timeout: 240_000 }, () => {
  builtOrThrow();

  it('while another process keeps changing its own locked memory, mlock (×6) and uring (×3) rows are always released-at-exit', async () => {
    const churn = await startLockChurn();
    try {
      const churnLockedBefore = accounting(churn.pid).lck;
      const outcomes: string[] = [];
      for (const backend of ['mlock', 'mlock', 'mlock', 'mlock', 'mlock', 'mlock', 'uring', 'uring', 'uring'] as const) {
        const row = await exitScenario.run({ backend, backing: 'anon', variant: null }, scenarioContext());
        outcomes.push(`${backend} ${row.verdict}: ${row.reason}`);
      }
      // The noise was there all along: the other process locked more and more while the rows ran.
      expect(accounting(churn.pid).lck).toBeGreaterThan(churnLockedBefore);
      expect(outcomes.filter((o) => !/^\w+ released-at-exit: /.test(o))).toEqual([]);
    } finally {
      await churn.stop();
    }
  });

  it('uring: when another process keeps the holder\'s ring (and so its pins) alive, the row says not-released; the pages go when that ring goes', async () => {
    let ring = -1;
    try {
      const row = await exitScenario.run({ backend: 'uring', backing: 'anon', variant: null }, scenarioContext({
        onChild: (pid) => { ring = takeRingOf(pid); },
      }));
      expect(ring).toBeGreaterThanOrEqual(0);
      expect(row.verdict, row.reason ?? '').toBe('not-released');
      expect(row.reason).toMatch(new RegExp(`^${PAGES} of ${PAGES} pages the holder pinned are still held`));
      expect(row.observations.map((o) => o.step)).toEqual(['registered', 'killed', 'exited']);
    } finally {
      if (ring >= 0) closeSync(ring);
    }
    // Our copy was the ring's last fd: the same row now frees its pages shortly after the exit.
    const again = await exitScenario.run({ backend: 'uring', backing: 'anon', variant: null }, scenarioContext());
    expect(again.verdict, again.reason ?? '').toBe('released-at-exit');
  });
});
