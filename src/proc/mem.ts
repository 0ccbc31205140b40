// /proc/PID/mem: a process's address space as a file. Reading it takes plain page references (no pin,
// unlike process_vm_readv), and it reads nothing once the address space has no users. Opening it
// needs the ptrace access check.

import { openSync } from 'node:fs';
import { procPath, type ProcPid } from './procfs.js';

/** An fd of `pid`'s /proc/PID/mem open for reading; null when it cannot be opened (gone, or refused). */
export function openProcMem(pid: ProcPid): number | null {
  try {
    return openSync(procPath(pid, 'mem'), 'r');
  } catch {
    return null;
  }
}
