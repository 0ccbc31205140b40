// Whether this kernel lets a long-term write pin (FOLL_PIN | FOLL_LONGTERM | FOLL_WRITE, what
// io_uring fixed buffers and writable verbs MRs take) hold a shared file mapping's pages. Linux 6.5
// started refusing it with EFAULT for files that need dirty tracking (mm/gup.c: check_vma_flags →
// writable_file_mapping_allowed → vma_needs_dirty_tracking: ext4, xfs, btrfs… but not shmem/tmpfs or
// hugetlbfs), because the file system cannot know the device writes the pages behind its back.
// No version table: a one-page probe asks the running kernel on the file system in question.

import { closeSync, statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { IoUring } from '../ffi/io_uring.js';
import { MAP_SHARED, PROT_READ, PROT_WRITE, mmap, munmap, type Pointer } from '../ffi/libc.js';
import { SyscallError } from '../lib/errno.js';
import { pwriteAll } from '../lib/writeAll.js';
import { pageSize } from '../proc/pagemap.js';
import { openTemporaryFile } from './buffer.js';

const FILESYSTEMS: ReadonlyMap<number, string> = new Map([
  [0x01021994, 'tmpfs (shmem)'], [0xef53, 'ext2/3/4'], [0x58465342, 'xfs'], [0x9123683e, 'btrfs'],
  [0x794c7630, 'overlayfs'], [0x01021997, '9p'], [0x6969, 'nfs'], [0x65735546, 'fuse'], [0xf2f52010, 'f2fs'],
]);

/** The file system a path lives on (statfs f_type), by name where known: pins of shmem and other files differ. */
export function filesystemOf(path: string): string {
  try {
    const type = Number(statfsSync(path).type);
    return FILESYSTEMS.get(type) ?? `filesystem 0x${type.toString(16)}`;
  } catch {
    return 'unknown filesystem';
  }
}

export type FilePinOutcome = 'allowed' | 'refused' | 'unknown';

export interface FilePinProbe {
  /** Where the probe's file lived: the directory file-backed buffers without --file use ($TMPDIR). */
  directory: string;
  filesystem: string;
  outcome: FilePinOutcome;
  /** The call that answered (io_uring_register for a refusal; the failing step for unknown). */
  call: string | null;
  /** errno of a refusal (EFAULT, EOPNOTSUPP) or of the step that kept the probe from answering. */
  errnoName: string | null;
}

/**
 * Registers one page of a MAP_SHARED, writable mapping of a new unnamed file in `directory` as an
 * io_uring fixed buffer — the FOLL_LONGTERM write pin itself — and releases it at once. EFAULT or
 * EOPNOTSUPP from the registration: refused. Anything else that stops it (io_uring disabled, no
 * memlock left, a directory that cannot take a file) leaves the answer unknown, with the errno.
 */
export function probeLongtermFilePin(directory: string = tmpdir()): FilePinProbe {
  const page = pageSize();
  const base = { directory, filesystem: filesystemOf(directory) };
  const unknown = (call: string, err: unknown): FilePinProbe => ({
    ...base, outcome: 'unknown', call, errnoName: err instanceof SyscallError ? err.errnoName : (err as NodeJS.ErrnoException).code ?? String(err),
  });
  let fd: number;
  try {
    fd = openTemporaryFile(directory);
  } catch (err) {
    return unknown('open', (err as { cause?: unknown }).cause ?? err);
  }
  let addr: Pointer | null = null;
  let ring: IoUring | null = null;
  try {
    try {
      pwriteAll(fd, Buffer.alloc(page, 0x5a)); // a real page of the file, not a hole
      addr = mmap(page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    } catch (err) {
      return unknown('mmap', err);
    }
    try {
      ring = new IoUring(1);
    } catch (err) {
      if (err instanceof SyscallError) return unknown('io_uring_setup', err);
      throw err;
    }
    try {
      ring.registerBuffers([{ addr, length: page }]);
    } catch (err) {
      if (!(err instanceof SyscallError)) throw err;
      if (err.errnoName === 'EFAULT' || err.errnoName === 'EOPNOTSUPP') return { ...base, outcome: 'refused', call: 'io_uring_register', errnoName: err.errnoName };
      return unknown('io_uring_register', err);
    }
    return { ...base, outcome: 'allowed', call: 'io_uring_register', errnoName: null };
  } finally {
    ring?.close(); // closing the ring releases the pin
    if (addr !== null) munmap(addr, page);
    closeSync(fd);
  }
}
