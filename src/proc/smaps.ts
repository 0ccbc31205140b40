// /proc/PID/smaps: one record per VMA with the counters and VmFlags that tell whether a range is
// mlocked (lo), excluded from fork (dc = MADV_DONTFORK), zeroed in the child (wf = MADV_WIPEONFORK),
// or huge (ht = hugetlbfs, hg = MADV_HUGEPAGE).
//
// This is the expensive file of a scan (tens of lines per VMA, hundreds of VMAs per process), so the
// parser walks the text once with indexOf and charCode checks: no regex, no split, no per-line
// substring except for the header line of each VMA.

import { lineEnd, parseDecimalAt, procPath, readProcText, type ProcPid } from './procfs.js';

export interface SmapsVma {
  /** Start address (inclusive) and end (exclusive). bigint: user addresses are 47 or 56 bits. */
  start: bigint;
  end: bigint;
  /** e.g. "rw-p"; the last char is 'p' (private) or 's' (shared). */
  perms: string;
  /** File offset in bytes. */
  offset: bigint;
  /** "major:minor" of the backing device, "00:00" for anonymous memory. */
  device: string;
  inode: number;
  /** Backing file, "[heap]", "[stack]", "[anon:name]", ... or '' for anonymous memory. */
  pathname: string;
  sizeBytes: number;
  rssBytes: number;
  /** Locked: bytes of this VMA's resident pages that are mlocked. */
  lockedBytes: number;
  anonymousBytes: number;
  anonHugePagesBytes: number;
  swapBytes: number;
  /** Page size backing this VMA (2 MiB/1 GiB for hugetlbfs). */
  kernelPageSizeBytes: number;
  /** Two-letter VmFlags mnemonics, e.g. {"rd","wr","mr","mw","me","lo","dc","ac"}. Empty on kernels before 3.8. */
  flags: ReadonlySet<string>;
}

const EMPTY_FLAGS: ReadonlySet<string> = new Set();

/** VM_LOCKED: mlock()ed or under mlockall. */
export const isLocked = (vma: SmapsVma): boolean => vma.flags.has('lo');
/** VM_DONTCOPY (MADV_DONTFORK): the child of fork gets no mapping here. */
export const isDontFork = (vma: SmapsVma): boolean => vma.flags.has('dc');
/** VM_WIPEONFORK (MADV_WIPEONFORK): the child gets zero-filled memory here. */
export const isWipeOnFork = (vma: SmapsVma): boolean => vma.flags.has('wf');
/** VM_HUGETLB: hugetlbfs-backed (MAP_HUGETLB or a hugetlbfs file). */
export const isHugetlb = (vma: SmapsVma): boolean => vma.flags.has('ht');
/** VM_HUGEPAGE: MADV_HUGEPAGE advice for transparent huge pages. */
export const isHugePageAdvised = (vma: SmapsVma): boolean => vma.flags.has('hg');
/** VM_IO / VM_PFNMAP: device memory (e.g. RDMA doorbell pages), never pinnable normal pages. */
export const isDeviceMapping = (vma: SmapsVma): boolean => vma.flags.has('io') || vma.flags.has('pf');

export function vmaSizeBytes(vma: SmapsVma): number {
  return Number(vma.end - vma.start);
}

/** Zero-padded lowercase hex like the kernel prints (at least 8 digits), without "0x". */
export function formatAddress(address: bigint, minDigits = 8): string {
  return address.toString(16).padStart(minDigits, '0');
}

/** "7f00...-7f00..." as in /proc/PID/maps. */
export function formatRange(vma: Pick<SmapsVma, 'start' | 'end'>): string {
  return `${formatAddress(vma.start)}-${formatAddress(vma.end)}`;
}

function isHexLower(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 97 && c <= 102);
}

/** Header: "start-end perms offset major:minor inode<padding>pathname". */
function parseHeader(line: string): SmapsVma {
  const dash = line.indexOf('-');
  const sp1 = line.indexOf(' ', dash);
  const sp2 = line.indexOf(' ', sp1 + 1);
  const sp3 = line.indexOf(' ', sp2 + 1);
  const sp4 = line.indexOf(' ', sp3 + 1);
  let sp5 = line.indexOf(' ', sp4 + 1);
  if (sp5 < 0) sp5 = line.length;
  let pathStart = sp5;
  while (pathStart < line.length && line.charCodeAt(pathStart) === 32) pathStart++;
  return {
    start: BigInt('0x' + line.slice(0, dash)),
    end: BigInt('0x' + line.slice(dash + 1, sp1)),
    perms: line.slice(sp1 + 1, sp2),
    offset: BigInt('0x' + line.slice(sp2 + 1, sp3)),
    device: line.slice(sp3 + 1, sp4),
    inode: parseDecimalAt(line, sp4 + 1) || 0,
    pathname: line.slice(pathStart),
    sizeBytes: 0,
    rssBytes: 0,
    lockedBytes: 0,
    anonymousBytes: 0,
    anonHugePagesBytes: 0,
    swapBytes: 0,
    kernelPageSizeBytes: 0,
    flags: EMPTY_FLAGS,
  };
}

function kbAt(text: string, colon: number): number {
  const kb = parseDecimalAt(text, colon + 1);
  return Number.isNaN(kb) ? 0 : kb * 1024;
}

function parseFlags(text: string, from: number, to: number): Set<string> {
  const flags = new Set<string>();
  let i = from;
  while (i < to) {
    while (i < to && text.charCodeAt(i) === 32) i++;
    let j = i;
    while (j < to && text.charCodeAt(j) !== 32) j++;
    if (j > i) flags.add(text.slice(i, j));
    i = j;
  }
  return flags;
}

/**
 * Parses /proc/PID/smaps text (also works on /proc/PID/maps: every VMA then has zero counters and
 * no flags). Unknown fields are skipped, so new kernels' additions do not break it.
 */
export function parseSmaps(text: string): SmapsVma[] {
  const vmas: SmapsVma[] = [];
  let current: SmapsVma | null = null;
  let pos = 0;
  const length = text.length;
  while (pos < length) {
    const end = lineEnd(text, pos);
    const first = text.charCodeAt(pos);
    // Field keys start with an upper-case letter; VMA headers with a lower-case hex address.
    if (isHexLower(first)) {
      current = parseHeader(text.slice(pos, end));
      vmas.push(current);
    } else if (current !== null) {
      const colon = text.indexOf(':', pos);
      if (colon > 0 && colon < end) {
        const keyLength = colon - pos;
        switch (first) {
          case 83: // S
            if (keyLength === 4 && text.startsWith('Size', pos)) current.sizeBytes = kbAt(text, colon);
            else if (keyLength === 4 && text.startsWith('Swap', pos)) current.swapBytes = kbAt(text, colon);
            break;
          case 82: // R
            if (keyLength === 3 && text.startsWith('Rss', pos)) current.rssBytes = kbAt(text, colon);
            break;
          case 76: // L
            if (keyLength === 6 && text.startsWith('Locked', pos)) current.lockedBytes = kbAt(text, colon);
            break;
          case 65: // A
            if (keyLength === 9 && text.startsWith('Anonymous', pos)) current.anonymousBytes = kbAt(text, colon);
            else if (keyLength === 13 && text.startsWith('AnonHugePages', pos)) current.anonHugePagesBytes = kbAt(text, colon);
            break;
          case 75: // K
            if (keyLength === 14 && text.startsWith('KernelPageSize', pos)) current.kernelPageSizeBytes = kbAt(text, colon);
            break;
          case 86: // V
            if (keyLength === 7 && text.startsWith('VmFlags', pos)) current.flags = parseFlags(text, colon + 1, end);
            break;
        }
      }
    }
    pos = end + 1;
  }
  return vmas;
}

export interface SmapsSummary {
  vmaCount: number;
  rssBytes: number;
  /** Sum of per-VMA Locked: (resident mlocked bytes). */
  lockedBytes: number;
  /** Size of VMAs flagged lo (may exceed lockedBytes for not-yet-faulted MCL_ONFAULT ranges). */
  lockedVmaBytes: number;
  dontForkVmaCount: number;
  dontForkBytes: number;
  wipeOnForkBytes: number;
  hugetlbBytes: number;
}

export function summarizeSmaps(vmas: readonly SmapsVma[]): SmapsSummary {
  const summary: SmapsSummary = {
    vmaCount: vmas.length,
    rssBytes: 0,
    lockedBytes: 0,
    lockedVmaBytes: 0,
    dontForkVmaCount: 0,
    dontForkBytes: 0,
    wipeOnForkBytes: 0,
    hugetlbBytes: 0,
  };
  for (const vma of vmas) {
    const size = vmaSizeBytes(vma);
    summary.rssBytes += vma.rssBytes;
    summary.lockedBytes += vma.lockedBytes;
    if (isLocked(vma)) summary.lockedVmaBytes += size;
    if (isDontFork(vma)) {
      summary.dontForkVmaCount++;
      summary.dontForkBytes += size;
    }
    if (isWipeOnFork(vma)) summary.wipeOnForkBytes += size;
    if (isHugetlb(vma)) summary.hugetlbBytes += size;
  }
  return summary;
}

/**
 * Reads /proc/PID/smaps. null if the process is gone. Throws ProcUnreadableError when the ptrace
 * access check fails (another user's process, or a non-dumpable one, when not root).
 * A zombie's smaps is empty: that gives [].
 */
export function readSmaps(pid: ProcPid): SmapsVma[] | null {
  const text = readProcText(procPath(pid, 'smaps'));
  return text === null ? null : parseSmaps(text);
}
