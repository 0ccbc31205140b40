// Machine-wide settings that decide whether a registration can work: sysctls under /proc/sys and the
// huge page pools and THP mode under /sys/kernel/mm. Parsers are pure; readers return null when the
// file does not exist on this kernel (an older kernel without the knob).

import { readdirSync } from 'node:fs';
import { procTry, readProcText } from './procfs.js';

/** A sysctl by its dotted name (kernel.io_uring_disabled) as an integer; null when this kernel lacks it. */
export function readSysctlInt(name: string, root = '/proc/sys'): number | null {
  const text = readProcText(`${root}/${name.replace(/\./g, '/')}`);
  if (text === null) return null;
  const n = Number.parseInt(text.trim(), 10);
  return Number.isNaN(n) ? null : n;
}

/** "always [madvise] never" → "madvise"; null when no choice is bracketed. */
export function parseThpMode(text: string): string | null {
  const match = /\[([a-z-]+)\]/.exec(text);
  return match ? match[1]! : null;
}

export const THP_ENABLED_PATH = '/sys/kernel/mm/transparent_hugepage/enabled';

export function readThpMode(path = THP_ENABLED_PATH): string | null {
  const text = readProcText(path);
  return text === null ? null : parseThpMode(text);
}

export interface HugepagePool {
  pageBytes: number;
  /** nr_hugepages: reserved in the pool. */
  total: number;
  /** free_hugepages: not in use; resv_hugepages of them are promised to mappings already made. */
  free: number;
  reserved: number;
  surplus: number;
}

/** "hugepages-2048kB" → 2 MiB; null for other names. */
export function hugepageDirBytes(name: string): number | null {
  const match = /^hugepages-(\d+)kB$/.exec(name);
  return match ? Number(match[1]) * 1024 : null;
}

export const HUGEPAGES_DIR = '/sys/kernel/mm/hugepages';

/** Every huge page size with its pool, smallest first. [] on kernels without hugetlbfs. */
export function readHugepagePools(dir = HUGEPAGES_DIR): HugepagePool[] {
  const names = procTry(dir, () => readdirSync(dir)) ?? [];
  const pools: HugepagePool[] = [];
  for (const name of names) {
    const pageBytes = hugepageDirBytes(name);
    if (pageBytes === null) continue;
    const value = (file: string): number => Number.parseInt(readProcText(`${dir}/${name}/${file}`)?.trim() ?? '0', 10) || 0;
    pools.push({ pageBytes, total: value('nr_hugepages'), free: value('free_hugepages'), reserved: value('resv_hugepages'), surplus: value('surplus_hugepages') });
  }
  return pools.sort((a, b) => a.pageBytes - b.pageBytes);
}
