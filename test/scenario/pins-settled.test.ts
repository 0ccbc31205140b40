// A step's pinsOutstanding (/proc/vmstat, machine-wide) is read after the kernel folded the per-CPU
// deltas in, so a small registration shows at the step that made it, not a second later. The test's
// own readings are folded too (pinsOutstanding).
import { beforeAll, describe, expect, it } from 'vitest';
import { untilQuiet } from '../helpers/machineWide.js';
import { BIN, builtOrThrow, runSync } from '../helpers/spawn.js';
import { pinsOutstanding } from './helpers.js';

beforeAll(() => builtOrThrow());

describe('scenario --json: pinsOutstanding of a step', { timeout: 120_000 }, () => {
  it('munmap --backend uring --size 16K: the registered step shows the row\'s 4 pinned pages, the released step has them back', async () => {
    // Other processes pin too: rerun until the machine is back where it was after the row.
    const run = await untilQuiet(5, async () => {
      const before = pinsOutstanding();
      const result = runSync([process.execPath, BIN, 'scenario', 'munmap', '--backend', 'uring', '--backing', 'anon', '--size', '16K', '--json']);
      const after = pinsOutstanding();
      const row = (JSON.parse(result.stdout) as { rows: Array<{ observations: Array<{ step: string; pinsOutstanding: number | null; pinnedBytes: number | null }> }> }).rows[0]!;
      return { before, after, result, steps: Object.fromEntries(row.observations.map((o) => [o.step, o])) };
    }, (r) => r.before === r.after && r.steps['released']?.pinsOutstanding === r.before);
    const { before, steps } = run;
    if (before === null) return console.warn('skipped: this kernel has no nr_foll_pin_* counters');
    expect(steps['registered']!.pinnedBytes).toBe(16384);
    expect(steps['registered']!.pinsOutstanding! - before, JSON.stringify({ before, steps })).toBeGreaterThanOrEqual(4);
    expect(steps['released']!.pinsOutstanding).toBe(before);
  });
});
