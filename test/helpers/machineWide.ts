// Machine-wide readings (/proc/vmstat FOLL_PIN counters, /proc/meminfo Mlocked) move with every other
// process on the host, including the other test files running in parallel. A check against them is
// exact only in a quiet moment, so the tests that make one rerun the measured run until a run's
// readings agree, a few times at most, and then assert on the last run: a kernel that never gives the
// pins back still fails every time.
import { readFileSync } from 'node:fs';

/**
 * The FOLL_PIN counters are per-CPU deltas folded into /proc/vmstat every vm.stat_interval: a reading
 * right after a small registration does not show it yet. Waiting one interval first makes it exact.
 */
export const STAT_SETTLE_MS = Number(readFileSync('/proc/sys/vm/stat_interval', 'utf8').trim()) * 1000 + 300;

/** Runs `measure` until `agrees(run)` or `tries` runs, and returns the last run. */
export async function untilQuiet<Run>(tries: number, measure: (attempt: number) => Promise<Run>, agrees: (run: Run) => boolean): Promise<Run> {
  let run = await measure(1);
  for (let attempt = 2; attempt <= tries && !agrees(run); attempt++) run = await measure(attempt);
  return run;
}
