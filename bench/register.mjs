// Register + release through rdmactl's engine vs a C program making the same syscalls, in the same
// run, as ratios. Also rdmactl's start time vs `node -e 0`.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';

const root = fileURLToPath(new URL('..', import.meta.url));
const { register } = await import(`${root}dist/engine/register.js`);
const { allocateBuffer } = await import(`${root}dist/engine/buffer.js`);
const { UringRegistration } = await import(`${root}dist/engine/uring.js`);
const { MlockRegistration } = await import(`${root}dist/engine/mlock.js`);

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

/** The engine's registration path: the same syscalls as regbench.c (mmap, register, release, munmap). */
function engineOnce(backend, bytes) {
  const start = performance.now();
  const buffer = allocateBuffer({ length: bytes, backing: 'anon' });
  const registration = backend === 'uring' ? new UringRegistration(buffer) : new MlockRegistration(buffer);
  registration.close();
  buffer.close();
  return (performance.now() - start) * 1000;
}

/** The whole `register()` call, which also reads RLIMIT_MEMLOCK and /proc/self/status before and after. */
async function registerOnce(backend, bytes) {
  const start = performance.now();
  const set = await register({ length: bytes, backend });
  set.close();
  return (performance.now() - start) * 1000;
}

function compileBaseline() {
  const dir = mkdtempSync(join(tmpdir(), 'rdmactl-bench-'));
  const binary = join(dir, 'regbench');
  try {
    execFileSync('cc', ['-O2', '-o', binary, `${root}bench/regbench.c`], { stdio: 'pipe' });
    return { binary, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    console.log(`register: SKIPPED the C baseline: cannot compile bench/regbench.c (${err.message.split('\n')[0]}); install gcc`);
    return null;
  }
}

function startMillis(argv, runs = 15) {
  const times = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    const result = spawnSync(argv[0], argv.slice(1), { stdio: 'ignore' });
    if (result.status !== 0) throw new Error(`${argv.join(' ')} failed`);
    times.push(performance.now() - start);
  }
  return median(times);
}

const baseline = compileBaseline();
const cases = [
  ['uring', 4096, 200, 1.5],
  ['mlock', 4096, 200, 2.0],
  ['uring', 1024 ** 3, 7, 1.05],
  ['mlock', 1024 ** 3, 7, 1.05],
];
for (const [backend, bytes, iterations, target] of cases) {
  const label = `${backend} ${bytes === 4096 ? '4 KiB' : '1 GiB'}`;
  for (let i = 0; i < 20; i++) engineOnce(backend, 4096); // warm up JIT and koffi
  // Interleave rdmactl and C so both see the same machine state (page zeroing dominates at 1 GiB).
  const ours = [];
  const theirs = [];
  const full = [];
  const rounds = bytes === 4096 ? 5 : iterations;
  const perRound = bytes === 4096 ? iterations / rounds : 1;
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < perRound; i++) ours.push(engineOnce(backend, bytes));
    if (bytes === 4096) for (let i = 0; i < perRound; i++) full.push(await registerOnce(backend, bytes));
    if (baseline) theirs.push(Number(execFileSync(baseline.binary, [backend, String(bytes), String(perRound)], { encoding: 'utf8' }).trim()));
  }
  const oursMedian = median(ours);
  const extra = full.length ? `; whole register() with /proc accounting ${median(full).toFixed(1)} µs` : '';
  if (!baseline) {
    console.log(`register+release ${label}: rdmactl ${oursMedian.toFixed(1)} µs (no C baseline)${extra}`);
    continue;
  }
  const ratio = oursMedian / median(theirs);
  console.log(`register+release ${label}: rdmactl ${oursMedian.toFixed(1)} µs, C ${median(theirs).toFixed(1)} µs, ratio ${ratio.toFixed(2)}× (target ≤ ${target}×)${ratio <= target ? '' : '  ← above target'}${extra}`);
}
baseline?.cleanup();

// Interleaved (node, rdmactl, node, …) so that a change in the machine's load hits both alike.
const startTimes = { node: [], rdmactl: [] };
for (let i = 0; i < 21; i++) {
  startTimes.node.push(startMillis([process.execPath, '-e', '0'], 1));
  startTimes.rdmactl.push(startMillis([process.execPath, `${root}bin/rdmactl`, '--version'], 1));
}
const nodeStart = median(startTimes.node);
const ourStart = median(startTimes.rdmactl);
const startRatio = ourStart / nodeStart;
console.log(`start: rdmactl --version ${ourStart.toFixed(0)} ms, node -e 0 ${nodeStart.toFixed(0)} ms, ratio ${startRatio.toFixed(2)}× (target ≤ 1.25×)${startRatio <= 1.25 ? '' : '  ← above target'}`);
