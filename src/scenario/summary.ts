// The default one-line evidence of a row (a scenario can give its own, ScenarioDefinition.evidence):
// VmPin and VmLck across the steps, then what the process and the device read at the last step.

import { formatBytes } from '../lib/size.js';
import type { Observation, ScenarioRow } from './types.js';

/** 16384 → "16K", 0 → "0", null → "-". */
export function compactBytes(value: number | null): string {
  if (value === null) return '-';
  if (value === 0) return '0';
  return formatBytes(value).replace(/ ?i?B$/, '').replace(' ', '');
}

export function summarizeObservations(row: ScenarioRow): string {
  const o = row.observations;
  if (o.length === 0) return '';
  const parts: string[] = [];
  if (o.some((x) => (x.pinnedBytes ?? 0) > 0)) parts.push(`VmPin ${o.map((x) => compactBytes(x.pinnedBytes)).join('→')}`);
  if (o.some((x) => (x.lockedBytes ?? 0) > 0)) parts.push(`VmLck ${o.map((x) => compactBytes(x.lockedBytes)).join('→')}`);
  const withDevice = [...o].reverse().find((x) => x.deviceReads !== null);
  if (withDevice) parts.push(`dev reads ${withDevice.deviceReads} (${withDevice.step})`);
  const last = o[o.length - 1]!;
  if (last.processSees !== null) parts.push(`process sees ${last.processSees}`);
  return parts.join('; ');
}

const SHORT: Readonly<Record<string, string>> = { 'pre-fork': 'pre', 'parent-write': 'parent', 'child-write': 'child', 'device-write': 'dev' };

/** A classified read in few letters for the evidence column: pre, parent, child, dev, zeros, mixed, unmapped, failed. */
export function shortSeen(seen: string | null | undefined): string {
  if (seen === null || seen === undefined) return '-';
  return SHORT[seen] ?? seen;
}

/** The observation of `step`, if the row has one. */
export function stepOf(row: ScenarioRow, step: string): Observation | undefined {
  return row.observations.find((o) => o.step === step);
}

/** "refused: io_uring_register EFAULT" from a row's 'refused' observation (its note is "call: ERRNO …"), or null. */
export function refusedEvidence(row: ScenarioRow): string | null {
  const refused = stepOf(row, 'refused');
  if (!refused?.note) return null;
  const m = /^(\S+): (E[A-Z0-9]+)/.exec(refused.note);
  return m ? `refused: ${m[1]} ${m[2]}` : `refused: ${refused.note}`;
}
