// Two builds of `rdmactl exporter` side by side, for changes whose effect is smaller than the
// machine's load swings: both run at the same time against the same 20 holders and 2,000 processes,
// scraped alternately, so both see the same load; compare the two figures of one run.
//   1. CPU at a 15 s scrape interval (each exporter's utime+stime over the window);
//   2. RSS after 100 and after N back-to-back scrapes (the server in a child, result sharing off).
// Usage: node bench/exporter-ab.mjs --baseline DIR [--seconds S] [--scrapes N] [--processes N]
//   DIR: another built checkout of rdmactl (its bin/ and dist/), e.g. a `git worktree` of main.
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { cpuTicks, exporterChildSource, httpGetter, procCount, rssKb, start, startBenchWorld, stop } from './children.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1] : fallback;
};
const baselineArg = option('--baseline', null);
if (baselineArg === null) {
  console.error('usage: node bench/exporter-ab.mjs --baseline DIR [--seconds S] [--scrapes N] [--processes N]');
  process.exit(2);
}
const BASELINE = resolve(baselineArg) + '/';
const SECONDS = Number(option('--seconds', 180));
const SCRAPES = Number(option('--scrapes', 10_000));
const PROCESSES = Number(option('--processes', 2000));
const HOLDERS = 20;
const INTERVAL_MS = 15_000;
for (const root of [ROOT, BASELINE]) {
  if (!existsSync(`${root}dist/main.js`)) {
    console.error(`bench/exporter-ab: ${root}dist/ is missing: run \`npm run build\` there first`);
    process.exit(1);
  }
}
const TICKS = 100;
const load = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

const get = httpGetter(2);
const names = { [BASELINE]: 'baseline', [ROOT]: 'this checkout' };
const world = await startBenchWorld(`${ROOT}bin/rdmactl`, { holders: HOLDERS, processes: PROCESSES });
try {
  console.log(`exporter A/B: ${procCount()} processes, ${HOLDERS} holders; load average at start ${load()}`);

  const exporters = [];
  for (const root of [BASELINE, ROOT]) {
    const e = await start([process.execPath, `${root}bin/rdmactl`, 'exporter', '--listen', '127.0.0.1:0'], (out) => /serving (\S+)/.exec(out)?.[1]);
    world.own(e.child);
    exporters.push({ root, url: e.value, child: e.child, pid: e.child.pid, full: 0 });
  }
  // Warm-up as bench/exporter.mjs does (JIT, first full read), then the 15 s interval.
  for (let i = 0; i < 30; i++) for (const e of exporters) await get(e.url);
  await sleep(300);
  const before = exporters.map((e) => cpuTicks(e.pid));
  const started = performance.now();
  let round = 0;
  while (performance.now() - started < SECONDS * 1000) {
    const order = round++ % 2 === 0 ? exporters : [...exporters].reverse();
    for (const e of order) if (/^rdmactl_scrape_full_scan 1$/m.test(await get(e.url))) e.full++;
    await sleep(Math.min(INTERVAL_MS, SECONDS * 1000 - (performance.now() - started)));
  }
  const elapsed = (performance.now() - started) / 1000;
  exporters.forEach((e, i) => {
    const percent = (100 * (cpuTicks(e.pid) - before[i])) / TICKS / elapsed;
    console.log(`  CPU at a 15 s interval over ${elapsed.toFixed(0)} s, ${names[e.root]}: ${percent.toFixed(3)} % of one core (${e.full} of ${round} scrapes full reads)`);
  });
  for (const e of exporters) await stop(e.child);

  const servers = [];
  for (const root of [BASELINE, ROOT]) {
    const s = await start([process.execPath, '--input-type=module', '-e', exporterChildSource(root)], (out) => /port (\d+)/.exec(out)?.[1]);
    world.own(s.child);
    servers.push({ root, url: `http://127.0.0.1:${s.value}/metrics`, pid: s.child.pid });
  }
  for (let i = 0; i < 100; i++) for (const s of servers) await get(s.url);
  await sleep(500);
  const after100 = servers.map((s) => rssKb(s.pid));
  const t0 = performance.now();
  for (let i = 100; i < SCRAPES; i++) for (const s of servers) await get(s.url);
  const seconds = (performance.now() - t0) / 1000;
  await sleep(500);
  servers.forEach((s, i) => {
    const after = rssKb(s.pid);
    console.log(`  RSS, ${names[s.root]}: ${(after100[i] / 1024).toFixed(1)} MiB after 100 scrapes, ${(after / 1024).toFixed(1)} MiB after ${SCRAPES} (${((after - after100[i]) / 1024).toFixed(1)} MiB growth)`);
  });
  console.log(`  (${((SCRAPES - 100) / seconds).toFixed(1)} scrape pairs/s); load average at the end ${load()}`);
} finally {
  await world.cleanup();
}
