// --textfile: the exposition written to DIR/rdmactl.prom for node_exporter's textfile collector.
// Each write goes to a new temporary file in the same directory, written in full, flushed, then
// renamed over the old one, so the collector never reads half a file; a write that fails leaves the
// previous file intact and removes its temporary file.
//
// rdmactl runs as root and DIR is often writable by other users (several writers share it). So:
// DIR is opened once, without following a symbolic link, and every name is then reached through
// that open directory (/proc/self/fd/N/NAME), never through the path again; a temporary file is
// created new (O_CREAT|O_EXCL|O_NOFOLLOW: an existing file or symbolic link there is never opened)
// under a name nobody can guess; rename(2) replaces a symbolic link at rdmactl.prom, never follows it.

import { randomBytes } from 'node:crypto';
import { closeSync, constants, fstatSync, fsyncSync, lstatSync, openSync, readdirSync, renameSync, unlinkSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { PermissionError, RdmactlError, UsageError } from '../lib/errors.js';
import { pwriteAll } from '../lib/writeAll.js';
import { errorCode, procPath } from '../proc/procfs.js';

export const TEXTFILE_NAME = 'rdmactl.prom';

// node_exporter reads only *.prom: a temporary file is never picked up half-written. The pid says
// whose it is (a stale one is removed only when that process is gone); the random part makes the
// name impossible to plant in advance.
const TEMPORARY_PREFIX = `.${TEXTFILE_NAME}.`;
/** Ours: .rdmactl.prom.PID.RANDOM.tmp, and .rdmactl.prom.PID.tmp of rdmactl 0.1.0. */
const TEMPORARY_NAME = /^\.rdmactl\.prom\.(\d+)(?:\.[0-9a-f]{32})?\.tmp$/;

/** S_ISVTX (Node's fs.constants lacks it). */
const STICKY = 0o1000;

const DIR_HINT = ['give the directory node_exporter reads with --collector.textfile.directory'];

/** DIR opened for the whole run; names in it are reached only through the open directory. */
export interface TextfileDir {
  /** DIR as given, for messages. */
  readonly path: string;
  readonly fd: number;
}

/** The open directory as a path (/proc/self/fd/N), names inside it resolved through the fd. */
function dirFdPath(dir: TextfileDir): string {
  return procPath('self', `fd/${dir.fd}`);
}

function inDir(dir: TextfileDir, name: string): string {
  return `${dirFdPath(dir)}/${name}`;
}

/**
 * Opens DIR, refusing a symbolic link or non-directory (usage error) and a directory others may write
 * without the sticky bit (permission error: anyone could rename our files there).
 */
export function openTextfileDir(dir: string): TextfileDir {
  let stats: Stats;
  try {
    stats = lstatSync(dir);
  } catch (err) {
    throw new UsageError(`--textfile ${dir}: ${errorCode(err) === 'ENOENT' ? 'no such directory' : (err as Error).message}`, DIR_HINT);
  }
  if (stats.isSymbolicLink()) throw new UsageError(`--textfile ${dir}: is a symbolic link; give the directory itself`);
  if (!stats.isDirectory()) throw new UsageError(`--textfile ${dir}: not a directory`);
  let fd: number;
  try {
    // O_NOFOLLOW: DIR cannot have become a symbolic link since the look above.
    fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
  } catch (err) {
    const code = errorCode(err);
    if (code === 'ENOTDIR' || code === 'ELOOP') throw new UsageError(`--textfile ${dir}: not a directory`);
    if (code === 'EACCES' || code === 'EPERM') throw new PermissionError(`cannot write ${join(dir, TEXTFILE_NAME)}: ${code}`, ['run as a user that may write the directory, or choose another with --textfile DIR']);
    throw new RdmactlError(`--textfile ${dir}: ${err instanceof Error ? err.message : String(err)}`);
  }
  // The checks that matter are on what we opened, not on the path.
  const mode = fstatSync(fd).mode;
  if ((mode & constants.S_IWOTH) !== 0 && (mode & STICKY) === 0) {
    closeSync(fd);
    throw new PermissionError(`--textfile ${dir}: writable by every user and not sticky (chmod o-w or chmod +t it)`);
  }
  return { path: dir, fd };
}

export function closeTextfileDir(dir: TextfileDir): void {
  closeSync(dir.fd);
}

function processGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return errorCode(err) === 'ESRCH';
  }
}

/**
 * Removes temporary files a killed run left: our name pattern, a regular file (lstat: never a
 * symbolic link) owned by our effective uid, of a process that is gone. Returns how many.
 */
export function removeStaleTemporaries(dir: TextfileDir): number {
  const euid = process.geteuid?.() ?? 0;
  let removed = 0;
  for (const name of readdirSync(inDir(dir, '.'))) {
    const match = TEMPORARY_NAME.exec(name);
    if (!match) continue;
    const pid = Number(match[1]);
    try {
      const stats = lstatSync(inDir(dir, name));
      if (!stats.isFile() || stats.uid !== euid || pid === process.pid || !processGone(pid)) continue;
      // unlink(2) removes the name; even if it was swapped for a link since, nothing is followed.
      unlinkSync(inDir(dir, name));
      removed += 1;
    } catch {
      // gone already, or not ours to remove
    }
  }
  return removed;
}

/** Creates a temporary file no one else can have created: a new random name each try. */
function createTemporary(dir: TextfileDir): { name: string; fd: number } {
  for (let attempt = 0; ; attempt++) {
    const name = `${TEMPORARY_PREFIX}${process.pid}.${randomBytes(16).toString('hex')}.tmp`;
    try {
      const fd = openSync(inDir(dir, name), constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644);
      return { name, fd };
    } catch (err) {
      // EEXIST on 128 random bits means someone is filling the directory: give up after a few.
      if (errorCode(err) !== 'EEXIST' || attempt >= 3) throw err;
    }
  }
}

/** Writes `text` to DIR/rdmactl.prom atomically; returns DIR/rdmactl.prom. */
export function writeTextfile(dir: TextfileDir, text: string): string {
  const target = join(dir.path, TEXTFILE_NAME);
  let temporary: string | null = null;
  let fd: number | null = null;
  try {
    ({ name: temporary, fd } = createTemporary(dir));
    // All of it or a failure (ENOSPC): a short file is never renamed into place.
    pwriteAll(fd, Buffer.from(text, 'utf8'));
    fsyncSync(fd);
    closeSync(fd);
    fd = null;
    renameSync(inDir(dir, temporary), inDir(dir, TEXTFILE_NAME));
    temporary = null;
    // The rename itself survives a crash only once the directory is flushed.
    fsyncSync(dir.fd);
    return target;
  } catch (err) {
    if (fd !== null) closeSync(fd);
    if (temporary !== null) {
      try { unlinkSync(inDir(dir, temporary)); } catch { /* never created, or already gone */ }
    }
    const code = errorCode(err);
    if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
      throw new PermissionError(`cannot write ${target}: ${code}`, ['run as a user that may write the directory, or choose another with --textfile DIR']);
    }
    const message = err instanceof Error ? err.message : String(err);
    throw new RdmactlError(`cannot write ${target}: ${message.replaceAll(`${dirFdPath(dir)}/`, `${dir.path}/`)}`);
  }
}
