// Idle processes for benchmarks: `count` children of bench/idle.c (one small C parent that forks them;
// they wait in pause()), killed and reaped by that parent in `stop()` (PID 1 here may not reap
// orphans). Without a C compiler, `sleep` processes spawned one by one instead (slower to start).
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
let compiled;

function idleBinary() {
  if (compiled !== undefined) return compiled;
  const dir = mkdtempSync(join(tmpdir(), 'rdmactl-idle-'));
  try {
    execFileSync('cc', ['-O2', '-o', join(dir, 'idle'), `${root}bench/idle.c`], { stdio: 'pipe' });
    compiled = join(dir, 'idle');
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  } catch {
    rmSync(dir, { recursive: true, force: true });
    compiled = null;
  }
  return compiled;
}

export async function startIdle(count) {
  if (count <= 0) return { count: 0, async stop() {} };
  const binary = idleBinary();
  if (binary === null) return startSleeps(count);
  const parent = spawn(binary, [String(count)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise((resolve) => parent.once('exit', resolve));
  const started = await new Promise((resolve, reject) => {
    let out = '';
    parent.stdout.on('data', (d) => { out += d; const m = /ready (\d+)/.exec(out); if (m) resolve(Number(m[1])); });
    parent.once('error', reject);
    parent.once('exit', (code) => reject(new Error(`idle process starter exited (${code}): ${out}`)));
  });
  const stop = async () => { parent.stdin.end(); await exited; };
  if (started !== count) {
    await stop();
    throw new Error(`could start only ${started} of ${count} idle processes (pid_max, ulimit -u, pids.max?)`);
  }
  return { count, stop };
}

async function startSleeps(count) {
  const children = [];
  for (let i = 0; i < count; i++) children.push(spawn('sleep', ['3600'], { stdio: 'ignore' }));
  await Promise.all(children.map((c) => new Promise((resolve, reject) => { c.once('spawn', resolve); c.once('error', reject); })));
  return {
    count: children.length,
    async stop() {
      await Promise.all(children.map((c) => new Promise((resolve) => {
        if (c.exitCode !== null || c.signalCode !== null) return resolve();
        c.once('exit', resolve);
        c.kill('SIGKILL');
      })));
    },
  };
}
