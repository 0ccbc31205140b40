// /proc/kpageflags: one little-endian u64 of flags per physical page, by PFN (root only;
// Documentation/admin-guide/mm/pagemap.rst). Used to follow the pages a process had registered after
// that process is gone: a page nobody maps any more that is still an anonymous page (or a shmem page
// on an LRU list) is still held by something — a pin; a freed page loses those flags.

import { closeSync, openSync, readSync } from 'node:fs';

export const KPF_LRU = 5n;
export const KPF_MMAP = 11n;
export const KPF_ANON = 12n;
export const KPF_SWAPBACKED = 14n;

const has = (flags: bigint, bit: bigint): boolean => ((flags >> bit) & 1n) === 1n;

/** The flags of each PFN, or null when /proc/kpageflags cannot be read (not root, no such file). */
export function readKpageflags(pfns: readonly number[]): bigint[] | null {
  let fd: number;
  try {
    fd = openSync('/proc/kpageflags', 'r');
  } catch {
    return null;
  }
  try {
    const buf = Buffer.alloc(8);
    return pfns.map((pfn) => (readSync(fd, buf, 0, 8, pfn * 8) === 8 ? buf.readBigUInt64LE(0) : 0n));
  } catch {
    return null;
  } finally {
    closeSync(fd);
  }
}

/**
 * A page that nobody maps but that is still anonymous memory, or a shmem page still on an LRU list
 * (its file is gone): something other than a mapping still holds it. Freeing a page clears these flags.
 */
export function heldUnmapped(flags: bigint): boolean {
  return !has(flags, KPF_MMAP) && (has(flags, KPF_ANON) || (has(flags, KPF_SWAPBACKED) && has(flags, KPF_LRU)));
}

/** The page is mapped by some process. */
export function mapped(flags: bigint): boolean {
  return has(flags, KPF_MMAP);
}
