// /proc/vmstat pin counters. Every FOLL_PIN (io_uring fixed buffers, RDMA MRs, O_DIRECT, …) adds to
// nr_foll_pin_acquired and every unpin to nr_foll_pin_released (Linux ≥ 5.7). Unchanged counters
// between two readings mean no page was pinned or unpinned anywhere, so no process's VmPin moved —
// which lets `top` skip re-reading every idle process.

import { readFileSync } from 'node:fs';
import { readProcText, PROC_ROOT } from './procfs.js';

export interface PinCounters {
  acquired: number;
  released: number;
}

/** The two pin counters, or null on kernels without them. */
export function parsePinCounters(vmstatText: string): PinCounters | null {
  const acquired = /^nr_foll_pin_acquired (\d+)$/m.exec(vmstatText);
  const released = /^nr_foll_pin_released (\d+)$/m.exec(vmstatText);
  if (!acquired || !released) return null;
  return { acquired: Number(acquired[1]), released: Number(released[1]) };
}

export function readPinCounters(): PinCounters | null {
  const text = readProcText(`${PROC_ROOT}/vmstat`);
  return text === null ? null : parsePinCounters(text);
}

let refreshRefused = false;

/**
 * Folds every CPU's pending deltas into /proc/vmstat now, as vmstat_update does every
 * vm.stat_interval: reading /proc/sys/vm/stat_refresh (root only; it changes no setting) runs that
 * fold on each CPU. Without it a reading right after a small registration does not show it yet.
 * False when this process may not (not root, or a container); it is not tried again.
 */
export function refreshVmstat(): boolean {
  if (refreshRefused) return false;
  try {
    readFileSync('/proc/sys/vm/stat_refresh');
    return true;
  } catch {
    refreshRefused = true;
    return false;
  }
}

/** The pin counters after refreshVmstat(), or null when they cannot be read settled (or the kernel has none). */
export function readSettledPinCounters(): PinCounters | null {
  return refreshVmstat() ? readPinCounters() : null;
}
