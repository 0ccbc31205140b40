// Reading small configuration files (limits.conf, another root's passwd, …) from a directory tree
// that may belong to someone else: an image, a chroot, a user's copy of /etc, read by root. The one
// place that opens them.
//
//   - Paths are resolved as if DIR were the root (openat2 RESOLVE_IN_ROOT): an absolute symlink or a
//     ".." in DIR stays inside DIR, so a link to /etc/shadow names DIR/etc/shadow, never the host's.
//     Symlinks inside DIR are followed that way (NixOS-style /etc links keep working); magic links
//     (/proc/PID/fd/N) are refused.
//   - A file is first opened with O_PATH, which opens nothing (no device's open(), no FIFO wait), and
//     fstat'd: only regular files are read, through a second open of that same inode. A FIFO, device,
//     socket or directory is refused unopened.
//   - At most `maxBytes` are read: a larger file (a sparse 4 GiB one) is refused from its size, and one
//     that grows while read is refused when it passes the cap.
//   - A directory listing stops after MAX_ENTRIES names.
// Every refusal is a value naming the file and the reason (the caller reports it and goes on); only a
// DIR that cannot be opened at all is an error.
// Kernels without openat2 (before 5.6, or a seccomp filter answering ENOSYS): the path is opened below
// DIR with open(2); then a symlink as the last component is refused, not followed.

import { closeSync, fstatSync, openSync, opendirSync, readSync, constants as fsConstants, type Stats } from 'node:fs';
import { AT_FDCWD, O_CLOEXEC, O_PATH, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS, openat2 } from '../ffi/libc.js';
import { SyscallError } from '../lib/errno.js';
import { UsageError } from '../lib/errors.js';
import { formatBytes } from '../lib/size.js';
import { errorCode } from './procfs.js';

/** limits.conf and limits.d files are a few KiB; 1 MiB leaves room for generated ones. */
export const CONFIG_MAX_BYTES = 1024 * 1024;
/** passwd and group of a large site without a directory service. */
export const ACCOUNTS_MAX_BYTES = 64 * 1024 * 1024;
/** Names read from one directory (limits.d). */
export const MAX_ENTRIES = 4096;

/** An open DIR: its path as given and an O_PATH descriptor everything is resolved from. */
export interface RootDir {
  dir: string;
  fd: number;
}

export type RootRead =
  | { kind: 'text'; path: string; text: string }
  /** No such file (pam_limits and getpwnam simply skip it too). */
  | { kind: 'missing'; path: string }
  /** Not read: why, in words, for "skipped PATH: REASON". */
  | { kind: 'skipped'; path: string; reason: string };

export type RootList =
  | { kind: 'names'; path: string; names: string[]; truncated: boolean }
  | { kind: 'missing'; path: string }
  | { kind: 'skipped'; path: string; reason: string };

let openat2Missing = false;

const REASONS: Record<string, string> = {
  ELOOP: 'too many levels of symbolic links: a symlink loop, or a link into /proc',
  ENOTDIR: 'a component of the path is not a directory',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENAMETOOLONG: 'name too long',
  EXDEV: 'resolves outside the directory',
  EAGAIN: 'the tree changed while it was resolved, try again',
};

function reasonOf(err: unknown): string {
  const code = err instanceof SyscallError ? err.errnoName : errorCode(err);
  if (code === undefined) throw err;
  return REASONS[code] ? `${REASONS[code]} (${code})` : code;
}

function codeOf(err: unknown): string | undefined {
  return err instanceof SyscallError ? err.errnoName : errorCode(err);
}

/**
 * Opens DIR for the readers below; the caller closes it with closeRoot. A DIR that is missing, not a
 * directory or not searchable is a usage error (exit 2): nothing under it could be read.
 */
export function openRoot(dir: string, flag = '--root'): RootDir {
  if (dir === '') throw new UsageError(`${flag} needs a directory`);
  let fd: number;
  try {
    fd = openat2Missing ? openSync(dir, O_PATH | fsConstants.O_DIRECTORY) : openat2(AT_FDCWD, dir, O_PATH | O_CLOEXEC | fsConstants.O_DIRECTORY, 0);
  } catch (err) {
    if (codeOf(err) === 'ENOSYS' && !openat2Missing) {
      openat2Missing = true;
      return openRoot(dir, flag);
    }
    const code = codeOf(err);
    const why = code === 'ENOENT' ? 'no such directory' : code === 'ENOTDIR' ? 'not a directory' : reasonOf(err);
    throw new UsageError(`${flag} '${dir}': ${why}`);
  }
  return { dir, fd };
}

export function closeRoot(root: RootDir): void {
  closeSync(root.fd);
}

/** DIR/rel as the user would write it, for messages. */
export function rootPath(root: RootDir, rel: string): string {
  return `${root.dir.replace(/\/+$/, '')}/${rel}`;
}

/** An O_PATH fd for rel below the root (resolved inside it), or the error. */
function openPathBelow(root: RootDir, rel: string, extraFlags = 0): number {
  if (!openat2Missing) {
    try {
      return openat2(root.fd, rel, O_PATH | O_CLOEXEC | extraFlags, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
    } catch (err) {
      if (codeOf(err) !== 'ENOSYS') throw err;
      openat2Missing = true;
    }
  }
  return openSync(`/proc/self/fd/${root.fd}/${rel}`, O_PATH | fsConstants.O_NOFOLLOW | extraFlags);
}

function kindOf(stats: Stats): string {
  if (stats.isFIFO()) return 'a FIFO';
  if (stats.isCharacterDevice()) return 'a character device';
  if (stats.isBlockDevice()) return 'a block device';
  if (stats.isSocket()) return 'a socket';
  if (stats.isDirectory()) return 'a directory';
  if (stats.isSymbolicLink()) return openat2Missing ? 'a symbolic link (not followed: this kernel has no openat2)' : 'a symbolic link';
  if (stats.isFile()) return 'a regular file';
  return 'an unknown kind of file';
}

/** What a missing path is: absent, or a symlink whose target is absent under DIR. */
function missingOrDangling(root: RootDir, rel: string, path: string): RootRead {
  let fd: number;
  try {
    fd = openPathBelow(root, rel, fsConstants.O_NOFOLLOW);
  } catch {
    return { kind: 'missing', path };
  }
  try {
    return fstatSync(fd).isSymbolicLink() ? { kind: 'skipped', path, reason: `a symbolic link to a file that does not exist under ${root.dir}` } : { kind: 'missing', path };
  } finally {
    closeSync(fd);
  }
}

/**
 * Reads DIR/rel as text if it is a regular file of at most maxBytes. Never throws for what the tree
 * holds: missing files and refusals are values.
 */
export function readRootFile(root: RootDir, rel: string, maxBytes = CONFIG_MAX_BYTES): RootRead {
  const path = rootPath(root, rel);
  let pathFd: number;
  try {
    pathFd = openPathBelow(root, rel);
  } catch (err) {
    if (codeOf(err) === 'ENOENT') return missingOrDangling(root, rel, path);
    return { kind: 'skipped', path, reason: reasonOf(err) };
  }
  let fd = -1;
  try {
    const stats = fstatSync(pathFd);
    if (!stats.isFile()) return { kind: 'skipped', path, reason: `${kindOf(stats)}, not a regular file` };
    if (stats.size > maxBytes) return { kind: 'skipped', path, reason: `${formatBytes(stats.size)}, larger than the ${formatBytes(maxBytes)} such a file can be` };
    // The same inode, now opened for reading (permission is checked here). O_NONBLOCK: a mandatory lock never waits.
    try {
      fd = openSync(`/proc/self/fd/${pathFd}`, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK | fsConstants.O_NOCTTY);
    } catch (err) {
      return { kind: 'skipped', path, reason: reasonOf(err) };
    }
    let buffer = Buffer.allocUnsafe(Math.min(stats.size, maxBytes) + 1);
    let length = 0;
    for (;;) {
      if (length === buffer.length) {
        if (length > maxBytes) return { kind: 'skipped', path, reason: `grew past ${formatBytes(maxBytes)} while it was read` };
        const bigger = Buffer.allocUnsafe(Math.min(buffer.length * 2, maxBytes + 1));
        buffer.copy(bigger, 0, 0, length);
        buffer = bigger;
      }
      let n: number;
      try {
        n = readSync(fd, buffer, length, buffer.length - length, null);
      } catch (err) {
        return { kind: 'skipped', path, reason: reasonOf(err) };
      }
      if (n === 0) break;
      length += n;
    }
    return { kind: 'text', path, text: buffer.toString('utf8', 0, length) };
  } finally {
    if (fd >= 0) closeSync(fd);
    closeSync(pathFd);
  }
}

/** The names in directory DIR/rel (resolved like readRootFile), at most MAX_ENTRIES, unsorted. */
export function listRootDir(root: RootDir, rel: string, maxEntries = MAX_ENTRIES): RootList {
  const path = rootPath(root, rel);
  let pathFd: number;
  try {
    pathFd = openPathBelow(root, rel);
  } catch (err) {
    const read = codeOf(err) === 'ENOENT' ? missingOrDangling(root, rel, path) : { kind: 'skipped' as const, path, reason: reasonOf(err) };
    return read.kind === 'text' ? { kind: 'missing', path } : read;
  }
  try {
    const stats = fstatSync(pathFd);
    if (!stats.isDirectory()) return { kind: 'skipped', path, reason: `${kindOf(stats)}, not a directory` };
    const names: string[] = [];
    let truncated = false;
    try {
      const dir = opendirSync(`/proc/self/fd/${pathFd}`);
      try {
        for (let entry = dir.readSync(); entry !== null; entry = dir.readSync()) {
          if (names.length === maxEntries) {
            truncated = true;
            break;
          }
          names.push(entry.name);
        }
      } finally {
        dir.closeSync();
      }
    } catch (err) {
      return { kind: 'skipped', path, reason: reasonOf(err) };
    }
    return { kind: 'names', path, names, truncated };
  } finally {
    closeSync(pathFd);
  }
}
