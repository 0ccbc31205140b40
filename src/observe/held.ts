// Adapter from the held-records store (reg --detach) to the `held` source of `ls` and `top`.

import { HOLDER_PROCESS_NAME, findHolderProcesses, listHeld, removeStale } from '../held/store.js';
import type { ProcessSnapshot } from '../proc/scan.js';
import type { RegistrationSetReport } from '../engine/report.js';
import type { HeldRange, HeldSource } from './registrations.js';

/** Keys as the kernel MR table prints them: hex without 0x. */
function keyText(key: number): string {
  return key.toString(16);
}

/** One range per handle of a held registration, read from its typed report. */
export function heldRanges(entry: { id: string; pid: number; stale: boolean }, report: RegistrationSetReport): HeldRange[] {
  const common = { id: entry.id, pid: entry.pid, backend: report.backend, record: 'ok' as const, stale: entry.stale };
  if (report.backend === 'verbs') {
    return report.handles.map((h) => ({
      ...common, addr: BigInt(h.addr), length: h.length, device: h.details.device, lkey: keyText(h.details.lkey), rkey: keyText(h.details.rkey),
    }));
  }
  return report.handles.map((h) => ({ ...common, addr: BigInt(h.addr), length: h.length, device: null, lkey: null, rkey: null }));
}

/** Held ranges from the store, and from holders among `scanned` (found by process name) whose record is missing or damaged. */
export function heldSource(options: { cleanStale: boolean; env?: NodeJS.ProcessEnv }, scanned: readonly ProcessSnapshot[]): HeldSource {
  const storeOptions = options.env ? { env: options.env } : {};
  let entries;
  try {
    const holders = findHolderProcesses(scanned.filter((p) => p.name === HOLDER_PROCESS_NAME).map((p) => p.pid));
    entries = listHeld(storeOptions, { holders });
  } catch (err) {
    return { ranges: [], status: { available: false, reason: `cannot read held registrations: ${err instanceof Error ? err.message : String(err)}` } };
  }
  const ranges: HeldRange[] = [];
  for (const entry of entries) {
    const stale = entry.state === 'stale';
    if (entry.record !== 'ok' || entry.registration === null) {
      ranges.push({ id: entry.id, pid: entry.pid, backend: '?', addr: null, length: 0, record: entry.record, device: null, lkey: null, rkey: null, stale });
      continue;
    }
    ranges.push(...heldRanges({ id: entry.id, pid: entry.pid, stale }, entry.registration));
  }
  // Shown once as stale (so the user learns the holder died), then cleaned.
  if (options.cleanStale && entries.some((e) => e.state === 'stale')) removeStale(storeOptions, entries);
  return { ranges, status: { available: true, reason: null } };
}
