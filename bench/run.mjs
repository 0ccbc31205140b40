// `npm run bench`: every benchmark, each printing ratios against a baseline measured in this run.
// Pass --quick for a shorter run (fewer processes, shorter top measurement).
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const quick = process.argv.includes('--quick');
const scripts = [
  ['register.mjs'],
  ['fork.mjs'],
  ['scenario.mjs'],
  ['stat.mjs', ...(quick ? ['--runs', '3'] : [])],
  ['ls.mjs', ...(quick ? ['--holders', '50'] : [])],
  ['ls-mr.mjs'],
  ['top.mjs', ...(quick ? ['--quick'] : [])],
  ['exporter.mjs', ...(quick ? ['--quick'] : [])],
  ['trace.mjs'],
];
let failed = 0;
for (const [script, ...args] of scripts) {
  const result = spawnSync(process.execPath, [`${root}bench/${script}`, ...args], { stdio: 'inherit' });
  if (result.status !== 0) {
    failed++;
    console.log(`${script}: exited with ${result.status ?? result.signal}`);
  }
}
process.exitCode = failed > 0 ? 1 : 0;
