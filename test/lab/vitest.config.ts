// Vitest config for the suite that runs inside the Soft-RoCE lab VM (npm run test:lab).
// The guest sees this checkout read-only: everything vitest/vite would write goes to /tmp (tmpfs).
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const tmp = process.env.TMPDIR || '/tmp';

export default defineConfig({
  root: fileURLToPath(new URL('../..', import.meta.url)),
  cacheDir: `${tmp}/rdmactl-lab-vite`,
  test: {
    include: ['test/lab/**/*.test.ts'],
    // One VM, 2 vCPUs under emulation, tests that pin memory and watch per-process counters:
    // run files one after another in a single forked worker.
    pool: 'forks',
    fileParallelism: false,
    maxWorkers: 1,
    // TCG runs code ~10x slower than the host.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    reporters: ['default'],
    watch: false,
  },
});
