// Removing the cgroups a test created: kill whatever is still in each (only the test's own processes
// can be: a holder whose parent died with a failed test) and rmdir it, deepest first.
import { existsSync, readFileSync, rmdirSync } from 'node:fs';

/** `directories` in creation order (parents first); missing ones are skipped. */
export async function removeCgroups(directories: readonly string[]): Promise<void> {
  for (const directory of [...directories].reverse()) {
    if (!existsSync(directory)) continue;
    for (let tries = 0; tries < 50; tries++) {
      const left = readFileSync(`${directory}/cgroup.procs`, 'utf8').split('\n').filter(Boolean).map(Number);
      if (left.length === 0) break;
      for (const pid of left) {
        try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    rmdirSync(directory);
  }
}
