#!/usr/bin/env node
// Benchmark of `rdmactl top` with many processes on the machine:
//   1. time to first frame: from spawning `rdmactl top` on a pseudo-terminal (script(1)) until its
//      header has been written (median of several runs; `node -e 0` on the same path for scale);
//   2. CPU used by `top` over 30 s at the default 1 s refresh, from /proc/PID/stat utime+stime,
//      next to htop's (`htop -d 10`, also 1 s) over the same 30 s, each in its own tmux session.
// Starts 2,000 idle processes first (bench/idle.mjs; all killed and reaped at the end).
//
// Usage: node bench/top.mjs [--quick] [--processes N] [--seconds S] [--runs R]
//   --quick   5 s of CPU measurement, 3 runs (a fast check; targets still printed)
// Needs a build (npm run build) and, for the CPU part, tmux; htop is optional.

import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { startIdle } from './idle.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = `${ROOT}bin/rdmactl`;
const args = process.argv.slice(2);
const quick = args.includes('--quick');
const option = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] !== undefined ? Number(args[i + 1]) : fallback;
};
const PROCESSES = option('--processes', 2000);
const SECONDS = option('--seconds', quick ? 5 : 30);
const RUNS = option('--runs', quick ? 3 : 7);
// Targets are ratios against baselines measured in the same run.
const FIRST_FRAME_TARGET_RATIO = 2.5; // × `node -e` on the same path
const CPU_TARGET_RATIO = 0.25; // × htop's CPU at the same refresh
const TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

if (!existsSync(`${ROOT}dist/main.js`)) {
  console.error('bench/top: dist/ is missing: run `npm run build` first');
  process.exit(1);
}

function has(command) {
  return spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
}

function procCount() {
  return readdirSync('/proc').filter((n) => /^\d+$/.test(n)).length;
}

/** Spawns `command` on a pty (script -qfec) and resolves with ms until stdout contains `marker`. */
function timeToMarker(command, marker) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn('script', ['-qfec', `stty cols 120 rows 40; exec ${command}`, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let done = false;
    const timer = setTimeout(() => finish(new Error(`no '${marker}' within 20 s: ${JSON.stringify(out.slice(-300))}`)), 20_000);
    const finish = (err, ms) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      child.kill('SIGKILL');
      if (err) reject(err); else resolve(ms);
    };
    child.stdout.on('data', (d) => {
      out += d.toString();
      if (out.includes(marker)) finish(null, performance.now() - started);
    });
    child.on('exit', () => setTimeout(() => finish(new Error(`exited before '${marker}': ${JSON.stringify(out.slice(-300))}`)), 50));
  });
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

function cpuTicks(pid) {
  const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15)
}

function tmux(...argv) {
  const r = spawnSync('tmux', argv, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`tmux ${argv.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** Runs `command` in a detached tmux session; returns the pane's pid (the command, via exec) and a stop function. */
async function inTmux(name, command, ready) {
  tmux('new-session', '-d', '-s', name, '-x', '120', '-y', '40', `exec ${command}`);
  const stop = () => { try { tmux('kill-session', '-t', name); } catch { /* gone */ } };
  const pid = Number(tmux('list-panes', '-t', name, '-F', '#{pane_pid}').trim());
  const deadline = Date.now() + 20_000;
  while (!tmux('capture-pane', '-p', '-t', name).includes(ready)) {
    if (Date.now() > deadline) { stop(); throw new Error(`${command} did not show '${ready}' in tmux`); }
    await sleep(100);
  }
  return { pid, stop };
}

const idle = await startIdle(PROCESSES);
const cleanups = [];
process.on('SIGINT', () => { for (const c of cleanups) c(); void idle.stop().then(() => process.exit(130)); });
try {
  console.log(`${procCount()} processes running (${PROCESSES} idle processes started), ${RUNS} runs, CPU over ${SECONDS} s`);

  const nodeMs = [];
  const topMs = [];
  for (let i = 0; i < RUNS; i++) {
    nodeMs.push(await timeToMarker(`${process.execPath} -e "process.stdout.write('ready')"`, 'ready'));
    topMs.push(await timeToMarker(`${process.execPath} ${BIN} top --count 1`, 'pinned history'));
  }
  const firstFrame = median(topMs);
  const frameRatio = firstFrame / median(nodeMs);
  console.log(`node -e (startup only, same path): ${Math.round(median(nodeMs))} ms`);
  console.log(`top first frame: ${Math.round(firstFrame)} ms, ratio ${frameRatio.toFixed(2)}× node -e (target ≤ ${FIRST_FRAME_TARGET_RATIO}×)${frameRatio <= FIRST_FRAME_TARGET_RATIO ? '' : '  ← above target'} (runs: ${topMs.map(Math.round).join(', ')})`);

  if (!has('tmux')) {
    console.log('top CPU: skipped (tmux is not installed)');
  } else {
    const top = await inTmux(`benchtop${process.pid}`, `${process.execPath} ${BIN} top --interval 1s`, 'pinned history');
    cleanups.push(top.stop);
    let htop = null;
    if (has('htop')) {
      htop = await inTmux(`benchhtop${process.pid}`, 'htop -d 10', 'Tasks');
      cleanups.push(htop.stop);
    }
    await sleep(1500); // past start-up
    const before = { top: cpuTicks(top.pid), htop: htop ? cpuTicks(htop.pid) : 0, at: performance.now() };
    await sleep(SECONDS * 1000);
    const elapsed = (performance.now() - before.at) / 1000;
    const percent = (ticks) => (100 * ticks) / TICKS / elapsed;
    const topCpu = percent(cpuTicks(top.pid) - before.top);
    const htopCpu = htop ? percent(cpuTicks(htop.pid) - before.htop) : null;
    top.stop();
    htop?.stop();
    const cpuRatio = htopCpu === null || htopCpu === 0 ? null : topCpu / htopCpu;
    console.log(`top CPU over ${SECONDS} s: ${topCpu.toFixed(2)}% of one core, htop ${htopCpu === null ? 'not installed (apt-get install htop): no ratio' : `${htopCpu.toFixed(2)}%, ratio ${cpuRatio === null ? 'n/a' : cpuRatio.toFixed(2)}× (target ≤ ${CPU_TARGET_RATIO}×)${cpuRatio !== null && cpuRatio > CPU_TARGET_RATIO ? '  ← above target' : ''}`}`);
  }
} finally {
  for (const cleanup of cleanups.reverse()) cleanup();
  await idle.stop();
}
