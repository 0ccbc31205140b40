// Process bookkeeping for the fork tests, read straight from /proc (not through rdmactl's readers).
import { readFileSync, readdirSync } from 'node:fs';

/** PIDs whose parent is `ppid` (zombies included: they still have a /proc entry until reaped). */
export function childrenOf(ppid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const status = readFileSync(`/proc/${name}/status`, 'utf8');
      if (Number(/^PPid:\s+(\d+)$/m.exec(status)?.[1]) === ppid) out.push(Number(name));
    } catch {
      // gone while scanning
    }
  }
  return out;
}

/** True while /proc/<pid> exists (running, stopped, or an unreaped zombie). */
export function exists(pid: number): boolean {
  try {
    readFileSync(`/proc/${pid}/stat`);
    return true;
  } catch {
    return false;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** True when `pid` is rdmactl's fork watchdog (a node process running watchdogMain.js), not a paused child. */
export function isWatchdog(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('watchdogMain.js');
  } catch {
    return false;
  }
}

/**
 * True when `pid` is one of rdmactl `parent`'s paused fork children: a clone without exec, so it has
 * the parent's own command line (the watchdog and short-lived tools such as `rdma` do not).
 */
export function isPausedChildOf(pid: number, parent: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8') === readFileSync(`/proc/${parent}/cmdline`, 'utf8');
  } catch {
    return false;
  }
}
