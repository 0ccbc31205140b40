// What the scenarios look at: where (a process's range and its device path), PFNs from
// /proc/<pid>/pagemap, a child's bytes through process_vm_readv (EFAULT = the range was not
// inherited), and what a run of bytes holds.

import { closeSync, readSync } from 'node:fs';
import { SyscallError } from '../lib/errno.js';
import { addressOf, processVmRead, processVmWrite, type Pointer } from '../ffi/libc.js';
import { openProcMem } from '../proc/mem.js';
import { readPagemap } from '../proc/pagemap.js';
import type { DevicePath } from './devicePath.js';

/** Where to look: the process holding the registration, its address and length, and the device path if any. */
export interface EvidenceTarget {
  /** The holder's pid; 'self' for this process. */
  pid: number | 'self';
  addr: Pointer;
  length: number;
  device?: DevicePath | null;
  /**
   * The process has just unmapped the range: what it sees and the PFN are then read first, one page
   * only — any large allocation (scenario/evidence.ts observe() itself allocates buffers of the range's size, which malloc
   * serves with mmap) may land in the hole, and the process would then "see" our own buffer.
   */
  unmapped?: boolean;
}

/** The fill bytes each actor writes, so any byte read back says who wrote it. */
export const PATTERN = {
  preFork: 0xa1,
  parent: 0xb2,
  child: 0xc3,
  device: 0xd4,
} as const;

/** Who a run of bytes came from. */
export type Content = 'pre-fork' | 'parent-write' | 'child-write' | 'device-write' | 'zeros' | 'mixed';

const LABELS: ReadonlyMap<number, Content> = new Map<number, Content>([
  [PATTERN.preFork, 'pre-fork'],
  [PATTERN.parent, 'parent-write'],
  [PATTERN.child, 'child-write'],
  [PATTERN.device, 'device-write'],
  [0, 'zeros'],
]);

const filled = new Map<string, Buffer>();
function filledBuffer(byte: number, length: number): Buffer {
  const key = `${byte}:${length}`;
  let buf = filled.get(key);
  if (!buf) {
    if (filled.size > 32) filled.clear();
    buf = Buffer.alloc(length, byte);
    filled.set(key, buf);
  }
  return buf;
}

/** 'zeros', 'pre-fork'… when every byte is one actor's pattern, else 'mixed'. */
export function classify(bytes: Uint8Array): Content {
  if (bytes.length === 0) return 'mixed';
  const first = bytes[0]!;
  const label = LABELS.get(first);
  if (label === undefined) return 'mixed';
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).equals(filledBuffer(first, bytes.length)) ? label : 'mixed';
}

export interface PfnReading {
  /** One PFN per page; null for a page that is not present (or when PFNs are hidden). */
  pfns: Array<number | null>;
  /** False when the kernel hid PFNs from us (no CAP_SYS_ADMIN) or nothing is present. */
  visible: boolean;
}

/** PFNs of `length` bytes at `addr` in `pid`; null when the process is gone. */
export function readPfns(pid: number | 'self', addr: Pointer, length: number, pageBytes: number): PfnReading | null {
  const pages = Math.ceil(length / pageBytes);
  const range = readPagemap(pid, addr, pages);
  if (!range) return null;
  return { pfns: range.entries.map((e) => (range.pfnVisible ? e.pfn : null)), visible: range.pfnVisible };
}

/**
 * Copy of the child's bytes at `addr`, or null when the child has no mapping there.
 *
 * Read through /proc/<pid>/mem first: that access takes plain page references. process_vm_readv
 * pins the child's pages (FOLL_PIN), and a read-only pin of a possibly shared anonymous page makes
 * the kernel unshare it (give the child its own copy) — which would hide the very copy-on-write the
 * scenario is about (the parent's page would become exclusive again). process_vm_readv is only the
 * fallback when /proc/<pid>/mem cannot be opened; its EFAULT means the same as mem's EIO: no mapping.
 */
export function readChild(pid: number, addr: Pointer, length: number): Buffer | null {
  const local = Buffer.alloc(length);
  const fd = openProcMem(pid);
  if (fd !== null) {
    try {
      let got = 0;
      while (got < length) {
        const n = readSync(fd, local, got, length - got, addr + BigInt(got));
        if (n === 0) return null;
        got += n;
      }
      return local;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EIO') return null;
      throw err;
    } finally {
      closeSync(fd);
    }
  }
  return readChildPinned(pid, addr, length);
}

/** process_vm_readv of the child's range (note: unshares possibly shared anonymous pages in the child). */
export function readChildPinned(pid: number, addr: Pointer, length: number): Buffer | null {
  const local = Buffer.alloc(length);
  try {
    const got = processVmRead(pid, addressOf(local), addr, length);
    // A partial copy means the mapping ends early: treat the range as not (fully) inherited.
    return got === length ? local : null;
  } catch (err) {
    if (err instanceof SyscallError && err.errnoName === 'EFAULT') return null;
    throw err;
  }
}

/**
 * Store `byte` over the child's range, exactly as a store in the child would: the kernel breaks
 * copy-on-write for the child (FOLL_WRITE). Returns false when the child has no mapping there.
 */
export function writeChild(pid: number, addr: Pointer, length: number, byte: number): boolean {
  const local = Buffer.alloc(length, byte);
  try {
    return processVmWrite(pid, addressOf(local), addr, length) === length;
  } catch (err) {
    if (err instanceof SyscallError && err.errnoName === 'EFAULT') return false;
    throw err;
  }
}
