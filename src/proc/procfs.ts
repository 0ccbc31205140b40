// Shared plumbing for the /proc readers: paths, the vanished/unreadable split, and a sync reader.
//
// Reader convention used by every readX(pid) in this directory:
//   - returns the parsed record on success;
//   - returns null when the process, fd or cgroup went away mid-read (isGone: ENOENT, ESRCH, ENODEV,
//     EINVAL once the file is gone) — a normal outcome while scanning a live system, not an error;
//   - throws ProcUnreadableError when the kernel refuses (EACCES, EPERM), so a scan can count it.
// Anything else (EIO, a bug) propagates unchanged.

import { existsSync, openSync, readdirSync, readSync, closeSync, constants as fsConstants } from 'node:fs';
import { PermissionError } from '../lib/errors.js';

export type ProcPid = number | 'self';

export const PROC_ROOT = '/proc';

export function procPath(pid: ProcPid, file: string): string {
  return `${PROC_ROOT}/${pid}/${file}`;
}

/** The numeric entries of /proc: every process (thread group) the kernel lists. */
export function listPids(): number[] {
  const pids: number[] = [];
  for (const name of readdirSync(PROC_ROOT)) {
    const first = name.charCodeAt(0);
    if (first >= 48 && first <= 57) pids.push(Number(name));
  }
  return pids;
}

/** The kernel refused to show this file (ptrace access check, hidepid, mode bits). */
export class ProcUnreadableError extends PermissionError {
  readonly path: string;
  readonly code: string;
  constructor(path: string, code: string, options?: { cause?: unknown }) {
    super(`cannot read ${path}: ${code === 'EFBIG' ? `larger than ${MAX_FILE_BYTES >> 20} MiB, not read` : code}`, code === 'EFBIG' ? [] : ['run as root or as the owner of the process'], options);
    this.name = 'ProcUnreadableError';
    this.path = path;
    this.code = code;
  }
}

/** The `code` of a Node.js system error (ENOENT, EACCES, …), if it has one. */
export function errorCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const code = (err as { code: unknown }).code;
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}

/**
 * Whether a failed read of a /proc, sysfs or cgroup file means that what it described is gone: the
 * one test every reader applies (through procTry), so a process or cgroup removed mid-scan is never
 * an error. ENOENT and ESRCH: the process, fd or file went away. ENODEV: the file was open when its
 * cgroup was removed (kernfs refuses reads of a removed node). EINVAL only when `path` no longer
 * exists: some files answer it while their process or group is torn down, but an EINVAL on a file
 * that is still there is a real error and is kept.
 */
export function isGone(err: unknown, path?: string): boolean {
  const code = errorCode(err);
  if (code === 'ENOENT' || code === 'ESRCH' || code === 'ENODEV') return true;
  return code === 'EINVAL' && path !== undefined && !existsSync(path);
}

export function isUnreadableError(err: unknown): boolean {
  const code = errorCode(err);
  return code === 'EACCES' || code === 'EPERM';
}

/**
 * Applies the reader convention to an fs operation: vanished → null, refused → ProcUnreadableError.
 */
export function procTry<T>(path: string, op: () => T): T | null {
  try {
    return op();
  } catch (err) {
    if (isGone(err, path)) return null;
    if (isUnreadableError(err)) throw new ProcUnreadableError(path, errorCode(err) ?? 'EACCES', { cause: err });
    throw err;
  }
}

/**
 * The most a whole-file read takes in, and the longest line a line reader accepts: kernel files are
 * bounded (a command line is at most 6 MiB, a mountinfo of thousands of mounts a few MiB), but a
 * cgroup or sysfs file of a misbehaving driver must not grow the heap without end. Beyond it the read
 * is refused like a permission (ProcUnreadableError, code EFBIG): a scan counts it as unreadable.
 */
export const MAX_FILE_BYTES = 64 * 1024 * 1024;

function tooLarge(path: string): ProcUnreadableError {
  return new ProcUnreadableError(path, 'EFBIG');
}

// One scratch buffer for small files: /proc files report size 0, so readFileSync cannot size its
// buffer and grows it chunk by chunk; status is ~1.5 KiB, so a fixed buffer avoids that and the fstat.
const SCRATCH_BYTES = 16 * 1024;

/** A buffer twice the size of `buffer`, holding its first `keep` bytes. */
function doubled(buffer: Buffer<ArrayBuffer>, keep: number): Buffer<ArrayBuffer> {
  const bigger = Buffer.allocUnsafe(buffer.length * 2);
  buffer.copy(bigger, 0, 0, keep);
  return bigger;
}
let scratch = Buffer.allocUnsafe(SCRATCH_BYTES);

/**
 * Reads a whole /proc (or sysfs, cgroupfs) text file under the reader convention, through the
 * scratch buffer: open, read until EOF, close. A file larger than the buffer grows it for the read;
 * the buffer goes back to its usual size afterwards, so one large file (a mountinfo with thousands
 * of mounts) is not kept.
 */
export function readProcText(path: string): string | null {
  const length = readIntoScratch(path);
  if (length === null) return null;
  const text = scratch.toString('utf8', 0, length);
  if (scratch.length > SCRATCH_BYTES) scratch = Buffer.allocUnsafe(SCRATCH_BYTES);
  return text;
}

/**
 * Reads a small /proc file into the shared scratch buffer; returns its length. Same convention as
 * readProcText. `shortReadIsEof`: for single-record seq_files such as status, which the kernel renders
 * whole on the first read, a read shorter than the space offered is the end (saves a syscall per file).
 */
function readIntoScratch(path: string, shortReadIsEof = false): number | null {
  return procTry(path, () => {
    const fd = openSync(path, fsConstants.O_RDONLY);
    try {
      let length = 0;
      for (;;) {
        if (length === scratch.length) {
          if (length >= MAX_FILE_BYTES) {
            scratch = Buffer.allocUnsafe(SCRATCH_BYTES);
            throw tooLarge(path);
          }
          scratch = doubled(scratch, length);
        }
        const space = scratch.length - length;
        const n = readSync(fd, scratch, length, space, null);
        length += n;
        if (n === 0 || (shortReadIsEof && n < space)) break;
      }
      return length;
    } finally {
      closeSync(fd);
    }
  });
}

/** A small /proc file's bytes, valid only until the next read through this module. */
export interface ScratchBytes {
  bytes: Buffer;
  length: number;
  text(): string;
}

/**
 * Like readProcText, without decoding: for callers that can decide from a few bytes. Only for
 * single-record files rendered whole on the first read (status, stat, statm).
 */
export function readSmallProcBytes(path: string): ScratchBytes | null {
  const length = readIntoScratch(path, true);
  if (length === null) return null;
  const bytes = scratch;
  return { bytes, length, text: () => bytes.toString('utf8', 0, length) };
}

// One buffer for large line-oriented files (smaps, maps), read in pieces: a holder's smaps is
// ~100 KiB (a Node process) to megabytes, and reading it whole as a string puts every copy in V8's
// large-object space, whose pages V8 keeps long after (the exporter's RSS grew by tens of MiB).
const PIECES_BYTES = 64 * 1024;
let pieces = Buffer.allocUnsafe(PIECES_BYTES);

/**
 * Reads a /proc file of lines in pieces through one reused buffer. `onLines(bytes, start, end)` gets
 * whole lines only (bytes[start, end), each ending in '\n' except possibly the file's last); the
 * bytes are valid only during the call. Returns false when the file is gone (isGone, also mid-read:
 * what was delivered then is not the whole file); throws ProcUnreadableError when refused.
 * Not re-entrant: onLines must not read through this function.
 */
export function readProcLines(path: string, onLines: (bytes: Buffer, start: number, end: number) => void): boolean {
  const done = procTry(path, () => {
    const fd = openSync(path, fsConstants.O_RDONLY);
    try {
      let filled = 0;
      for (;;) {
        // One line longer than the buffer (a path near PATH_MAX on a small buffer): grow it.
        if (filled === pieces.length) {
          if (filled >= MAX_FILE_BYTES) {
            pieces = Buffer.allocUnsafe(PIECES_BYTES);
            throw tooLarge(path);
          }
          pieces = doubled(pieces, filled);
        }
        const n = readSync(fd, pieces, filled, pieces.length - filled, null);
        if (n === 0) {
          if (filled > 0) onLines(pieces, 0, filled);
          return true;
        }
        const end = filled + n;
        // The carried-over part holds no newline: the last one, if any, is in what was just read.
        const lastNewline = pieces.lastIndexOf(10, end - 1);
        if (lastNewline < 0) {
          filled = end;
          continue;
        }
        onLines(pieces, 0, lastNewline + 1);
        pieces.copy(pieces, 0, lastNewline + 1, end);
        filled = end - lastNewline - 1;
      }
    } finally {
      closeSync(fd);
    }
  });
  return done === true;
}

/** `\nKey:   1234 kB` in raw bytes → 1234 (the number, not converted); 0 when absent. */
export function kbFieldInBytes(bytes: Buffer, length: number, needle: Buffer): number {
  const at = bytes.indexOf(needle);
  if (at < 0 || at >= length) return 0;
  let i = at + needle.length;
  while (i < length && (bytes[i] === 32 || bytes[i] === 9)) i++;
  let value = 0;
  for (; i < length; i++) {
    const c = bytes[i]! - 48;
    if (c < 0 || c > 9) break;
    value = value * 10 + c;
  }
  return value;
}

/** Value of `Key:<spaces/tabs>value` from a key/value /proc file, found without splitting lines. */
export function procFieldText(text: string, key: string): string | null {
  let at: number;
  if (text.startsWith(key + ':')) at = 0;
  else {
    at = text.indexOf('\n' + key + ':');
    if (at < 0) return null;
    at += 1;
  }
  let start = at + key.length + 1;
  const end = lineEnd(text, start);
  while (start < end && (text.charCodeAt(start) === 32 || text.charCodeAt(start) === 9)) start++;
  return text.slice(start, end);
}

export function lineEnd(text: string, from: number): number {
  const nl = text.indexOf('\n', from);
  return nl < 0 ? text.length : nl;
}

/** Parses the leading decimal digits at text[from..] without allocating; NaN when there are none. */
export function parseDecimalAt(text: string, from: number): number {
  let i = from;
  while (i < text.length && (text.charCodeAt(i) === 32 || text.charCodeAt(i) === 9)) i++;
  let value = 0;
  const start = i;
  for (; i < text.length; i++) {
    const c = text.charCodeAt(i) - 48;
    if (c < 0 || c > 9) break;
    value = value * 10 + c;
  }
  return i === start ? Number.NaN : value;
}

/** `1234 kB` → bytes; null when the field is absent or not a number. */
export function kbFieldBytes(text: string, key: string): number | null {
  const value = procFieldText(text, key);
  if (value === null) return null;
  const kb = parseDecimalAt(value, 0);
  return Number.isNaN(kb) ? null : kb * 1024;
}
