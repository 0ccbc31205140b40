// --textfile: the exposition written to DIR/rdmactl.prom for node_exporter's textfile collector.
// Each write goes to a temporary file in the same directory, is flushed, then renamed over the old
// one, so the collector never reads half a file; a write that fails leaves the previous file intact
// and removes its temporary file.

import { closeSync, fsyncSync, openSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { PermissionError, RdmactlError, UsageError } from '../lib/errors.js';
import { errorCode } from '../proc/procfs.js';

export const TEXTFILE_NAME = 'rdmactl.prom';

/** Checks DIR exists and is a directory; throws a usage error naming what is wrong. */
export function checkTextfileDir(dir: string): void {
  let isDir: boolean;
  try {
    isDir = statSync(dir).isDirectory();
  } catch (err) {
    throw new UsageError(`--textfile ${dir}: ${errorCode(err) === 'ENOENT' ? 'no such directory' : (err as Error).message}`, ['give the directory node_exporter reads with --collector.textfile.directory']);
  }
  if (!isDir) throw new UsageError(`--textfile ${dir}: not a directory`, ['give the directory node_exporter reads with --collector.textfile.directory']);
}

/** Writes `text` to DIR/rdmactl.prom atomically. */
export function writeTextfile(dir: string, text: string): string {
  const target = join(dir, TEXTFILE_NAME);
  // node_exporter reads only *.prom: the temporary name is never picked up half-written.
  const temporary = join(dir, `.${TEXTFILE_NAME}.${process.pid}.tmp`);
  let fd: number | null = null;
  try {
    fd = openSync(temporary, 'w', 0o644);
    writeSync(fd, text);
    fsyncSync(fd);
    closeSync(fd);
    fd = null;
    renameSync(temporary, target);
    return target;
  } catch (err) {
    if (fd !== null) closeSync(fd);
    rmSync(temporary, { force: true });
    const code = errorCode(err);
    if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
      throw new PermissionError(`cannot write ${target}: ${code}`, ['run as a user that may write the directory, or choose another with --textfile DIR']);
    }
    throw new RdmactlError(`cannot write ${target}: ${err instanceof Error ? err.message : String(err)}`);
  }
}
