// Idle processes for benchmarks: children of the bench (PID 1 here may not reap orphans), all
// killed and reaped in `stop()`.
import { spawn } from 'node:child_process';

export async function startIdle(count) {
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
