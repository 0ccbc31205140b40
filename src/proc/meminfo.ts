// /proc/meminfo: machine-wide totals. Mlocked counts mlocked pages; long-term pins (VmPin) have no
// meminfo line of their own, so the scan sums VmPin across processes (see readSystemMemory).

import { readProcText, PROC_ROOT } from './procfs.js';

export interface Meminfo {
  memTotalBytes: number;
  memFreeBytes: number;
  /** null on kernels before 3.14. */
  memAvailableBytes: number | null;
  mlockedBytes: number;
  unevictableBytes: number;
  /** Reserved hugetlb pages (counts, not bytes) and their size; needed to explain MAP_HUGETLB ENOMEM. */
  hugePagesTotal: number;
  hugePagesFree: number;
  hugePagesReserved: number;
  hugepageSizeBytes: number;
  /** Every line: kB values converted to bytes, unit-less lines (HugePages_*) kept as counts. */
  all: Map<string, number>;
}

export function parseMeminfo(text: string): Meminfo {
  const all = new Map<string, number>();
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const value = line.slice(colon + 1).trim();
    const n = Number.parseInt(value, 10);
    if (Number.isNaN(n)) continue;
    all.set(line.slice(0, colon), value.endsWith(' kB') ? n * 1024 : n);
  }
  const get = (key: string): number => all.get(key) ?? 0;
  return {
    memTotalBytes: get('MemTotal'),
    memFreeBytes: get('MemFree'),
    memAvailableBytes: all.get('MemAvailable') ?? null,
    mlockedBytes: get('Mlocked'),
    unevictableBytes: get('Unevictable'),
    hugePagesTotal: get('HugePages_Total'),
    hugePagesFree: get('HugePages_Free'),
    hugePagesReserved: get('HugePages_Rsvd'),
    hugepageSizeBytes: get('Hugepagesize'),
    all,
  };
}

/** /proc/meminfo always exists; a missing one (no /proc mounted) throws. */
export function readMeminfo(): Meminfo {
  const text = readProcText(`${PROC_ROOT}/meminfo`);
  if (text === null) throw new Error(`${PROC_ROOT}/meminfo is missing: is /proc mounted?`);
  return parseMeminfo(text);
}
