// Buffers to register, with the backings whose pinning behaviour differs: anonymous memory, THP,
// hugetlb, memfd (shmem, shared), and files mapped shared or private, optionally read-only
// (the classic case of registering a PROT_READ MAP_PRIVATE file mapping).

import { randomBytes } from 'node:crypto';
import { closeSync, fstatSync, ftruncateSync, openSync, unlinkSync, writeSync, constants as fsConstants } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SyscallError } from '../lib/errno.js';
import {
  MADV_HUGEPAGE, MAP_ANONYMOUS, MAP_HUGETLB, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE,
  madvise, memfdCreate, mmap, munmap, type Pointer,
} from '../ffi/libc.js';
import { pageSize } from '../proc/pagemap.js';
import { PermissionError, RdmactlError, UnsupportedError, UsageError } from '../lib/errors.js';
import { errorCode } from '../proc/procfs.js';
import { formatBytes, roundUp } from '../lib/size.js';
import { readMeminfo } from '../proc/meminfo.js';
import { readThpPmdBytes } from '../proc/sysfs.js';
import type { Backing, MappedBuffer } from './types.js';

export interface BufferSpec {
  /** Requested bytes; rounded up to the page (or huge page) size. */
  length: number;
  backing: Backing;
  readOnly?: boolean;
  /**
   * For file-shared / file-private: the file to map. Without it an unnamed temporary file in $TMPDIR is
   * used (openTemporaryFile): the kernel frees it with the mapping, however the process ends.
   */
  file?: string | null;
}

let thpBytesCache: number | null = null;

/**
 * The transparent huge page (PMD) size: 2 MiB on x86-64, but 512 MiB on arm64 with 64 KiB pages.
 * The kernel states it in sysfs (Linux ≥ 4.14); older kernels fall back to the hugetlb default size.
 */
export function thpPageBytes(): number {
  if (thpBytesCache !== null) return thpBytesCache;
  const bytes = readThpPmdBytes() ?? (readMeminfo().hugepageSizeBytes || 2 * 1024 * 1024);
  thpBytesCache = bytes;
  return bytes;
}

/**
 * The unit a backing's buffer is mapped (and so registered and charged) in: the THP (PMD) size for thp,
 * the default huge page size for hugetlb, the base page otherwise.
 */
export function backingPageBytes(backing: Backing): number {
  if (backing === 'thp') return thpPageBytes();
  if (backing === 'hugetlb') return readMeminfo().hugepageSizeBytes || thpPageBytes();
  return pageSize();
}

/** Bytes allocateBuffer maps for `length` with this backing: 32 KiB of thp is 2 MiB on x86-64. */
export function mappedLength(length: number, backing: Backing): number {
  return roundUp(length, backingPageBytes(backing));
}

class Mapping implements MappedBuffer {
  private released = false;
  private unmapped = false;
  constructor(
    readonly addr: Pointer,
    readonly length: number,
    readonly backing: Backing,
    readonly readOnly: boolean,
    readonly path: string | null,
  ) {}

  unmap(): void {
    if (this.unmapped || this.released) return;
    munmap(this.addr, this.length);
    this.unmapped = true;
  }

  close(): void {
    if (this.released) return;
    this.released = true;
    if (!this.unmapped) munmap(this.addr, this.length);
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** Map a buffer as `spec` asks. The caller owns it: `using buf = allocateBuffer(…)`. */
export function allocateBuffer(spec: BufferSpec): MappedBuffer {
  const readOnly = spec.readOnly ?? false;
  const prot = readOnly ? PROT_READ : PROT_READ | PROT_WRITE;
  const page = pageSize();
  switch (spec.backing) {
    case 'anon': {
      const length = roundUp(spec.length, page);
      return new Mapping(mmap(length, prot, MAP_PRIVATE | MAP_ANONYMOUS), length, 'anon', readOnly, null);
    }
    case 'thp':
      return mapThp(mappedLength(spec.length, 'thp'), prot, readOnly);
    case 'hugetlb':
      return mapHugetlb(spec.length, prot, readOnly);
    case 'memfd': {
      const length = roundUp(spec.length, page);
      const fd = memfdCreate('rdmactl');
      try {
        ftruncateSync(fd, length);
        return new Mapping(mmap(length, prot, MAP_SHARED, fd, 0), length, 'memfd', readOnly, null);
      } finally {
        closeSync(fd); // the mapping keeps the file alive
      }
    }
    case 'file-shared':
    case 'file-private':
      return mapFile(spec, roundUp(spec.length, page), prot, readOnly);
  }
}

function mapThp(length: number, prot: number, readOnly: boolean): MappedBuffer {
  // Over-map by one huge page and trim, so the range is huge-page aligned and can be backed by THP.
  const hugePage = thpPageBytes();
  const raw = mmap(length + hugePage, prot, MAP_PRIVATE | MAP_ANONYMOUS);
  const alignment = BigInt(hugePage);
  const start = ((raw + alignment - 1n) / alignment) * alignment;
  const head = Number(start - raw);
  if (head > 0) munmap(raw, head);
  const tail = hugePage - head;
  if (tail > 0) munmap(start + BigInt(length), tail);
  const mapping = new Mapping(start, length, 'thp', readOnly, null);
  try {
    madvise(start, length, MADV_HUGEPAGE);
  } catch (err) {
    mapping.close();
    if (err instanceof SyscallError && err.errnoName === 'EINVAL') {
      throw new UnsupportedError('madvise(MADV_HUGEPAGE) failed: this kernel has no transparent huge pages (CONFIG_TRANSPARENT_HUGEPAGE)', [], { cause: err });
    }
    throw err;
  }
  return mapping;
}

function mapHugetlb(requested: number, prot: number, readOnly: boolean): MappedBuffer {
  const meminfo = readMeminfo();
  const hugePage = backingPageBytes('hugetlb');
  const length = mappedLength(requested, 'hugetlb');
  try {
    return new Mapping(mmap(length, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB), length, 'hugetlb', readOnly, null);
  } catch (err) {
    if (err instanceof SyscallError && err.errnoName === 'ENOMEM') {
      const free = meminfo.hugePagesFree;
      throw new UnsupportedError(
        `cannot map ${formatBytes(length)} of hugetlb memory: ${free} huge pages of ${formatBytes(hugePage)} are free, ${Math.ceil(length / hugePage)} needed`,
        [`reserve some first, e.g. as root: echo ${Math.ceil(length / hugePage)} > /proc/sys/vm/nr_hugepages`],
        { cause: err },
      );
    }
    throw err;
  }
}

/** O_TMPFILE (Linux ≥ 3.11): an unnamed regular file in the directory given to open(2). */
const O_TMPFILE = 0o20000000 | fsConstants.O_DIRECTORY;

function temporaryFileError(dir: string, code: string | undefined, doing: string): RdmactlError {
  const what = `cannot ${doing} a temporary file in ${dir} for the file backing: ${code ?? 'unknown error'}`;
  const hints = ['set TMPDIR to a directory you can write to, or map a file of yours with --file'];
  return code === 'EACCES' || code === 'EPERM' ? new PermissionError(what, hints) : new RdmactlError(what, 1, hints);
}

/**
 * A new regular file in `directory` that has no name, open read-write (close-on-exec): the kernel frees
 * it with its last fd or mapping, so a process killed at any point leaves nothing behind. It lives on
 * the directory's file system (a real disk's page cache where $TMPDIR is on one, unlike a memfd).
 * O_TMPFILE where the file system has it (ext4, xfs, btrfs, tmpfs; O_EXCL: it can never be linked
 * into the tree); elsewhere a random name created with O_EXCL and unlinked at once, before any byte
 * is written. Others reach it through /proc/self/fd/N. A directory that cannot take it is one line
 * (EACCES/EPERM: exit 4).
 */
export function openTemporaryFile(directory: string = tmpdir()): number {
  const rw = fsConstants.O_RDWR;
  try {
    return openSync(directory, O_TMPFILE | rw | fsConstants.O_EXCL, 0o600);
  } catch (err) {
    // EOPNOTSUPP: the file system has no O_TMPFILE; EISDIR/EINVAL: a kernel older than O_TMPFILE.
    const code = errorCode(err);
    if (code !== 'EOPNOTSUPP' && code !== 'EISDIR' && code !== 'EINVAL') throw temporaryFileError(directory, code, 'create');
  }
  const path = join(directory, `rdmactl-${randomBytes(8).toString('hex')}`);
  let fd: number;
  try {
    fd = openSync(path, rw | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW, 0o600);
  } catch (err) {
    throw temporaryFileError(directory, errorCode(err), 'create');
  }
  try {
    unlinkSync(path);
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  return fd;
}

function mapFile(spec: BufferSpec, length: number, prot: number, readOnly: boolean): MappedBuffer {
  const shared = spec.backing === 'file-shared';
  const path = spec.file ?? null;
  let fd: number;
  if (path === null) {
    // An unnamed temporary file with recognisable content, so file pages (not the zero page) back the mapping.
    fd = openTemporaryFile();
    try {
      const chunk = Buffer.alloc(Math.min(length, 1 << 20), 0x5a);
      for (let written = 0; written < length; written += chunk.length) writeSync(fd, chunk, 0, Math.min(chunk.length, length - written), written);
    } catch (err) {
      closeSync(fd);
      throw temporaryFileError(tmpdir(), errorCode(err), 'fill');
    }
  } else {
    try {
      // A writable shared mapping needs the file open for writing; a private one never writes the file back.
      fd = openSync(path, readOnly || !shared ? fsConstants.O_RDONLY : fsConstants.O_RDWR);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new UsageError(`cannot open --file '${path}': ${code ?? String(err)}${code === 'EACCES' && shared && !readOnly ? ' (a writable shared mapping needs write access; add --read-only or use file-private)' : ''}`);
    }
  }
  const what = path === null ? 'a temporary file' : `--file '${path}'`;
  try {
    const fileBytes = fstatSync(fd).size;
    if (fileBytes < length) {
      throw new UsageError(`${what} is ${formatBytes(fileBytes)}, smaller than the ${formatBytes(length)} to register: use a smaller size or a larger file`);
    }
    const addr = mmap(length, prot, shared ? MAP_SHARED : MAP_PRIVATE, fd, 0);
    return new Mapping(addr, length, spec.backing, readOnly, path);
  } catch (err) {
    if (err instanceof SyscallError) throw new RdmactlError(`cannot map ${what}: ${err.message}`, 1, [], { cause: err });
    throw err;
  } finally {
    closeSync(fd); // the mapping keeps the file (and an unnamed one alive)
  }
}
