// Adapter from the held-records store (reg --detach) to the `held` source of `ls` and `top`.

import { HOLDER_PROCESS_NAME, findHolderProcesses, listHeld, removeStale } from '../held/store.js';
import type { ProcessSnapshot } from '../proc/scan.js';
import type { JsonValue } from '../lib/fields.js';
import type { MemoryRegionDetails } from '../engine/types.js';
import type { HeldRange, HeldSource } from './registrations.js';

// The keys of a verbs registration that this source reads back from the stored record: typed as
// the engine's MemoryRegionDetails keys, so renaming one there fails the build here.
const DEVICE_KEY: keyof MemoryRegionDetails = 'device';
const LKEY_KEY: keyof MemoryRegionDetails = 'lkey';
const RKEY_KEY: keyof MemoryRegionDetails = 'rkey';

/** Keys as the kernel MR table prints them: hex without 0x. */
function keyText(value: JsonValue | undefined): string | null {
  if (typeof value === 'number') return value.toString(16);
  if (typeof value === 'string') return value.replace(/^0x/, '');
  return null;
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
    if (entry.record !== 'ok') {
      ranges.push({ id: entry.id, pid: entry.pid, backend: '?', addr: null, length: 0, record: entry.record, device: null, lkey: null, rkey: null, stale: false });
      continue;
    }
    const record = entry.registration;
    const backend = typeof record['backend'] === 'string' ? record['backend'] : '?';
    const handles = Array.isArray(record['registrations']) ? record['registrations'] : [];
    for (const handle of handles) {
      if (!handle || typeof handle !== 'object' || Array.isArray(handle)) continue;
      const addr = typeof handle['addr'] === 'string' && /^0x[0-9a-f]+$/i.test(handle['addr']) ? BigInt(handle['addr']) : null;
      const length = typeof handle['length'] === 'number' ? handle['length'] : null;
      if (addr === null || length === null) continue;
      ranges.push({
        id: entry.id,
        pid: entry.pid,
        backend,
        addr,
        length,
        device: typeof handle[DEVICE_KEY] === 'string' ? handle[DEVICE_KEY] : null,
        lkey: keyText(handle[LKEY_KEY]),
        rkey: keyText(handle[RKEY_KEY]),
        record: 'ok',
        stale: entry.state === 'stale',
      });
    }
  }
  // Shown once as stale (so the user learns the holder died), then cleaned.
  if (options.cleanStale && entries.some((e) => e.state === 'stale')) removeStale(storeOptions, entries);
  return { ranges, status: { available: true, reason: null } };
}
