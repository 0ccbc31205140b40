// What every scenario row starts from: a row with no observations yet (skipped and failed rows use
// it as is), and whether its registration pins pages. Setting the range up and releasing it is
// fork/registeredRange.ts, shared with the fork runner.

import { IBV_ACCESS_ON_DEMAND } from '../ffi/verbs/enums.js';
import type { ScenarioBackend, ScenarioCase, ScenarioRow } from './types.js';

/** The registration pins pages: uring, and verbs unless on-demand. */
export function pinsPages(backend: ScenarioBackend, verbsAccess: number): boolean {
  return backend === 'uring' || (backend === 'verbs' && (verbsAccess & IBV_ACCESS_ON_DEMAND) === 0);
}

export function isOnDemand(backend: ScenarioBackend, verbsAccess: number): boolean {
  return backend === 'verbs' && (verbsAccess & IBV_ACCESS_ON_DEMAND) !== 0;
}

/** A row with no observations yet: `verdict` and `reason` as given (skipped/error rows use it as is). */
export function emptyRow(scenario: string, c: ScenarioCase, verdict: string, reason: string | null, verbsAccess: number): ScenarioRow {
  return {
    scenario, variant: c.variant, backend: c.backend, backing: c.backing, length: null,
    pinned: pinsPages(c.backend, verbsAccess), onDemand: isOnDemand(c.backend, verbsAccess),
    devicePath: null, observations: [], verdict, reason, elapsedMs: 0,
  };
}
