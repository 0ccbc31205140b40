// vm.max_map_count and a process's VMA count: MADV_DONTFORK on many small registered buffers splits
// VMAs, and at max_map_count mmap/mprotect/madvise fail with ENOMEM.

import { procPath, readProcText, PROC_ROOT, type ProcPid } from './procfs.js';

export function parseMaxMapCount(text: string): number {
  const n = Number.parseInt(text.trim(), 10);
  if (Number.isNaN(n)) throw new Error(`unexpected vm.max_map_count: ${JSON.stringify(text)}`);
  return n;
}

export function readMaxMapCount(): number {
  const text = readProcText(`${PROC_ROOT}/sys/vm/max_map_count`);
  if (text === null) throw new Error(`${PROC_ROOT}/sys/vm/max_map_count is missing`);
  return parseMaxMapCount(text);
}

/** Number of VMAs in /proc/PID/maps text: one per line. */
export function countMapsLines(text: string): number {
  let count = 0;
  let at = text.indexOf('\n');
  while (at >= 0) {
    count++;
    at = text.indexOf('\n', at + 1);
  }
  // A final line without '\n' still counts (the kernel always ends lines, fixtures may not).
  if (text.length > 0 && !text.endsWith('\n')) count++;
  return count;
}

/** VMA count of pid. null if gone; throws ProcUnreadableError (ptrace check) for others' processes. */
export function readVmaCount(pid: ProcPid): number | null {
  const text = readProcText(procPath(pid, 'maps'));
  return text === null ? null : countMapsLines(text);
}
