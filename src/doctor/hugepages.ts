// hugepages.*: hugetlb registrations need pages reserved in the pool; THP mode decides whether
// --backing thp gets huge pages; libibverbs needs RDMAV_HUGEPAGES_SAFE for hugetlb memory with fork support.

import { formatBytes } from '../lib/size.js';
import { readEnviron } from '../proc/environ.js';
import { isHugetlb, readSmaps } from '../proc/smaps.js';
import { ProcUnreadableError } from '../proc/procfs.js';
import { HUGEPAGES_DIR, readHugepagePools, readThpMode, THP_ENABLED_PATH } from '../proc/sysctl.js';
import { readMeminfo } from '../proc/meminfo.js';
import { finding, skipped, type DoctorContext, type Finding } from './types.js';

export function hugepageFindings(ctx: DoctorContext): Finding[] {
  const out: Finding[] = [];
  const pools = readHugepagePools();
  const defaultPageBytes = readMeminfo().hugepageSizeBytes;
  const pool = pools.find((p) => p.pageBytes === defaultPageBytes) ?? pools[0] ?? null;
  const available = pool ? (pool.free - pool.reserved) * pool.pageBytes : 0;
  const evidence = {
    pools: pools.map((p) => ({ pageBytes: p.pageBytes, total: p.total, free: p.free, reserved: p.reserved, surplus: p.surplus })),
    defaultPageBytes,
    availableBytes: available,
    directory: HUGEPAGES_DIR,
  };
  const wantsHugetlb = ctx.request.backing === 'hugetlb' && ctx.request.sizeBytes !== null;
  if (pools.length === 0) {
    out.push(wantsHugetlb
      ? finding('hugepages.reserved', 'fail', 'this kernel has no hugetlbfs pools: MAP_HUGETLB fails', evidence, ['use --backing thp (transparent huge pages) instead'])
      : skipped('hugepages.reserved', 'this kernel has no hugetlbfs pools'));
  } else if (wantsHugetlb) {
    const need = Math.ceil(ctx.request.sizeBytes! / pool!.pageBytes) * pool!.pageBytes;
    const pages = need / pool!.pageBytes;
    out.push(need > available
      ? finding('hugepages.reserved', 'fail', `${formatBytes(need)} of ${formatBytes(pool!.pageBytes)} huge pages needed, ${formatBytes(available)} free and unreserved (nr_hugepages ${pool!.total}): MAP_HUGETLB fails with ENOMEM`, { ...evidence, neededBytes: need },
        [`sysctl -w vm.nr_hugepages=${pool!.total + pages - Math.max(0, pool!.free - pool!.reserved)} (or hugepages=N on the kernel command line for a boot-time reservation)`])
      : finding('hugepages.reserved', 'ok', `${formatBytes(need)} of ${formatBytes(pool!.pageBytes)} huge pages needed, ${formatBytes(available)} available`, { ...evidence, neededBytes: need }));
  } else {
    out.push(finding('hugepages.reserved', 'ok', pools.map((p) => `${formatBytes(p.pageBytes)}: ${p.total} reserved, ${p.free} free`).join('; '), evidence));
  }

  const mode = readThpMode();
  const thpEvidence = { mode, file: THP_ENABLED_PATH };
  if (mode === null) out.push(skipped('hugepages.thp', 'this kernel has no transparent huge pages'));
  else if (ctx.request.backing === 'thp' && mode === 'never') out.push(finding('hugepages.thp', 'fail', 'transparent huge pages are off (never): --backing thp gets small pages', thpEvidence, [`echo madvise > ${THP_ENABLED_PATH}`]));
  else out.push(finding('hugepages.thp', 'ok', `transparent huge pages: ${mode}`, thpEvidence));

  try {
    const vmas = readSmaps(ctx.target.pid) ?? [];
    const hugetlbBytes = vmas.filter(isHugetlb).reduce((sum, v) => sum + Number(v.end - v.start), 0);
    const env = readEnviron(ctx.target.pid);
    const safe = env?.get('RDMAV_HUGEPAGES_SAFE') ?? null;
    const forkSafe = env !== null && (env.has('RDMAV_FORK_SAFE') || env.has('IBV_FORK_SAFE'));
    const ev = { hugetlbBytes, RDMAV_HUGEPAGES_SAFE: safe, forkSafe };
    out.push(hugetlbBytes > 0 && forkSafe && safe === null
      ? finding('hugepages.env', 'warn', `${formatBytes(hugetlbBytes)} of hugetlb memory with fork support on but RDMAV_HUGEPAGES_SAFE unset: libibverbs' MADV_DONTFORK on a partial huge page fails (EINVAL)`, ev, ['export RDMAV_HUGEPAGES_SAFE=1'])
      : finding('hugepages.env', 'ok', hugetlbBytes > 0 ? `${formatBytes(hugetlbBytes)} of hugetlb memory${safe !== null ? ', RDMAV_HUGEPAGES_SAFE set' : ''}` : 'no hugetlb mappings', ev));
  } catch (err) {
    if (!(err instanceof ProcUnreadableError)) throw err;
    out.push(skipped('hugepages.env', `cannot read /proc/${ctx.target.pid}/smaps and environ (run as root or as the process's user)`));
  }
  return out;
}
