// munlock of a registered range ("mlock is not pinning", 2005): mlock the range and register it,
// then munlock. VmLck drops; a long-term pin (VmPin) stays, and the device path still reads and writes
// the process's pages at the same PFN. With mlock alone, munlock leaves nothing holding the pages.

import { mlock, munlock, view } from '../../ffi/libc.js';
import { PATTERN, classify } from '../../fork/observe.js';
import { formatBytes } from '../../lib/size.js';
import { step, withRange } from '../engine.js';
import { observe } from '../evidence.js';
import { compactBytes, shortSeen } from '../summary.js';
import type { Observation, ScenarioDefinition, ScenarioRow, ScenarioVerdict } from '../types.js';

export const MUNLOCK_VERDICTS: readonly ScenarioVerdict[] = [
  {
    id: 'pin-outlives-munlock', words: 'the pin outlives munlock (VmLck dropped, VmPin stayed, device coherent)', expectable: true,
    meaning: 'munlock dropped VmLck but the registration\'s pin stayed: the device still reads and writes the process\'s pages (same PFN)',
  },
  {
    id: 'munlock-releases-all', words: 'munlock released everything (mlock is not pinning)', expectable: true,
    meaning: 'with mlock alone, munlock drops VmLck and nothing else holds the pages: no pin, no device',
  },
  {
    id: 'device-follows-process', words: 'the device follows the process (on-demand MR: nothing pinned)', expectable: true,
    meaning: 'an on-demand MR pins nothing; after munlock the device still reads and writes the process\'s pages through its page tables',
  },
  {
    id: 'device-disconnected', words: 'device disconnected from the process\'s pages', expectable: true,
    meaning: 'after munlock the device and the process no longer see each other\'s writes',
  },
  {
    id: 'unverified', words: 'cannot tell', expectable: true,
    meaning: 'the accounting or the device path did not show what holds the pages',
  },
];

/** The verdict from the observations only. */
export function munlockVerdict(row: ScenarioRow): { verdict: string; reason: string | null } {
  const at = (s: string): Observation | undefined => row.observations.find((o) => o.step === s);
  const locked = at('locked');
  const unlocked = at('munlock');
  if (!locked || !unlocked || locked.lockedBytes === null || unlocked.lockedBytes === null) return { verdict: 'unverified', reason: 'no VmLck reading' };
  const length = row.length ?? 0;
  const lockDropped = locked.lockedBytes - unlocked.lockedBytes >= length;
  if (!lockDropped) return { verdict: 'unverified', reason: `VmLck ${formatBytes(locked.lockedBytes)} → ${formatBytes(unlocked.lockedBytes)}: munlock did not drop it` };
  if (row.backend === 'mlock') {
    return (unlocked.pinnedBytes ?? 0) < length
      ? { verdict: 'munlock-releases-all', reason: null }
      : { verdict: 'unverified', reason: `VmPin ${formatBytes(unlocked.pinnedBytes ?? 0)} after munlock of an mlock-only range` };
  }
  const wrote = at('process wrote');
  const devWrote = at('device wrote');
  if (wrote?.deviceReads === 'failed' || devWrote?.processSees === null) return { verdict: 'unverified', reason: wrote?.note ?? null };
  if ((wrote && wrote.deviceReads !== wrote.processSees) || (devWrote && devWrote.processSees !== 'device-write')) {
    return { verdict: 'device-disconnected', reason: null };
  }
  const pinStayed = unlocked.pinnedBytes !== null && locked.pinnedBytes !== null && unlocked.pinnedBytes >= locked.pinnedBytes && locked.pinnedBytes >= length;
  const pfnNote = locked.pfn !== null && unlocked.pfn !== null ? (locked.pfn === wrote?.pfn ? 'PFN stable' : 'PFN changed') : 'PFNs hidden';
  if (row.pinned && !pinStayed) return { verdict: 'unverified', reason: `VmPin ${formatBytes(locked.pinnedBytes ?? 0)} → ${formatBytes(unlocked.pinnedBytes ?? 0)} at munlock` };
  if (!wrote || !devWrote) return { verdict: 'unverified', reason: row.devicePath };
  if (row.onDemand) return { verdict: 'device-follows-process', reason: pfnNote };
  return { verdict: 'pin-outlives-munlock', reason: pfnNote };
}

const kb = compactBytes;

/** "VmLck 16K→0; VmPin 16K→16K→0; dev ok; PFN=" (PFN= the first page did not move) */
export function munlockEvidence(row: ScenarioRow): string {
  const o = row.observations;
  if (o.length === 0) return '';
  const parts = [`VmLck ${o.slice(0, 2).map((x) => kb(x.lockedBytes)).join('→')}`];
  if (row.backend !== 'mlock') parts.push(`VmPin ${o.filter((x) => x.step !== 'process wrote' && x.step !== 'device wrote').map((x) => kb(x.pinnedBytes)).join('→')}`);
  const wrote = o.find((x) => x.step === 'process wrote');
  const devWrote = o.find((x) => x.step === 'device wrote');
  if (wrote?.deviceReads != null && devWrote) {
    const both = wrote.deviceReads === wrote.processSees && devWrote.processSees === 'device-write';
    parts.push(both ? 'dev ok' : `dev reads ${shortSeen(wrote.deviceReads)}, process reads ${shortSeen(devWrote.processSees)}`);
  }
  const first = o[0]?.pfn ?? null;
  const later = wrote?.pfn ?? o[1]?.pfn ?? null;
  if (first !== null && later !== null) parts.push(first === later ? 'PFN=' : 'PFN≠');
  return parts.join('; ');
}

export const munlockScenario: ScenarioDefinition = {
  name: 'munlock',
  summary: 'mlock and register a range, then munlock it: VmLck drops, the pin stays',
  description: 'mlock a buffer and register it (backend mlock: the mlock alone), fill it, then munlock and read VmLck, '
    + 'VmPin, the outstanding pins and the PFN; the process then writes a new pattern and the device path reads it, '
    + 'the device writes and the process reads it. Last the registration is released. mlock is not pinning: '
    + 'munlock of an mlock-only range leaves nothing holding the pages, while a registration\'s pin stays.',
  verdicts: MUNLOCK_VERDICTS,
  backends: ['mlock', 'uring', 'verbs'],
  backings: ['anon', 'thp', 'memfd', 'file-shared'],
  variants: null,
  defaultCases: [
    { backend: 'mlock', backing: 'anon', variant: null },
    { backend: 'uring', backing: 'anon', variant: null },
    { backend: 'verbs', backing: 'anon', variant: null },
  ],
  selectionDefaults: { backing: ['anon'] },
  notApplicable: () => null,
  run: (c, ctx) => withRange('munlock', c, ctx, {}, async (range, row) => {
    const obs = row.observations;
    if (c.backend !== 'mlock') {
      mlock(range.addr, range.length);
      // Released with the range even when a step below fails (munlock of an unlocked range is a no-op).
      range.defer(() => munlock(range.addr, range.length));
    }
    const mine = view(range.addr, range.length);
    mine.fill(PATTERN.preFork);
    obs.push(observe('locked', range.target()));
    await step(ctx, 'locked', range);

    munlock(range.addr, range.length);
    obs.push(observe('munlock', range.target()));
    await step(ctx, 'munlock', range);

    if (range.device) {
      mine.fill(PATTERN.parent);
      obs.push(observe('process wrote', range.target()));
      await step(ctx, 'process wrote', range);
      let note: string | null = null;
      try {
        range.device.deviceWrite(Buffer.alloc(range.length, PATTERN.device), 0);
      } catch (err) {
        note = `device write failed: ${err instanceof Error ? err.message : String(err)}`;
      }
      obs.push(observe('device wrote', { ...range.target(), device: null }, { processSees: classify(mine), note }));
      await step(ctx, 'device wrote', range);
    }

    range.releaseRegistration();
    obs.push(observe('released', { ...range.target(), device: null }));
    await step(ctx, 'released', range);
    const { verdict, reason } = munlockVerdict(row);
    row.verdict = verdict;
    row.reason = reason;
  }),
  evidence: munlockEvidence,
};
