// /proc/PID/pagemap: one little-endian u64 per virtual page (Documentation/admin-guide/mm/pagemap.rst):
//   bits 0–54  PFN when present (bits 0–4 swap type, 5–54 swap offset when swapped)
//   bit 55     soft-dirty          bit 56  exclusively mapped (since 4.2)
//   bit 57     uffd-wp write-protected (5.x)   bit 58  guard region (6.13+)
//   bit 61     file page or shared anon        bit 62  swapped       bit 63  present
// Without CAP_SYS_ADMIN the kernel zeroes the PFN bits (since 4.2): `pfnVisible` says whether we see them.

import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { procPath, procTry, type ProcPid } from './procfs.js';

export interface PagemapEntry {
  present: boolean;
  swapped: boolean;
  /** Page frame number; null when not present, or present but hidden (PFN bits read as 0). */
  pfn: number | null;
  /** Swap type and offset when swapped, else null. */
  swapType: number | null;
  swapOffset: number | null;
  softDirty: boolean;
  exclusive: boolean;
  uffdWriteProtected: boolean;
  guardRegion: boolean;
  /** File-backed page or shared anonymous memory. */
  fileOrShared: boolean;
  raw: bigint;
}

const PFN_MASK = (1n << 55n) - 1n;
const bit = (raw: bigint, n: bigint): boolean => ((raw >> n) & 1n) === 1n;

export function decodePagemapEntry(raw: bigint): PagemapEntry {
  const present = bit(raw, 63n);
  const swapped = bit(raw, 62n);
  const low = raw & PFN_MASK;
  return {
    present,
    swapped,
    pfn: present && low !== 0n ? Number(low) : null,
    swapType: swapped ? Number(low & 0x1fn) : null,
    swapOffset: swapped ? Number(low >> 5n) : null,
    softDirty: bit(raw, 55n),
    exclusive: bit(raw, 56n),
    uffdWriteProtected: bit(raw, 57n),
    guardRegion: bit(raw, 58n),
    fileOrShared: bit(raw, 61n),
    raw,
  };
}

/** Decodes every 8-byte entry in buffer (a trailing partial entry is ignored). */
export function decodePagemap(buffer: Buffer): PagemapEntry[] {
  const entries: PagemapEntry[] = [];
  for (let offset = 0; offset + 8 <= buffer.length; offset += 8) {
    entries.push(decodePagemapEntry(buffer.readBigUInt64LE(offset)));
  }
  return entries;
}

export interface PagemapRange {
  /** Address of the first page (rounded down to a page boundary). */
  startAddress: bigint;
  pageSizeBytes: number;
  entries: PagemapEntry[];
  /** True when at least one present page shows a non-zero PFN, i.e. we have CAP_SYS_ADMIN. False also when nothing is present. */
  pfnVisible: boolean;
}

/** AT_PAGESZ from an auxv image (u64 key/value pairs, 64-bit little-endian); null if absent. */
export function parseAuxvPageSize(auxv: Buffer): number | null {
  const AT_PAGESZ = 6n;
  for (let offset = 0; offset + 16 <= auxv.length; offset += 16) {
    const key = auxv.readBigUInt64LE(offset);
    if (key === 0n) break;
    if (key === AT_PAGESZ) return Number(auxv.readBigUInt64LE(offset + 8));
  }
  return null;
}

let cachedPageSize: number | null = null;

/** The kernel's base page size (4 KiB on x86-64; 4/16/64 KiB on arm64), from our own auxv. */
export function pageSize(): number {
  if (cachedPageSize === null) {
    let size: number | null = null;
    try {
      size = parseAuxvPageSize(readFileSync('/proc/self/auxv'));
    } catch {
      size = null;
    }
    cachedPageSize = size ?? 4096;
  }
  return cachedPageSize;
}

/**
 * Reads `pages` pagemap entries of pid starting at the page containing addr, via pread at offset
 * (addr / pagesize) * 8 computed in bigint. null if the process is gone; ProcUnreadableError when
 * the ptrace check fails. Fewer entries come back if the range runs past the end of the address space.
 */
export function readPagemap(pid: ProcPid, addr: bigint | number, pages: number): PagemapRange | null {
  const pageSizeBytes = pageSize();
  const pageSizeBig = BigInt(pageSizeBytes);
  const pageIndex = BigInt(addr) / pageSizeBig;
  const path = procPath(pid, 'pagemap');
  const buffer = Buffer.alloc(pages * 8);
  const got = procTry(path, () => {
    const fd = openSync(path, 'r');
    try {
      let filled = 0;
      while (filled < buffer.length) {
        const n = readSync(fd, buffer, filled, buffer.length - filled, pageIndex * 8n + BigInt(filled));
        if (n === 0) break;
        filled += n;
      }
      return filled;
    } finally {
      closeSync(fd);
    }
  });
  if (got === null) return null;
  const entries = decodePagemap(buffer.subarray(0, got));
  return {
    startAddress: pageIndex * pageSizeBig,
    pageSizeBytes,
    entries,
    pfnVisible: entries.some((entry) => entry.pfn !== null),
  };
}
