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

/**
 * Where a test can place memory cgroups of its own (cgroup v1), read with plain regexes: `skipReason`
 * says why it cannot; `parentPath` is our own memory cgroup's path ('' for the root) and `dir(path)`
 * the directory of a cgroup path in the mounted memory hierarchy.
 */
export function memoryCgroupPlacement(): { skipReason: string | null; parentPath: string; dir: (path: string) => string } {
  const ownPath = /^\d+:(?:[^:]*,)?memory(?:,[^:]*)?:(.*)$/m.exec(readFileSync('/proc/self/cgroup', 'utf8'))?.[1];
  const mount = /^\S+ \S+ \S+ (\S+) (\S+) .* - cgroup \S+ \S*\bmemory\b/m.exec(readFileSync('/proc/self/mountinfo', 'utf8'));
  const skipReason = process.getuid?.() !== 0 ? 'not root (cannot create memory cgroups)'
    : !ownPath || !mount ? 'no cgroup v1 memory controller on this host'
    : mount[1] !== '/' ? 'the memory hierarchy is mounted from a subtree (cgroup namespace); cannot place test cgroups'
    : null;
  return { skipReason, parentPath: ownPath === '/' ? '' : ownPath ?? '', dir: (path) => `${mount?.[2] ?? ''}${path}` };
}
