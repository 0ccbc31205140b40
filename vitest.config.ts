import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'test/**/*.test.tsx'],
    exclude: ['test/lab/**', 'node_modules/**'],
    // Tests pin and lock real memory and fork real processes: keep files from racing each other
    // over per-user accounting (io_uring charges the uid).
    fileParallelism: false,
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
