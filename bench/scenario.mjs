// Times `rdmactl scenario all` (every scenario's default rows) in-process on this host (needs a
// build: npm run build). Usage: node bench/scenario.mjs   prints: scenario all: N ms, R rows (target ≤ 2000 ms)
//        import { benchScenarioAll } from './scenario.mjs'   → { ms, rows }

import { spawnSync } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const TARGET_MS = 2000;

/** Run every scenario once (after one warm-up run that loads the native libraries) and time it. */
export async function benchScenarioAll({ warmup = true } = {}) {
  const { SCENARIOS } = await import('../dist/scenario/registry.js');
  const { runScenarios } = await import('../dist/scenario/engine.js');
  const { pageSize } = await import('../dist/proc/pagemap.js');
  const plans = SCENARIOS.map((definition) => ({ definition, cases: [...definition.defaultCases] }));
  const options = { length: 4 * pageSize(), verbsAccess: 0, stepDelayMs: 0 };
  if (warmup) await runScenarios(plans, options);
  const started = performance.now();
  const report = await runScenarios(plans, options);
  const ms = performance.now() - started;
  return { ms, rows: report.rows.length };
}

/** The whole command as a user runs it (`rdmactl scenario all --json`): start-up, watchdog, every row. */
export function benchScenarioCli() {
  const bin = fileURLToPath(new URL('../bin/rdmactl', import.meta.url));
  const started = performance.now();
  const result = spawnSync(process.execPath, [bin, 'scenario', 'all', '--json'], { encoding: 'utf8' });
  const ms = performance.now() - started;
  if (result.status !== 0) throw new Error(`rdmactl scenario all exited ${result.status}: ${result.stderr}`);
  return { ms };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { ms, rows } = await benchScenarioAll();
  console.log(`scenario all: ${Math.round(ms)} ms, ${rows} rows (target ≤ ${TARGET_MS} ms)`);
  const cli = benchScenarioCli();
  console.log(`rdmactl scenario all --json (the whole command): ${Math.round(cli.ms)} ms`);
}
