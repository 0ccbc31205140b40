// /proc/vmstat pin counters. Every FOLL_PIN (io_uring fixed buffers, RDMA MRs, O_DIRECT, …) adds to
// nr_foll_pin_acquired and every unpin to nr_foll_pin_released (Linux ≥ 5.7). Unchanged counters
// between two readings mean no page was pinned or unpinned anywhere, so no process's VmPin moved —
// which lets `top` skip re-reading every idle process.

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
