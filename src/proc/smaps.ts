// /proc/PID/smaps: one record per VMA with the counters and VmFlags that tell whether a range is
// mlocked (lo), excluded from fork (dc = MADV_DONTFORK), zeroed in the child (wf = MADV_WIPEONFORK),
// or huge (ht = hugetlbfs, hg = MADV_HUGEPAGE).
//
// This is the expensive file of a scan (tens of lines per VMA, hundreds of VMAs per process), so it
// is read in pieces into one reused buffer and parsed from the bytes: no regex, no split, no string
// per line; strings only for a VMA's perms, device and pathname, and one shared Set per distinct
// VmFlags line.

import { createHash, type Hash } from 'node:crypto';
import { procPath, readProcLines, type ProcPid } from './procfs.js';

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

function isHexLowerByte(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 97 && c <= 102);
}

function hexDigit(c: number): number {
  return c <= 57 ? c - 48 : c - 87;
}

/** bytes[from, to) as hex: a Number while exact (≤ 13 digits), else through a string. */
function hexAt(bytes: Buffer, from: number, to: number): bigint {
  if (to - from > 13) return BigInt('0x' + bytes.toString('latin1', from, to));
  let value = 0;
  for (let i = from; i < to; i++) value = value * 16 + hexDigit(bytes[i]!);
  return BigInt(value);
}

/** Leading decimal digits after spaces/tabs at bytes[from, to); 0 when there are none. */
function decimalAt(bytes: Buffer, from: number, to: number): number {
  let i = from;
  while (i < to && (bytes[i] === 32 || bytes[i] === 9)) i++;
  let value = 0;
  for (; i < to; i++) {
    const c = bytes[i]! - 48;
    if (c < 0 || c > 9) break;
    value = value * 10 + c;
  }
  return value;
}

function indexOfByte(bytes: Buffer, byte: number, from: number, to: number): number {
  for (let i = from; i < to; i++) if (bytes[i] === byte) return i;
  return -1;
}

/** Header: "start-end perms offset major:minor inode<padding>pathname", bytes[from, to) without the newline. */
function parseHeader(bytes: Buffer, from: number, to: number): SmapsVma {
  const dash = indexOfByte(bytes, 45, from, to);
  const sp1 = indexOfByte(bytes, 32, dash, to);
  const sp2 = indexOfByte(bytes, 32, sp1 + 1, to);
  const sp3 = indexOfByte(bytes, 32, sp2 + 1, to);
  const sp4 = indexOfByte(bytes, 32, sp3 + 1, to);
  let sp5 = indexOfByte(bytes, 32, sp4 + 1, to);
  if (sp5 < 0) sp5 = to;
  let pathStart = sp5;
  while (pathStart < to && bytes[pathStart] === 32) pathStart++;
  return {
    start: hexAt(bytes, from, dash),
    end: hexAt(bytes, dash + 1, sp1),
    perms: bytes.toString('latin1', sp1 + 1, sp2),
    offset: hexAt(bytes, sp2 + 1, sp3),
    device: bytes.toString('latin1', sp3 + 1, sp4),
    inode: decimalAt(bytes, sp4 + 1, sp5),
    pathname: pathStart < to ? bytes.toString('utf8', pathStart, to) : '',
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

// A process's VMAs share a handful of distinct VmFlags lines: one Set per distinct line, shared.
const flagSets = new Map<string, ReadonlySet<string>>();
const MAX_FLAG_SETS = 512;

function flagsOf(bytes: Buffer, from: number, to: number): ReadonlySet<string> {
  const line = bytes.toString('latin1', from, to);
  let flags = flagSets.get(line);
  if (flags === undefined) {
    const set = new Set<string>();
    for (const word of line.split(' ')) if (word !== '') set.add(word);
    flags = set;
    if (flagSets.size >= MAX_FLAG_SETS) flagSets.clear();
    flagSets.set(line, flags);
  }
  return flags;
}

const KEY = {
  Size: Buffer.from('Size'),
  Swap: Buffer.from('Swap'),
  Rss: Buffer.from('Rss'),
  Locked: Buffer.from('Locked'),
  Anonymous: Buffer.from('Anonymous'),
  AnonHugePages: Buffer.from('AnonHugePages'),
  KernelPageSize: Buffer.from('KernelPageSize'),
  VmFlags: Buffer.from('VmFlags'),
};

const NEWLINE_VMFLAGS = Buffer.from('\nVmFlags:');

/** Whether bytes[at, at + key.length) is key (the caller checked the length up to the colon). */
function keyIs(bytes: Buffer, at: number, key: Buffer): boolean {
  for (let i = 1; i < key.length; i++) if (bytes[at + i] !== key[i]) return false;
  return true;
}

/**
 * Parses smaps text fed in whole lines, in as many pieces as it comes. `layout` is a SHA-1 of the
 * VMA header lines, which are exactly the lines of /proc/PID/maps (fs/proc/task_mmu.c prints both
 * with show_map_vma): equal to mapsLayout() as long as no VMA was added, removed, split, merged or
 * moved since.
 */
export class SmapsParser {
  readonly vmas: SmapsVma[] = [];
  private current: SmapsVma | null = null;
  private readonly hash: Hash | null;
  /** flagsOnly: this kernel prints VmFlags (since 3.8 the last line of every record): seen once. */
  private flagsSeen = false;
  /** flagsOnly: after a header, skipping the current record's counters to its VmFlags line. */
  private seeking = false;

  /**
   * With `flagsOnly`, each VMA gets its header fields and VmFlags alone (counters stay 0) and no
   * layout is kept: for callers that look only at which ranges are locked or fork-protected.
   */
  constructor(private readonly flagsOnly = false) {
    this.hash = flagsOnly ? null : createHash('sha1');
  }

  feed(bytes: Buffer, start: number, end: number): void {
    let pos = start;
    while (pos < end) {
      if (this.seeking) {
        // One native search past the counters instead of a look at each of their lines.
        if (!(bytes[pos] === 86 && keyIs(bytes, pos, KEY.VmFlags))) {
          const found = bytes.indexOf(NEWLINE_VMFLAGS, pos);
          if (found < 0 || found + NEWLINE_VMFLAGS.length > end) return;
          pos = found + 1;
        }
        this.seeking = false;
      }
      let eol = bytes.indexOf(10, pos);
      if (eol < 0 || eol > end) eol = end;
      const first = bytes[pos]!;
      // Field keys start with an upper-case letter; VMA headers with a lower-case hex address.
      if (isHexLowerByte(first)) {
        this.current = parseHeader(bytes, pos, eol);
        this.vmas.push(this.current);
        this.hash?.update(bytes.subarray(pos, eol < end ? eol + 1 : eol));
        this.seeking = this.flagsSeen;
      } else if (this.flagsOnly) {
        if (first === 86 && this.current !== null && eol - pos > 8 && bytes[pos + 7] === 58 && keyIs(bytes, pos, KEY.VmFlags)) {
          this.current.flags = flagsOf(bytes, pos + 8, eol);
          this.flagsSeen = true;
        }
      } else if (this.current !== null) {
        const colon = indexOfByte(bytes, 58, pos, eol);
        if (colon > 0) this.field(bytes, pos, colon, eol);
      }
      pos = eol + 1;
    }
  }

  private field(bytes: Buffer, pos: number, colon: number, eol: number): void {
    const vma = this.current!;
    const keyLength = colon - pos;
    switch (bytes[pos]) {
      case 83: // S
        if (keyLength === 4 && keyIs(bytes, pos, KEY.Size)) vma.sizeBytes = decimalAt(bytes, colon + 1, eol) * 1024;
        else if (keyLength === 4 && keyIs(bytes, pos, KEY.Swap)) vma.swapBytes = decimalAt(bytes, colon + 1, eol) * 1024;
        break;
      case 82: // R
        if (keyLength === 3 && keyIs(bytes, pos, KEY.Rss)) vma.rssBytes = decimalAt(bytes, colon + 1, eol) * 1024;
        break;
      case 76: // L
        if (keyLength === 6 && keyIs(bytes, pos, KEY.Locked)) vma.lockedBytes = decimalAt(bytes, colon + 1, eol) * 1024;
        break;
      case 65: // A
        if (keyLength === 9 && keyIs(bytes, pos, KEY.Anonymous)) vma.anonymousBytes = decimalAt(bytes, colon + 1, eol) * 1024;
        else if (keyLength === 13 && keyIs(bytes, pos, KEY.AnonHugePages)) vma.anonHugePagesBytes = decimalAt(bytes, colon + 1, eol) * 1024;
        break;
      case 75: // K
        if (keyLength === 14 && keyIs(bytes, pos, KEY.KernelPageSize)) vma.kernelPageSizeBytes = decimalAt(bytes, colon + 1, eol) * 1024;
        break;
      case 86: // V
        if (keyLength === 7 && keyIs(bytes, pos, KEY.VmFlags)) vma.flags = flagsOf(bytes, colon + 1, eol);
        break;
    }
  }

  /** The layout of what was fed so far (call once, at the end). */
  layout(): string {
    if (this.hash === null) throw new Error('SmapsParser: no layout is kept with flagsOnly');
    return this.hash.digest('hex');
  }
}

/**
 * Parses /proc/PID/smaps text (also works on /proc/PID/maps: every VMA then has zero counters and
 * no flags). Unknown fields are skipped, so new kernels' additions do not break it.
 */
export function parseSmaps(text: string): SmapsVma[] {
  const parser = new SmapsParser();
  const bytes = Buffer.from(text, 'utf8');
  parser.feed(bytes, 0, bytes.length);
  return parser.vmas;
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
  return readSmapsWithLayout(pid)?.vmas ?? null;
}

/** readSmaps, plus the layout the VMAs had (see SmapsParser): read in pieces, never as one string. */
export function readSmapsWithLayout(pid: ProcPid): { vmas: SmapsVma[]; layout: string } | null {
  const parser = new SmapsParser();
  if (!readProcLines(procPath(pid, 'smaps'), (bytes, start, end) => parser.feed(bytes, start, end))) return null;
  return { vmas: parser.vmas, layout: parser.layout() };
}

/**
 * Reads /proc/PID/smaps for each VMA's range, perms, pathname and VmFlags only (counters 0), as
 * readSmaps otherwise: a third of the parsing, for callers that need no counters.
 */
export function readSmapsFlags(pid: ProcPid): SmapsVma[] | null {
  const parser = new SmapsParser(true);
  if (!readProcLines(procPath(pid, 'smaps'), (bytes, start, end) => parser.feed(bytes, start, end))) return null;
  return parser.vmas;
}

/**
 * The layout of pid's VMAs now: a SHA-1 of /proc/PID/maps, comparable with SmapsParser.layout().
 * maps costs a tenth of smaps (no page-table walk). null if the process is gone; throws
 * ProcUnreadableError like readSmaps.
 */
export function mapsLayout(pid: ProcPid): string | null {
  const hash = createHash('sha1');
  if (!readProcLines(procPath(pid, 'maps'), (bytes, start, end) => hash.update(bytes.subarray(start, end)))) return null;
  return hash.digest('hex');
}
