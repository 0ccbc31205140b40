// Pieces several scenarios share that the engine does not need: a set-up failure that is the
// kernel refusing the pin (with its errno), a file filled with a known pattern and what it reads,
// meminfo in one line. The row, skips, release order, observations and polling are the engine's
// (setup.ts, fork/registeredRange.ts, evidence.ts).

import { closeSync, readSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { openTemporaryFile } from '../../engine/buffer.js';
import { SyscallError } from '../../lib/errno.js';
import { readMeminfo } from '../../proc/meminfo.js';
import { classify, type Content } from '../../fork/observe.js';
import { pwriteAll } from '../../fork/devicePath.js';
import { procPath } from '../../proc/procfs.js';

/** The kernel's own refusal inside an engine error (which wraps it as `cause`), or null. */
export function refusalOf(err: unknown): SyscallError | null {
  for (let e: unknown = err, depth = 0; e !== undefined && e !== null && depth < 8; depth++) {
    if (e instanceof SyscallError) return e;
    e = (e as { cause?: unknown }).cause;
  }
  return null;
}

/**
 * The kernel refusing to pin this kind of mapping (EFAULT, EACCES, EOPNOTSUPP from the registration
 * call) — a verdict of the scenarios that ask for it — or null for any other failure (limits, no
 * device, a broken set-up), which is a skip or an error.
 */
export function pinRefusalOf(err: unknown): SyscallError | null {
  const refusal = refusalOf(err);
  if (refusal === null || refusal.call === 'io_uring_setup') return null;
  return ['EFAULT', 'EACCES', 'EOPNOTSUPP'].includes(refusal.errnoName) ? refusal : null;
}

/** Mlocked and Unevictable from /proc/meminfo, in one line for an observation's note. */
export function meminfoLine(): string {
  const m = readMeminfo();
  return `meminfo Mlocked ${m.mlockedBytes / 1024} kB, Unevictable ${m.unevictableBytes / 1024} kB`;
}

/**
 * A temporary regular file filled with one byte, open read-write, with no name (openTemporaryFile): the
 * kernel frees it when its fd and mappings go, so a scenario killed mid-run leaves no file and no
 * directory. `path` (/proc/self/fd/N) opens the same file again. close() closes the fd.
 */
export class PatternFile implements Disposable {
  readonly path: string;
  readonly fd: number;
  private isClosed = false;

  constructor(readonly length: number, byte: number, directory = tmpdir()) {
    this.fd = openTemporaryFile(directory);
    this.path = procPath('self', `fd/${this.fd}`);
    try {
      this.fill(byte);
    } catch (err) {
      this.close();
      throw err;
    }
  }

  /** pwrite `byte` over the whole file (through the page cache, as any writer of the file would). */
  fill(byte: number): void {
    pwriteAll(this.fd, Buffer.alloc(this.length, byte));
  }

  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    closeSync(this.fd);
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** What a file holds now, read with pread: a pattern, or 'eof' when it has no bytes left (truncated). */
export type FileContent = Content | 'eof';

/** pread of up to `length` bytes at offset 0 of `fd`. */
export function fileSees(fd: number, length: number): { content: FileContent; bytes: number } {
  const buf = Buffer.alloc(length);
  let got = 0;
  while (got < length) {
    const n = readSync(fd, buf, got, length - got, got);
    if (n === 0) break;
    got += n;
  }
  return { content: got === 0 ? 'eof' : classify(buf.subarray(0, got)), bytes: got };
}

/** "file (pread): 65536 bytes of pre-fork" / "file (pread): EOF, 0 bytes". */
export function fileLine(fd: number, length: number): { content: FileContent; line: string } {
  const { content, bytes } = fileSees(fd, length);
  return { content, line: content === 'eof' ? 'file (pread): EOF, 0 bytes' : `file (pread): ${bytes} bytes, ${content}` };
}

/** The file system a file lives on: where it is decides which long-term pins the kernel allows. */
export { filesystemOf } from '../../engine/filePin.js';

/** Pages of `bytes` (rounded up). */
export function pagesOf(bytes: number, pageBytes: number): number {
  return Math.ceil(bytes / pageBytes);
}
