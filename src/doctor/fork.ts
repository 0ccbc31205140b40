// fork.*: what happens to registered memory when the target forks. Since Linux 5.9 the kernel copies
// pinned pages for the child at fork (copy-on-fork), so MADV_DONTFORK is no longer needed; before it,
// a pinned page written after fork leaves the device writing to the child's copy.

import { readCopyOnFork } from '../observe/copyOnFork.js';
import { formatBytes } from '../lib/size.js';
import { readEnviron } from '../proc/environ.js';
import { isDontFork, readSmaps, vmaSizeBytes } from '../proc/smaps.js';
import { ProcUnreadableError } from '../proc/procfs.js';
import { finding, skipped, type DoctorContext, type Finding } from './types.js';

export const FORK_ENV = ['RDMAV_FORK_SAFE', 'IBV_FORK_SAFE'] as const;

function readEnvironOrReason(pid: number): Map<string, string> | string {
  try {
    return readEnviron(pid) ?? `pid ${pid} exited`;
  } catch (err) {
    if (err instanceof ProcUnreadableError) return `cannot read /proc/${pid}/environ (run as root or as the process's user)`;
    throw err;
  }
}

export function forkFindings(ctx: DoctorContext): Finding[] {
  const report = readCopyOnFork();
  const { target } = ctx;
  const out: Finding[] = [];
  const cofEvidence = { kernel: report.kernel, copyOnFork: report.copyOnFork, source: report.copyOnForkSource, pinnedBytes: target.status.pinnedBytes };
  const source = report.copyOnForkSource === 'rdma sys show' ? 'rdma sys show' : `Linux ${report.kernel}: since 5.9`;
  if (report.copyOnFork === null) {
    // No attribute to read (before 5.12); what the kernel does is what `rdmactl fork` shows.
    out.push(skipped('fork.copy-on-fork', `copy-on-fork ${report.copyOnForkSource}: run rdmactl fork to see whether registered memory stays with the parent here`, cofEvidence));
  } else if (report.copyOnFork) {
    out.push(finding('fork.copy-on-fork', 'ok', `the kernel copies pinned pages for a child at fork (${source}): registered memory stays with the parent`, cofEvidence));
  } else {
    let uncovered: number | null = null;
    try {
      const vmas = readSmaps(target.pid) ?? [];
      const dontFork = vmas.filter(isDontFork).reduce((sum, v) => sum + vmaSizeBytes(v), 0);
      uncovered = Math.max(0, target.status.pinnedBytes - dontFork);
    } catch (err) {
      if (!(err instanceof ProcUnreadableError)) throw err;
    }
    const evidence = { ...cofEvidence, pinnedNotDontforkBytes: uncovered };
    out.push(uncovered !== null && uncovered > 0
      ? finding('fork.copy-on-fork', 'fail', `no copy-on-fork in this kernel and ${formatBytes(uncovered)} of pinned memory is not MADV_DONTFORK: after a fork, parent writes go to a copy the device never sees`, evidence, ['set RDMAV_FORK_SAFE=1 (or call ibv_fork_init()) before the first registration, or upgrade to Linux ≥ 5.9'])
      : finding('fork.copy-on-fork', 'warn', 'no copy-on-fork in this kernel: a process that forks after registering needs RDMAV_FORK_SAFE=1 / ibv_fork_init()', evidence, ['set RDMAV_FORK_SAFE=1 in the environment of RDMA processes that fork']));
  }
  const env = readEnvironOrReason(target.pid);
  if (typeof env === 'string') {
    out.push(skipped('fork.env', env));
    return out;
  }
  const set = FORK_ENV.filter((name) => env.has(name));
  const evidence = { variables: Object.fromEntries(set.map((n) => [n, env.get(n)!])), file: `/proc/${target.pid}/environ` };
  if (report.copyOnFork === null) {
    out.push(set.length > 0
      ? finding('fork.env', 'ok', `${set.join(', ')} set (copy-on-fork ${report.copyOnForkSource}: the variables keep registered memory with the parent either way)`, evidence)
      : finding('fork.env', 'warn', `neither RDMAV_FORK_SAFE nor IBV_FORK_SAFE is set and copy-on-fork is ${report.copyOnForkSource}`, evidence, ['run rdmactl fork to see whether this kernel keeps pinned pages with the parent; if not, export RDMAV_FORK_SAFE=1 before starting processes that register memory and fork']));
  } else if (set.length > 0 && report.copyOnFork) {
    out.push(finding('fork.env', 'warn', `${set.join(', ')} set although the kernel copies pinned pages at fork: libibverbs still marks every MR MADV_DONTFORK, splitting VMAs (maps.count) and leaving children without that memory`, evidence, [`unset ${set.join(' ')} unless the application needs its children to lose registered ranges`]));
  } else if (set.length === 0 && !report.copyOnFork) {
    out.push(finding('fork.env', 'warn', 'neither RDMAV_FORK_SAFE nor IBV_FORK_SAFE is set and the kernel has no copy-on-fork', evidence, ['export RDMAV_FORK_SAFE=1 before starting processes that register memory and fork']));
  } else {
    out.push(finding('fork.env', 'ok', set.length > 0 ? `${set.join(', ')} set (needed: the kernel has no copy-on-fork)` : 'no fork-safety variables set (not needed: the kernel copies pinned pages at fork)', evidence));
  }
  return out;
}
