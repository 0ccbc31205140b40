// The /proc files rdmactl trace's sources read to place their probes: a process's maps (which
// copy of libibverbs it runs), a path inside a process's root (a container's copy), and the
// kernel's symbol list (which ib_core functions a kprobe can take). Reader convention of procfs.ts.

import { PROC_ROOT, procPath, readProcText } from './procfs.js';

/** /proc/PID/maps as text; null when the process is gone. */
export function readMapsText(pid: number): string | null {
  return readProcText(procPath(pid, 'maps'));
}

/** An absolute path as the process sees it, through its root (its mount namespace, chroot). */
export function pathInProcessRoot(pid: number, path: string): string {
  return `${procPath(pid, 'root')}${path}`;
}

/** /proc/kallsyms as text (capped by readProcText; addresses read 0 without privilege, names do not). */
export function readKallsymsText(): string | null {
  return readProcText(`${PROC_ROOT}/kallsyms`);
}
