// `rdmactl stat --json` end to end vs `ps -eo pid,rss,comm` with 2,000 and with 10,000 idle processes, and
// the cost each adds per 1,000 processes (the slope between the two points); `stat --by cgroup` vs
// `stat`, and the in-process scan vs `grep -h VmPin /proc/[0-9]*/status`, at the first point; all
// measured in this run.
// Usage: node bench/stat.mjs [--processes N] [--large N] [--runs R]
import { spawnSync } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { startIdle } from './idle.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

function timeCommand(argv, runs) {
  const times = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    const result = spawnSync(argv[0], argv.slice(1), { stdio: ['ignore', 'ignore', 'ignore'] });
    if (result.error) throw result.error;
    times.push(performance.now() - start);
  }
  return median(times);
}

/** ps, stat and stat --by cgroup end to end, interleaved (ps, rdmactl, rdmactl --by cgroup, ps, …) so that a change in the machine's load hits all alike. */
function endToEnd(runs) {
  const psTimes = [];
  const statTimes = [];
  const byCgroupTimes = [];
  for (let i = 0; i < runs * 2 + 1; i++) {
    psTimes.push(timeCommand(['ps', '-eo', 'pid,rss,comm'], 1));
    statTimes.push(timeCommand([process.execPath, `${root}bin/rdmactl`, 'stat', '--json'], 1));
    byCgroupTimes.push(timeCommand([process.execPath, `${root}bin/rdmactl`, 'stat', '--by', 'cgroup', '--json'], 1));
  }
  return { ps: median(psTimes), stat: median(statTimes), statByCgroup: median(byCgroupTimes) };
}

/** `stat --json` and `ps` with `large` idle processes, for the per-process slope against benchStat's figures. */
export async function benchStatLarge({ processes = 10_000, runs = 7 } = {}) {
  const idle = await startIdle(processes);
  try {
    return { processes: idle.count, ...endToEnd(runs) };
  } finally {
    await idle.stop();
  }
}

export async function benchStat({ processes = 2000, runs = 7 } = {}) {
  const { scanProcesses } = await import(`${root}dist/proc/scan.js`);
  const { collectStat } = await import(`${root}dist/observe/stat.js`);
  const { collectGroupedStat } = await import(`${root}dist/observe/cgroups.js`);
  const idle = await startIdle(processes);
  try {
    // The scan as `stat` runs it: every status file read, idle processes decided from raw bytes.
    scanProcesses({ onlyHolding: true }); // warm up
    const scanTimes = [];
    for (let i = 0; i < runs; i++) {
      const start = performance.now();
      scanProcesses({ onlyHolding: true });
      scanTimes.push(performance.now() - start);
    }
    // The same in-process, in CPU time (user + system), alternating: what grouping adds, free of start-up and load.
    const cpuMs = (fn) => {
      const start = process.cpuUsage();
      fn();
      const used = process.cpuUsage(start);
      return (used.user + used.system) / 1000;
    };
    const collectCpu = [];
    const groupedCpu = [];
    for (let i = 0; i < runs; i++) {
      collectCpu.push(cpuMs(() => collectStat()));
      groupedCpu.push(cpuMs(() => collectGroupedStat('cgroup')));
    }
    // grep's time includes its own start-up, as a shell user would pay it; the glob is expanded by bash.
    const grep = timeCommand(['bash', '-c', 'grep -h VmPin /proc/[0-9]*/status 2>/dev/null; true'], runs);
    const bashAlone = timeCommand(['bash', '-c', 'true'], runs);
    // Grouping reads /proc/PID/cgroup only for holders and mountinfo once: it should cost next to
    // nothing over stat.
    const { ps, stat, statByCgroup } = endToEnd(runs);
    return { processes: idle.count, scan: median(scanTimes), grep, bashAlone, ps, stat, statByCgroup, collectCpu: median(collectCpu), groupedCpu: median(groupedCpu) };
  } finally {
    await idle.stop();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const option = (name, fallback) => {
    const i = process.argv.indexOf(name);
    return i > 0 ? Number(process.argv[i + 1]) : fallback;
  };
  const runs = option('--runs', 7);
  const r = await benchStat({ processes: option('--processes', 2000), runs });
  const big = await benchStatLarge({ processes: option('--large', 10_000), runs });
  const mark = (met) => (met ? '' : '  ← above target');
  console.log(`stat end to end (${r.processes} idle processes): rdmactl stat --json ${r.stat.toFixed(0)} ms, ps -eo pid,rss,comm ${r.ps.toFixed(0)} ms, ratio ${(r.stat / r.ps).toFixed(2)}×`);
  console.log(`stat end to end (${big.processes} idle processes): rdmactl stat --json ${big.stat.toFixed(0)} ms, ps -eo pid,rss,comm ${big.ps.toFixed(0)} ms, ratio ${(big.stat / big.ps).toFixed(2)}× (target ≤ 1.0×)${mark(big.stat <= big.ps)}`);
  const per1000 = (big.processes - r.processes) / 1000;
  const statSlope = (big.stat - r.stat) / per1000;
  const psSlope = (big.ps - r.ps) / per1000;
  console.log(`stat per 1,000 processes (${r.processes} → ${big.processes}): rdmactl stat --json ${statSlope.toFixed(1)} ms, ps -eo pid,rss,comm ${psSlope.toFixed(1)} ms, ratio ${(statSlope / psSlope).toFixed(2)}× (target ≤ 1.0×)${mark(statSlope <= psSlope)}`);
  console.log(`grouping (${r.processes} idle processes): rdmactl stat --by cgroup --json ${r.statByCgroup.toFixed(0)} ms, rdmactl stat --json ${r.stat.toFixed(0)} ms, ratio ${(r.statByCgroup / r.stat).toFixed(2)}× (target ≤ 1.1×); in-process CPU ${r.groupedCpu.toFixed(1)} ms vs ${r.collectCpu.toFixed(1)} ms, ratio ${(r.groupedCpu / r.collectCpu).toFixed(2)}×`);
  console.log(`scan: in-process ${r.scan.toFixed(1)} ms, grep -h VmPin /proc/[0-9]*/status ${r.grep.toFixed(1)} ms (bash alone ${r.bashAlone.toFixed(1)} ms), ratio ${(r.scan / r.grep).toFixed(2)}× (target ≤ 1.3×)`);
}
