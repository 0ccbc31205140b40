// maps.count: every MADV_DONTFORK (libibverbs' fork support marks each MR) splits the VMA around the
// registered range; at vm.max_map_count, mmap/mprotect/madvise — and so ibv_reg_mr — fail with ENOMEM.

import { readMaxMapCount } from '../proc/vm.js';
import { isDontFork, readSmaps } from '../proc/smaps.js';
import { ProcUnreadableError } from '../proc/procfs.js';
import { RdmactlError } from '../lib/errors.js';
import { finding, skipped, type DoctorContext, type Finding } from './types.js';

export function mapsCount(ctx: DoctorContext): Finding {
  const id = 'maps.count';
  const { pid } = ctx.target;
  let vmas;
  try {
    vmas = readSmaps(pid);
  } catch (err) {
    if (err instanceof ProcUnreadableError) return skipped(id, `cannot read /proc/${pid}/smaps (run as root or as the process's user)`);
    throw err;
  }
  if (vmas === null) throw new RdmactlError(`no process with pid ${pid} (it exited while being checked)`);
  const max = readMaxMapCount();
  const count = vmas.length;
  const dontFork = vmas.filter(isDontFork).length;
  const headroom = max - count;
  const evidence = { maxMapCount: max, vmaCount: count, dontForkVmas: dontFork, headroom, file: '/proc/sys/vm/max_map_count' };
  const fix = [`sysctl -w vm.max_map_count=${Math.max(max * 4, 262144)} (persist in /etc/sysctl.d/90-rdma.conf)`, 'fewer, larger registrations; drop RDMAV_FORK_SAFE/ibv_fork_init where the kernel copies pinned pages at fork (see fork.copy-on-fork)'];
  if (headroom <= 0) return finding(id, 'fail', `${count} VMAs = vm.max_map_count ${max}: the next mapping or madvise split fails with ENOMEM (${dontFork} DONTFORK VMAs)`, evidence, fix);
  if (headroom < max / 10) return finding(id, 'warn', `${count} VMAs of vm.max_map_count ${max}: ${headroom} left (${dontFork} DONTFORK VMAs)`, evidence, fix);
  return finding(id, 'ok', `${count} VMAs of vm.max_map_count ${max} (${dontFork} DONTFORK)`, evidence);
}
