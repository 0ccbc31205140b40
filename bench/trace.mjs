// rdmactl trace: what tracing costs the traced program, and what rdmactl itself costs while tracing.
//   1. A C loop of io_uring register+unregister (test/trace/helpers/regloop.c, as fast as it goes) of
//      a 1 MiB buffer (an MR-sized registration) and of a 4 KiB one (the cheapest there is, the worst
//      case for a tracer): registrations per second with `trace --summary -p PID` and with
//      `trace --json` (every process, to /dev/null), as a ratio of the untraced loop's rate in the
//      same round (target ≥ 0.9); and the time inside each register+unregister of 1 MiB when the
//      program registers 1,000 times a second, traced and not (what a real program pays per call).
//   2. rdmactl's CPU (utime+stime from /proc/PID/stat) while it prints ~1,000 events/s (500
//      register+unregister pairs a second), over 5 s once it is warm (target ≤ 5 % of a core).
// Needs root and tracefs; says why and exits 0 without them.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const bin = join(root, 'bin/rdmactl');
const { tracefsFacts, tracefsProblem } = await import(`${root}dist/trace/tracefs.js`);

const problem = process.getuid() !== 0 ? 'needs root' : tracefsProblem(tracefsFacts(), 0)?.message;
if (problem) {
  console.log(`trace: SKIPPED: ${problem}`);
  process.exit(0);
}
const dir = mkdtempSync(join(tmpdir(), 'rdmactl-bench-trace-'));
const loopBin = join(dir, 'regloop');
try {
  execFileSync('cc', ['-O2', '-o', loopBin, join(root, 'test/trace/helpers/regloop.c')], { stdio: 'pipe' });
} catch (err) {
  console.log(`trace: SKIPPED: cannot compile regloop.c (${err.message.split('\n')[0]}); install gcc`);
  rmSync(dir, { recursive: true, force: true });
  process.exit(0);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

function startLoop(rate, seconds, bytes = 4096) {
  const child = spawn(loopBin, [String(rate), String(seconds), String(bytes)], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  const done = new Promise((resolve) => child.once('exit', () => resolve(out.trim().split(' ').map(Number))));
  return { child, go: () => child.stdin.write('go\n'), done };
}

async function startTrace(args, stdout = 'pipe') {
  const child = spawn(process.execPath, [bin, 'trace', ...args], { stdio: ['ignore', stdout, 'pipe'] });
  let err = '';
  child.stderr.on('data', (d) => { err += d; });
  while (!/tracing /.test(err)) {
    if (child.exitCode !== null) throw new Error(`trace exited: ${err}`);
    await sleep(20);
  }
  return { child, stop: async () => { child.kill('SIGINT'); await new Promise((r) => child.once('exit', r)); } };
}

/** µs per register+unregister of `iterations` as fast as the loop goes (its rate is never the limit). */
async function loopMicros(traceArgs, bytes, iterations) {
  const loop = startLoop(1e9, iterations / 1e9, bytes);
  const trace = traceArgs ? await startTrace(traceArgs(loop.child.pid), traceArgs.stdout) : null;
  loop.go();
  const [ok, seconds] = await loop.done;
  await trace?.stop();
  return (seconds * 1e6) / ok;
}

function cpuTicks(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

try {
  const devNull = openSync('/dev/null', 'w');
  const TARGET_RATE_RATIO = 0.9;
  for (const [label, bytes, iterations] of [['1 MiB', 1 << 20, 50_000], ['4 KiB', 4096, 500_000]]) {
    const plain = [];
    const filtered = [];
    const everything = [];
    for (let round = 0; round < 5; round++) {
      plain.push(await loopMicros(null, bytes, iterations));
      filtered.push(await loopMicros(Object.assign((pid) => ['--summary', '-p', String(pid)], { stdout: 'pipe' }), bytes, iterations));
      everything.push(await loopMicros(Object.assign(() => ['--json'], { stdout: devNull }), bytes, iterations));
    }
    const base = median(plain);
    // A rate ratio: untraced µs per call over traced µs per call.
    const rate = (traced) => {
      const ratio = base / median(traced);
      return `${median(traced).toFixed(2)} µs, rate ${ratio.toFixed(2)} of untraced${ratio >= TARGET_RATE_RATIO ? '' : '  ← below target'}`;
    };
    console.log(`trace: io_uring register+unregister of ${label}: untraced ${base.toFixed(2)} µs; under trace --summary -p ${rate(filtered)}; under trace --json (all processes, to /dev/null) ${rate(everything)} (target ≥ ${TARGET_RATE_RATIO})`);
  }

  // The cost of each call at a rate a real program registers at (1,000 registrations of 1 MiB a
  // second): time inside register+unregister, traced by trace --json -p (printing each event) and not.
  const atRate = async (traceArgs) => {
    const loop = startLoop(1000, 3, 1 << 20);
    const trace = traceArgs ? await startTrace(traceArgs(loop.child.pid), devNull) : null;
    loop.go();
    const [ok, , inCalls] = await loop.done;
    await trace?.stop();
    return (inCalls * 1e6) / ok;
  };
  const quietCalls = [];
  const tracedCalls = [];
  for (let round = 0; round < 5; round++) {
    quietCalls.push(await atRate(null));
    tracedCalls.push(await atRate((pid) => ['--json', '-p', String(pid)]));
  }
  const callRatio = median(quietCalls) / median(tracedCalls);
  console.log(`trace: 1,000 registrations/s of 1 MiB: ${median(tracedCalls).toFixed(2)} µs in register+unregister under trace --json -p, ${median(quietCalls).toFixed(2)} µs untraced: rate ${callRatio.toFixed(2)} of untraced (target ≥ ${TARGET_RATE_RATIO})${callRatio >= TARGET_RATE_RATIO ? '' : '  ← below target'}`);

  // rdmactl's CPU while printing ~1,000 events/s: the median of three 5 s windows, each of its own
  // run, from 3 s after the events begin: the first seconds also carry V8 optimizing the hot code
  // (about a quarter of the CPU in a window that starts at 0.5 s), which a trace pays once.
  const windows = [];
  for (let round = 0; round < 3; round++) {
    const loop = startLoop(500, 9);
    const trace = await startTrace(['--json', '-p', String(loop.child.pid)], devNull);
    loop.go();
    await sleep(3000);
    const ticks0 = cpuTicks(trace.child.pid);
    const t0 = performance.now();
    await sleep(5000);
    const cpuSeconds = (cpuTicks(trace.child.pid) - ticks0) / 100; // USER_HZ
    const wall = (performance.now() - t0) / 1000;
    await loop.done;
    await trace.stop();
    windows.push({ cpuSeconds, wall });
  }
  const { cpuSeconds, wall } = windows.sort((a, b) => a.cpuSeconds / a.wall - b.cpuSeconds / b.wall)[1];
  const percent = (cpuSeconds / wall) * 100;
  console.log(`trace: rdmactl CPU while tracing ~1,000 events/s: ${percent.toFixed(1)} % of one core (${cpuSeconds.toFixed(2)} s in ${wall.toFixed(1)} s; target ≤ 5 %)${percent <= 5 ? '' : '  ← above target'}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
