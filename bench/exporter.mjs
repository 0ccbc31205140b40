// `rdmactl exporter` against node_exporter's own /metrics on the same machine, with 2,000 processes
// of which 20 pin or lock memory, all measured in this run:
//   1. scrape latency (median) and CPU per scrape (utime+stime of the server process over N scrapes),
//      rdmactl vs node_exporter with its default collectors; scrapes 250 ms apart, so none is served
//      from another's result;
//   2. RSS of the exporter after 100 and after 10,000 scrapes (the real server and collector in a
//      child process, result sharing off, so every scrape collects);
//   3. CPU of `rdmactl exporter` over 5 minutes at a 15 s scrape interval, after two scrapes at that
//      interval (the window then holds the full read a quiet machine gets every 5 minutes).
// Usage: node bench/exporter.mjs [--quick] [--processes N]
import { spawnSync } from 'node:child_process';
import { readFileSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { cpuTicks, exporterChildSource, httpGetter, procCount, rssKb, start, startBenchWorld, stop } from './children.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = `${ROOT}bin/rdmactl`;
const args = process.argv.slice(2);
const quick = args.includes('--quick');
const option = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] !== undefined ? Number(args[i + 1]) : fallback;
};
const PROCESSES = option('--processes', quick ? 500 : 2000);
const HOLDERS = 20;
const LATENCY_SCRAPES = quick ? 20 : 60;
const RSS_SCRAPES = quick ? 1000 : 10_000;
// One quiet-machine full-read period (EXPORTER_QUIET_FULL_SCAN_EVERY_MS, 5 min), so the window holds the
// full read a machine where nothing pins still makes.
const CPU_SECONDS = quick ? 30 : 300;
// Scrapes at the 15 s cadence before the window opens: the latency series above (4 scrapes a second)
// leaves GC and JIT work behind that a Prometheus-scraped exporter never has.
const SETTLE_SCRAPES = quick ? 0 : 2;
const INTERVAL_MS = 15_000;
const TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

if (!existsSync(`${ROOT}dist/main.js`)) {
  console.error('bench/exporter: dist/ is missing: run `npm run build` first');
  process.exit(1);
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

const get = httpGetter(1);

/** N scrapes 250 ms apart: median latency and CPU ticks of `pid` per scrape. */
async function scrapeSeries(url, pid, count, onBody = () => {}) {
  // Warm-up: the first full scan, and the JIT compiling the hot paths (its threads' CPU would
  // otherwise be charged to the first scrapes measured).
  for (let i = 0; i < 30; i++) await get(url);
  await sleep(300);
  const times = [];
  const before = cpuTicks(pid);
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    onBody(await get(url));
    times.push(performance.now() - t0);
    await sleep(250);
  }
  const ticks = cpuTicks(pid) - before;
  return { latencyMs: median(times), cpuMsPerScrape: (ticks * 1000) / TICKS / count };
}

// 20 holders: 10 io_uring buffers (pinned) and 10 mlocked ranges, each a real `rdmactl reg`.
const world = await startBenchWorld(BIN, { holders: HOLDERS, processes: PROCESSES });
try {
  const processes = procCount();

  const exporter = await start([process.execPath, BIN, 'exporter', '--listen', '127.0.0.1:0'], (out) => /serving (\S+)/.exec(out)?.[1]);
  world.own(exporter.child);
  let fullScans = 0;
  const rdmactl = await scrapeSeries(exporter.value, exporter.child.pid, LATENCY_SCRAPES, (body) => { if (/^rdmactl_scrape_full_scan 1$/m.test(body)) fullScans++; });

  let nodeExporter = null;
  const noNodeExporter = spawnSync('prometheus-node-exporter', ['--version']).error;
  if (noNodeExporter) {
    console.log('exporter: SKIPPED the node_exporter comparison: prometheus-node-exporter is not installed');
  } else {
    const port = await freePort();
    const ne = await start(['prometheus-node-exporter', `--web.listen-address=127.0.0.1:${port}`], (out) => (out.includes('Listening on') ? true : undefined));
    world.own(ne.child);
    nodeExporter = await scrapeSeries(`http://127.0.0.1:${port}/metrics`, ne.child.pid, LATENCY_SCRAPES);
    await stop(ne.child);
  }

  console.log(`exporter scrape (${processes} processes, ${HOLDERS} holders, ${LATENCY_SCRAPES} scrapes 250 ms apart, ${fullScans} of them full scans):`);
  console.log(`  latency: rdmactl ${rdmactl.latencyMs.toFixed(1)} ms${nodeExporter ? `, node_exporter ${nodeExporter.latencyMs.toFixed(1)} ms, ratio ${(rdmactl.latencyMs / nodeExporter.latencyMs).toFixed(2)}× (target ≤ 1.0×)` : ''}`);
  console.log(`  CPU per scrape: rdmactl ${rdmactl.cpuMsPerScrape.toFixed(1)} ms${nodeExporter ? `, node_exporter ${nodeExporter.cpuMsPerScrape.toFixed(1)} ms, ratio ${(rdmactl.cpuMsPerScrape / nodeExporter.cpuMsPerScrape).toFixed(2)}× (target ≤ 1.0×)` : ''}`);

  // CPU at a 15 s interval: the real command, scraped as Prometheus would. Each scrape's CPU is
  // also taken apart by kind (a full read or not, from the exposition itself), since how many
  // scrapes are full reads depends on whether anything on the machine pinned or unpinned meanwhile.
  for (let i = 0; i < SETTLE_SCRAPES; i++) {
    await get(exporter.value);
    await sleep(INTERVAL_MS);
  }
  const kinds = { full: { scrapes: 0, ticks: 0 }, incremental: { scrapes: 0, ticks: 0 } };
  const cpuBefore = cpuTicks(exporter.child.pid);
  const started = performance.now();
  while (performance.now() - started < CPU_SECONDS * 1000) {
    const t0 = cpuTicks(exporter.child.pid);
    const body = await get(exporter.value);
    const kind = /^rdmactl_scrape_full_scan 1$/m.test(body) ? kinds.full : kinds.incremental;
    kind.scrapes++;
    kind.ticks += cpuTicks(exporter.child.pid) - t0;
    await sleep(Math.min(INTERVAL_MS, CPU_SECONDS * 1000 - (performance.now() - started)));
  }
  const elapsed = (performance.now() - started) / 1000;
  const totalTicks = cpuTicks(exporter.child.pid) - cpuBefore;
  const cpuPercent = (100 * totalTicks) / TICKS / elapsed;
  const msPer = (k) => (k.scrapes > 0 ? (k.ticks * 1000) / TICKS / k.scrapes : null);
  const fmt = (v) => (v === null ? '–' : `${v.toFixed(0)} ms`);
  console.log(`  CPU at a 15 s scrape interval over ${CPU_SECONDS} s: ${cpuPercent.toFixed(3)} % of one core (target ≤ 0.2 %); load average ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
  console.log(`    ${kinds.full.scrapes} full reads (${fmt(msPer(kinds.full))} CPU each), ${kinds.incremental.scrapes} incremental (${fmt(msPer(kinds.incremental))} each), ${(((totalTicks - kinds.full.ticks - kinds.incremental.ticks) * 1000) / TICKS).toFixed(0)} ms between scrapes`);
  const full = msPer(kinds.full);
  const incremental = msPer(kinds.incremental);
  if (full !== null && incremental !== null) {
    // On a machine where nothing else pins or locks: one full read per 5 min, the other scrapes incremental.
    const perFiveMinutes = full + (300_000 / INTERVAL_MS - 1) * incremental + (((totalTicks - kinds.full.ticks - kinds.incremental.ticks) * 1000) / TICKS) * (300 / elapsed);
    console.log(`    with one full read per 5 min (nothing else pinning or locking), these costs give ${(perFiveMinutes / 3000).toFixed(3)} % of one core`);
  }
  await stop(exporter.child);

  // RSS: every scrape collects (sharing off), back to back.
  const rssChild = await start([process.execPath, '--input-type=module', '-e', exporterChildSource(ROOT)], (out) => /port (\d+)/.exec(out)?.[1]);
  world.own(rssChild.child);
  const rssUrl = `http://127.0.0.1:${rssChild.value}/metrics`;
  for (let i = 0; i < 100; i++) await get(rssUrl);
  await sleep(500);
  const after100 = rssKb(rssChild.child.pid);
  const t0 = performance.now();
  for (let i = 100; i < RSS_SCRAPES; i++) await get(rssUrl);
  const seconds = (performance.now() - t0) / 1000;
  await sleep(500);
  const afterAll = rssKb(rssChild.child.pid);
  console.log(`  RSS: ${(after100 / 1024).toFixed(1)} MiB after 100 scrapes, ${(afterAll / 1024).toFixed(1)} MiB after ${RSS_SCRAPES} (${((afterAll - after100) / 1024).toFixed(1)} MiB growth, target ≤ 5 MiB; ${((RSS_SCRAPES - 100) / seconds).toFixed(0)} scrapes/s)`);
} finally {
  await world.cleanup();
}
