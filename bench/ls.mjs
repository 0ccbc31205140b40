// Per-holder cost of `rdmactl ls`: the registration scan (io_uring and mlock sources, in process,
// median of runs) with no extra holders and with N processes each pinning 1 MiB (bench/holder.c, an
// io_uring fixed buffer), against the kernel's cost of producing the files ls reads for those holders
// (`cat` of /proc/PID/{status,smaps,fdinfo/RING}), all measured in this run.
// Usage: node bench/ls.mjs [--holders N]
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
export const LS_FILES = ['status', 'smaps'];

/** Starts `count` holders (children of this process); resolves when each has pinned its buffer. */
async function startHolders(binary, count) {
  const holders = [];
  const stop = () => Promise.all(holders.map(({ child }) => new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', resolve);
    child.kill('SIGKILL');
  })));
  try {
    for (let i = 0; i < count; i++) {
      const child = spawn(binary, [String(1 << 20)], { stdio: ['ignore', 'pipe', 'inherit'] });
      holders.push({ child, ring: await new Promise((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (d) => { out += d; const m = /ready (\d+)/.exec(out); if (m) resolve(Number(m[1])); });
        child.once('exit', (code) => reject(new Error(`holder exited (${code}) before pinning: is io_uring allowed?`)));
      }) });
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { pids: holders.map((h) => ({ pid: h.child.pid, ring: h.ring })), stop };
}

function timeScan(collectRegistrations, runs) {
  collectRegistrations({ sources: ['io_uring', 'mlock'] }); // warm up
  const times = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    collectRegistrations({ sources: ['io_uring', 'mlock'] });
    times.push(performance.now() - start);
  }
  return median(times);
}

function timeCat(paths, runs) {
  const times = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    const r = spawnSync('cat', paths, { stdio: ['ignore', 'ignore', 'ignore'] });
    if (r.error) throw r.error;
    times.push(performance.now() - start);
  }
  return median(times);
}

export async function benchLs({ holders = 200, runs = 15 } = {}) {
  const { collectRegistrations } = await import(`${root}dist/observe/registrations.js`);
  const dir = mkdtempSync(join(tmpdir(), 'rdmactl-bench-'));
  try {
    const binary = join(dir, 'holder');
    execFileSync('cc', ['-O2', '-o', binary, `${root}bench/holder.c`], { stdio: 'pipe' });
    const catNothing = timeCat(['/dev/null'], runs);
    const scanBefore = timeScan(collectRegistrations, runs);
    const started = await startHolders(binary, holders);
    try {
      const files = started.pids.flatMap(({ pid, ring }) => [...LS_FILES.map((f) => `/proc/${pid}/${f}`), `/proc/${pid}/fdinfo/${ring}`]);
      const found = collectRegistrations({ sources: ['io_uring'] }).registrations.filter((r) => started.pids.some((h) => h.pid === r.pid)).length;
      if (found !== holders) throw new Error(`ls found ${found} of ${holders} holders' registrations`);
      const scanAfter = timeScan(collectRegistrations, runs);
      const catFiles = timeCat(files, runs);
      return { holders, scanBefore, scanAfter, catNothing, catFiles, perHolder: (scanAfter - scanBefore) / holders, kernelPerHolder: (catFiles - catNothing) / holders };
    } finally {
      await started.stop();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const arg = process.argv.indexOf('--holders');
  const r = await benchLs({ holders: arg > 0 ? Number(process.argv[arg + 1]) : 200 });
  console.log(`ls scan: ${r.scanBefore.toFixed(1)} ms without holders, ${r.scanAfter.toFixed(1)} ms with ${r.holders} holders pinning 1 MiB each`);
  console.log(`ls per holder: ${(r.perHolder * 1000).toFixed(0)} µs, kernel (cat of /proc/PID/{${LS_FILES.join(',')},fdinfo/RING}) ${(r.kernelPerHolder * 1000).toFixed(0)} µs, ratio ${(r.perHolder / r.kernelPerHolder).toFixed(2)}× (target ≤ 1.5×)`);
}
