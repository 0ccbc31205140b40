// What every scenario reads after a step, each from its own kernel interface: VmPin/VmLck from
// /proc/PID/status, outstanding FOLL_PIN pins from /proc/vmstat (machine-wide, settled first; shown
// as context), the first page's PFN from
// /proc/PID/pagemap, the bytes at the address through /proc/PID/mem (EIO there = nothing mapped:
// safe after munmap, where touching the address would crash us), and the device's read through
// the registration's own data path. Also: an observation of what is left when the process or its
// range is gone, and polling a reading until it changes.

import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { getpid, type Pointer } from '../ffi/libc.js';
import { pageSize, readPagemap } from '../proc/pagemap.js';
import { readStatus } from '../proc/status.js';
import { readSettledPinCounters } from '../proc/vmstat.js';
import type { DevicePath } from '../fork/devicePath.js';
import { classify, readChild, type EvidenceTarget } from '../fork/observe.js';
import type { Observation, Seen } from './types.js';

/**
 * nr_foll_pin_acquired − nr_foll_pin_released (pages, machine-wide: context, never a verdict), read
 * after the per-CPU deltas were folded in (refreshVmstat), so a step's own pins show in it. Null on
 * kernels without the counters, and where the fold is not allowed (not root): a reading that lags
 * by up to vm.stat_interval is not shown as a step's evidence.
 */
export function pinsOutstanding(): number | null {
  const counters = readSettledPinCounters();
  return counters === null ? null : counters.acquired - counters.released;
}

/** What the process reads at [addr, addr+length): a pattern, 'unmapped' (EIO), or null when the process is gone. */
export function processSees(pid: number | 'self', addr: Pointer, length: number): Seen | null {
  const bytes = readChild(pid === 'self' ? getpid() : pid, addr, length);
  return bytes === null ? 'unmapped' : classify(bytes);
}

/** What the device reads through its path; 'failed' when the path refused (with the error in `note`). */
export function deviceReads(device: DevicePath, length: number): { seen: Seen; error: string | null } {
  try {
    return { seen: classify(device.deviceRead(0, length)), error: null };
  } catch (err) {
    return { seen: 'failed', error: err instanceof Error ? err.message : String(err) };
  }
}

/** PFN of the first page, or null when hidden (no CAP_SYS_ADMIN), not present, or the process is gone. */
export function firstPfn(pid: number | 'self', addr: Pointer): number | null {
  return readPagemap(pid, addr, 1)?.entries[0]?.pfn ?? null;
}

/** Every reading after `step`; `extra` fills node/note or overrides a reading the scenario made itself. */
export function observe(step: string, target: EvidenceTarget, extra: Partial<Omit<Observation, 'step'>> = {}): Observation {
  // Unmapped: the hole is read before anything here allocates (see EvidenceTarget.unmapped).
  const early = target.unmapped
    ? { seen: processSees(target.pid, target.addr, Math.min(target.length, pageSize())), pfn: firstPfn(target.pid, target.addr) }
    : null;
  const status = readStatus(target.pid);
  const device = target.device ? deviceReads(target.device, target.length) : null;
  return {
    step,
    pinnedBytes: status?.pinnedBytes ?? null,
    lockedBytes: status?.lockedBytes ?? null,
    pinsOutstanding: pinsOutstanding(),
    pfn: early ? early.pfn : firstPfn(target.pid, target.addr),
    node: null,
    processSees: early ? early.seen : processSees(target.pid, target.addr, target.length),
    deviceReads: device?.seen ?? null,
    note: device?.error ? `device read failed: ${device.error}` : null,
    ...extra,
  };
}

/** An observation made without the process (it is gone, or its range is): only what is still there to read. */
export function bareObservation(step: string, fields: Partial<Omit<Observation, 'step'>>): Observation {
  return {
    step, pinnedBytes: null, lockedBytes: null, pinsOutstanding: null, pfn: null, node: null,
    processSees: null, deviceReads: null, note: null, ...fields,
  };
}

export interface Polled {
  /** The condition held before the timeout. */
  ok: boolean;
  /** Milliseconds from the start of polling to the reading that held (or to the timeout). */
  ms: number;
}

/** Reads `condition` every `intervalMs` (letting the event loop run) until it holds or `timeoutMs` passes. */
export async function pollUntil(condition: () => boolean, timeoutMs: number, intervalMs = 2, since = performance.now()): Promise<Polled> {
  for (;;) {
    if (condition()) return { ok: true, ms: Math.round((performance.now() - since) * 10) / 10 };
    if (performance.now() - since >= timeoutMs) return { ok: false, ms: Math.round(performance.now() - since) };
    await sleep(intervalMs);
  }
}
