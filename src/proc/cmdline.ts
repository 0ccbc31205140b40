// /proc/PID/cmdline: the arguments a process runs with, NUL-separated (readable for any process,
// empty once a dying process's memory is gone).

import { procPath, readProcText, type ProcPid } from './procfs.js';

/** NUL-separated arguments; the kernel's final NUL ends the last one and adds no empty argument. */
export function parseCmdline(text: string): string[] {
  return text.split('\0').filter((arg, i, all) => arg !== '' || i < all.length - 1);
}

/** The process's command-line arguments; null when it is gone, throws ProcUnreadableError when refused. */
export function readCmdline(pid: ProcPid): string[] | null {
  const text = readProcText(procPath(pid, 'cmdline'));
  return text === null ? null : parseCmdline(text);
}
