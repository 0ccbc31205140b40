// /proc/PID/fd: the files a process has open, as links ("/path", "anon_inode:[io_uring]",
// "/memfd:NAME (deleted)"); listing and following them needs the ptrace access check.

import { readdirSync, readlinkSync, statSync } from 'node:fs';
import { procPath, type ProcPid } from './procfs.js';

/**
 * Whether `pid` has the file open whose fd link reads `link` and whose inode is `inode`. False when
 * the process is gone or its fds are not ours to read; an fd closed while we look is skipped.
 */
export function holdsOpenFile(pid: ProcPid, link: string, inode: number): boolean {
  const dir = procPath(pid, 'fd');
  let fds: string[];
  try {
    fds = readdirSync(dir);
  } catch {
    return false;
  }
  for (const fd of fds) {
    try {
      if (readlinkSync(`${dir}/${fd}`) === link && statSync(`${dir}/${fd}`).ino === inode) return true;
    } catch {
      // the fd closed, or the process exited, while we looked
    }
  }
  return false;
}
