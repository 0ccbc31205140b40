// Processes the user named on the command line: parsed, thread ids mapped to their process, repeats
// dropped — so that `stat PID PID` or `stat PID TID` never counts one mm's memory twice.

import { parsePidList } from '../lib/pids.js';
import { resolveProcessIds } from '../proc/status.js';
import type { ScanResult } from '../proc/scan.js';

/**
 * The process ids named by `texts` (arguments and comma lists). `notify` hears one line per thread id
 * that was mapped to its process.
 */
export function targetPids(texts: readonly string[], notify: (line: string) => void, what = 'PID'): number[] {
  const pids = resolveProcessIds(parsePidList(texts, what)).map((resolved) => {
    if (resolved.threadId !== null) notify(`${resolved.threadId} is a thread of process ${resolved.pid}; showing the process (its memory is shared by all its threads)`);
    return resolved.pid;
  });
  return [...new Set(pids)];
}

/**
 * The pids of `requested` that the scan found no process for (exited, never existed, or hidden by
 * hidepid=2): ps -p and kill fail on them. A process the kernel listed but would not show is not missing.
 */
export function missingPids(requested: readonly number[] | undefined, scan: Pick<ScanResult, 'processes' | 'unreadablePids'>): number[] {
  if (requested === undefined) return [];
  const seen = new Set([...scan.processes.map((p) => p.pid), ...scan.unreadablePids]);
  return requested.filter((pid) => !seen.has(pid));
}
