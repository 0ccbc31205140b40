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

/**
 * A process of the test's own that keeps changing its locked memory, as another user's program on a
 * shared machine does: every ~2 ms it mlocks the next 64 KiB of a 512 MiB arena (meminfo Mlocked
 * grows ~30 MiB/s) and munlocks all of it when the arena is full (every ~16 s). A verdict read from
 * machine-wide Mlocked cannot see a 16 KiB release under that. stop() SIGKILLs and reaps it: its
 * locks go with its address space.
 */
export async function startLockChurn(): Promise<{ pid: number; stop: () => Promise<void> }> {
  const script = `
    const koffi = require('koffi');
    const libc = koffi.load('libc.so.6');
    const mmap = libc.func('uint64_t mmap(uint64_t addr, size_t len, int prot, int flags, int fd, long off)');
    const mlock = libc.func('int mlock(uint64_t addr, size_t len)');
    const munlock = libc.func('int munlock(uint64_t addr, size_t len)');
    const MiB = 1024 * 1024, arenaBytes = 512 * MiB, step = 64 * 1024;
    const arena = BigInt(mmap(0, arenaBytes, 3, 0x22 | 0x4000, -1, 0));
    let next = 0;
    mlock(arena, step);
    next = step;
    process.stdout.write('locking\\n');
    setInterval(() => {
      if (next >= arenaBytes) { munlock(arena, arenaBytes); next = 0; }
      mlock(arena + BigInt(next), step);
      next += step;
    }, 2);
  `;
  const { spawn } = await import('node:child_process');
  const { fileURLToPath } = await import('node:url');
  const child = spawn(process.execPath, ['-e', script], { cwd: fileURLToPath(new URL('../..', import.meta.url)), stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`the lock churn process exited (${code}) before it started`)));
  });
  return { pid: child.pid!, stop: async () => { child.kill('SIGKILL'); await exited; } };
}
