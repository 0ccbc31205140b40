// Adapter from the held-records store to the `held` source of `ls`/`top`.
import type { HeldSource } from './registrations.js';

export function heldSource(_options: { cleanStale: boolean }): HeldSource {
  return { ranges: [], status: { available: false, reason: 'held registrations are not available yet' } };
}
