// SIGINT/SIGTERM in the middle of a scenario row: the real binary exits 130/143 with nothing left
// (no children, no pins); and in-process, an interrupt right after munmap or after the new mapping
// releases the registration without touching the unmapped address or leaving the new mapping behind.
import { spawn } from 'node:child_process';
import { beforeAll, describe, expect, it } from 'vitest';
import { BIN, builtOrThrow, exited } from '../helpers/spawn.js';
import { childrenOf, exists, isPausedChildOf, isWatchdog, sleep } from '../fork/helpers.js';
import { runRow } from '../../src/scenario/engine.js';
import { probeScenarioEnvironment } from '../../src/scenario/environment.js';
import { munmapScenario } from '../../src/scenario/scenarios/munmap.js';
import { STAT_SETTLE_MS, untilQuiet } from '../helpers/machineWide.js';
import { accounting, memBytes, pinsOutstanding } from './helpers.js';

beforeAll(() => builtOrThrow());

/** VmPin of `pid` in bytes, or null once it is gone. */
function vmPinOf(pid: number): number | null {
  try {
    return accounting(pid).pin;
  } catch {
    return null;
  }
}

async function until<T>(what: string, probe: () => T | null | undefined, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = probe();
    if (value !== null && value !== undefined) return value;
    await sleep(10);
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('rdmactl scenario interrupted (real process)', { timeout: 60_000 }, () => {
  it.each([['SIGINT', 130], ['SIGTERM', 143]] as const)('munmap --backend uring, %s while the range is pinned: exit %i, pins released', async (signal, code) => {
    // vmstat is machine-wide and others pin too: up to three runs for a quiet reading.
    const run = await untilQuiet(3, async () => {
      await sleep(STAT_SETTLE_MS);
      const before = pinsOutstanding();
      const child = spawn(process.execPath, [BIN, 'scenario', 'munmap', '--backend', 'uring', '--step-delay', '5000'], { stdio: 'pipe' });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
      const pid = child.pid!;
      const pinned = await until('the row to pin its buffer', () => ((vmPinOf(pid) ?? 0) > 0 ? vmPinOf(pid) : null));
      child.kill(signal);
      const result = await exited(child);
      const leftChildren = childrenOf(pid);
      await sleep(STAT_SETTLE_MS);
      return { pinned, result, stderr, leftChildren, before, after: pinsOutstanding() };
    }, (r) => r.before === null || r.after === null || r.after === r.before);
    expect(run.pinned).toBe(16384);
    expect(run.result, run.stderr).toEqual({ code, signal: null });
    expect(run.stderr).toMatch(new RegExp(`interrupted by ${signal}`));
    expect(run.stderr.trim().split('\n')).toHaveLength(1); // one line, no stack trace
    expect(run.leftChildren).toEqual([]);
    if (run.before === null || run.after === null) console.warn('skipped the /proc/vmstat check: this kernel has no nr_foll_pin_acquired/released');
    else expect(run.after - run.before).toBe(0);
  });

  it('scenario fork, SIGTERM with its paused child alive: exit 143, child and watchdog killed and reaped', async () => {
    const child = spawn(process.execPath, [BIN, 'scenario', 'fork', '--backend', 'uring', '--step-delay', '5000'], { stdio: 'pipe' });
    const pid = child.pid!;
    const kids = await until('a paused child', () => {
      const found = childrenOf(pid).filter((kid) => isPausedChildOf(kid, pid));
      return found.length > 0 ? found : null;
    });
    await sleep(100);
    const watchdogs = childrenOf(pid).filter(isWatchdog);
    expect(watchdogs).toHaveLength(1);
    child.kill('SIGTERM');
    expect(await exited(child)).toEqual({ code: 143, signal: null });
    for (const kid of [...kids, ...watchdogs]) expect(exists(kid)).toBe(false);
    expect(childrenOf(pid)).toEqual([]);
  });
});

describe('interrupted in-process after munmap', () => {
  it.each(['munmap', 'remapped'])('at %s: InterruptedError, VmPin back, the address left with nothing mapped', async (at) => {
    const env = await probeScenarioEnvironment(false);
    const controller = new AbortController();
    const before = accounting();
    let addr: bigint | null = null;
    const run = runRow(munmapScenario, { backend: 'uring', backing: 'anon', variant: null }, {
      length: 16384, env, verbsAccess: 0, stepDelayMs: 0, signal: controller.signal,
      onStep: (step, target) => {
        addr = target.addr;
        if (step === at) controller.abort('SIGINT');
      },
    });
    await expect(run).rejects.toMatchObject({ name: 'InterruptedError', exitCode: 130 });
    expect(accounting()).toEqual(before);
    expect(addr).not.toBeNull();
    // Neither the old range nor the new mapping at its address is left behind.
    expect(memBytes(addr!, 16384)).toBeNull();
  });
});
