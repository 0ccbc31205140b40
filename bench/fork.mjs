// Times `rdmactl fork`'s full default matrix in-process (needs a build: npm run build).
// Usage: node bench/fork.mjs            prints: fork default matrix: N ms (target ≤ 2000 ms)
//        import { benchForkMatrix } from './fork.mjs'   → { ms, rows }

import { pathToFileURL } from 'node:url';

export const TARGET_MS = 2000;

/** Run the default matrix once (after one warm-up run that loads the native libraries) and time it. */
export async function benchForkMatrix({ warmup = true } = {}) {
  const { DEFAULT_MATRIX, runMatrix } = await import('../dist/fork/scenario.js');
  const { pageSize } = await import('../dist/proc/pagemap.js');
  const options = { length: 4 * pageSize() };
  if (warmup) await runMatrix(DEFAULT_MATRIX, options);
  const started = performance.now();
  const report = await runMatrix(DEFAULT_MATRIX, options);
  const ms = performance.now() - started;
  return { ms, rows: report.scenarios.length };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { ms } = await benchForkMatrix();
  console.log(`fork default matrix: ${Math.round(ms)} ms (target ≤ ${TARGET_MS} ms)`);
}
