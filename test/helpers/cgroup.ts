// Removing the cgroups a test created: kill whatever is still in each (only the test's own processes
// can be: a holder whose parent died with a failed test) and rmdir it, deepest first.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { BIN } from './spawn.js';

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

/**
 * Starts `rdmactl ARGS` already inside the cgroup whose directory is `directory` (the shell moves
 * itself there before exec), so every page it touches is charged there; resolves at its first line.
 */
export function startInCgroup(directory: string, args: string[]): Promise<ChildProcessWithoutNullStreams> {
  return startCommandInCgroup(directory, [process.execPath, BIN, ...args]);
}

/** Starts `argv` already inside the cgroup whose directory is `directory`; resolves at its first output line. */
export function startCommandInCgroup(directory: string, argv: string[]): Promise<ChildProcessWithoutNullStreams> {
  const child = spawn('sh', ['-c', 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"', 'sh', directory, ...argv], { stdio: 'pipe' });
  let err = '';
  child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
  return new Promise((resolve, reject) => {
    child.stdout.once('data', () => resolve(child));
    child.once('exit', (code) => reject(new Error(`${argv.join(' ')} exited (${code}) before its first line: ${err}`)));
  });
}

/**
 * A process that pins and locks nothing but fills `bytes` of anonymous memory, started inside the
 * cgroup at `directory` (so every page it touches is charged there); then the group's v1 memory limit
 * is set 4 % above its use, which the group cannot drop (usage less page cache), so it is near its limit.
 * Returns the process and the limit written.
 */
export async function idleNearLimit(directory: string, bytes: number): Promise<{ child: ChildProcessWithoutNullStreams; limitBytes: number }> {
  const script = `const b = Buffer.alloc(${bytes}, 1); process.stdout.write('filled\\n'); setInterval(() => { b[0]++; }, 1e6);`;
  const child = await startCommandInCgroup(directory, [process.execPath, '-e', script]);
  const number = (file: string): number => Number(readFileSync(`${directory}/${file}`, 'utf8').trim());
  const stat = (key: string): number => Number(new RegExp(`^${key} (\\d+)$`, 'm').exec(readFileSync(`${directory}/memory.stat`, 'utf8'))?.[1] ?? 0);
  const usage = number('memory.usage_in_bytes');
  const limitBytes = Math.ceil((usage * 1.04) / 4096) * 4096;
  writeFileSync(`${directory}/memory.limit_in_bytes`, String(limitBytes));
  const used = number('memory.usage_in_bytes') - stat('total_active_file') - stat('total_inactive_file');
  // The premise, read here: what the group cannot drop is at 90 % of its limit or more.
  if (used < 0.9 * limitBytes) throw new Error(`the idle group uses ${used} of ${limitBytes} bytes it cannot drop: not near its limit, the test's premise fails`);
  return { child, limitBytes };
}
