// munmap of a registered range (Dreier 2005: two handles with different lifetimes — the mapping and
// the registration). Register, fill with a pattern, munmap, then look: VmPin/VmLck, outstanding pins,
// pagemap, what the process sees there (nothing: read through /proc/self/mem, never touched from JS),
// what the device path reads and whether it can still write; then map something new at the same
// address and fill it: does the device see the new mapping or the old pages? Then release the
// registration and look at the pins once more.

import { MAP_ANONYMOUS, MAP_FIXED_NOREPLACE, MAP_PRIVATE, PROT_READ, PROT_WRITE, mmapAt, munmap, view } from '../../ffi/libc.js';
import { PATTERN, classify } from '../../fork/observe.js';
import { step, withRange } from '../engine.js';
import { observe } from '../evidence.js';
import { compactBytes, shortSeen } from '../summary.js';
import type { RegisteredRange } from '../../fork/registeredRange.js';
import type { Observation, ScenarioDefinition, ScenarioRow, ScenarioVerdict, Seen } from '../types.js';
import { formatBytes } from '../../lib/size.js';

export const MUNMAP_VERDICTS: readonly ScenarioVerdict[] = [
  {
    id: 'device-keeps-old-pages', words: 'device keeps the old pages (the process has moved on)', expectable: true,
    meaning: 'after munmap the device path still reads (and writes) the pages it registered, and a new mapping at the same address is not what it sees: the pin keeps the old pages alive for the device alone',
  },
  {
    id: 'device-follows-new-mapping', words: 'device follows the new mapping', expectable: true,
    meaning: 'the device reads what the process mapped at the address afterwards (an on-demand MR follows the page tables)',
  },
  {
    id: 'device-lost-access', words: 'device lost access', expectable: true,
    meaning: 'after munmap the device path fails (an on-demand MR with nothing mapped faults)',
  },
  {
    id: 'released-with-mapping', words: 'released with the mapping (nothing holds the pages)', expectable: true,
    meaning: 'nothing pins the pages (plain, mlock): munmap frees them and drops VmLck; there is no device to keep them',
  },
  {
    id: 'unverified', words: 'cannot tell', expectable: true,
    meaning: 'neither a device path nor the accounting showed what holds the pages',
  },
];

/** The pattern the new mapping at the old address is filled with ('parent-write' when read back). */
const NEW_PATTERN = PATTERN.parent;
const OLD: Seen = 'pre-fork';
const NEW: Seen = 'parent-write';

function deviceWriteThenRead(range: RegisteredRange): { seen: Seen; note: string | null } {
  const device = range.device!;
  try {
    device.deviceWrite(Buffer.alloc(range.length, PATTERN.device), 0);
    return { seen: classify(device.deviceRead(0, range.length)), note: null };
  } catch (err) {
    return { seen: 'failed', note: `device write failed: ${err instanceof Error ? err.message : String(err)}` };
  }
}

/** Map anonymous memory at `range`'s old address; the mapping is released with the range (after the registration). */
function remapAt(range: RegisteredRange): { exact: boolean; addr: bigint; note: string } {
  const addr = range.addr;
  let got: bigint;
  let how = 'MAP_FIXED_NOREPLACE';
  try {
    got = mmapAt(addr, range.length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE);
  } catch {
    how = 'address hint';
    got = mmapAt(addr, range.length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  }
  const length = range.length;
  range.defer(() => munmap(got, length));
  const exact = got === addr;
  return { exact, addr: got, note: exact ? `new mapping at the same address (${how})` : `the kernel mapped elsewhere (0x${got.toString(16)}, ${how})` };
}

/** The verdict from the observations only. */
export function munmapVerdict(row: ScenarioRow): { verdict: string; reason: string | null } {
  const at = (s: string): Observation | undefined => row.observations.find((o) => o.step === s);
  const registered = at('registered');
  const unmapped = at('munmap');
  const remapped = at('remapped');
  if (!registered || !unmapped) return { verdict: 'unverified', reason: 'no observation after munmap' };
  if (unmapped.deviceReads === null) {
    // No device path: did the registration hold anything after munmap?
    const pinHeld = (unmapped.pinnedBytes ?? 0) > 0 && (unmapped.pinnedBytes ?? 0) >= (registered.pinnedBytes ?? 0) && (registered.pinnedBytes ?? 0) > 0;
    const lockDropped = registered.lockedBytes !== null && unmapped.lockedBytes !== null && unmapped.lockedBytes < registered.lockedBytes;
    if (!pinHeld && unmapped.processSees === 'unmapped' && (row.backend !== 'mlock' || lockDropped)) {
      return { verdict: 'released-with-mapping', reason: row.backend === 'mlock' ? `VmLck ${formatBytes(registered.lockedBytes ?? 0)} → ${formatBytes(unmapped.lockedBytes ?? 0)} at munmap` : null };
    }
    return { verdict: 'unverified', reason: row.devicePath };
  }
  if (remapped && remapped.deviceReads !== null && remapped.deviceReads !== 'failed' && remapped.deviceReads === remapped.processSees) {
    return { verdict: 'device-follows-new-mapping', reason: unmapped.deviceReads === 'failed' ? `while nothing was mapped the device path failed: ${unmapped.note ?? ''}` : null };
  }
  if (unmapped.deviceReads === 'failed') return { verdict: 'device-lost-access', reason: unmapped.note };
  if (unmapped.deviceReads === OLD) return { verdict: 'device-keeps-old-pages', reason: null };
  if (remapped?.deviceReads === 'failed') return { verdict: 'device-lost-access', reason: remapped.note };
  return { verdict: 'unverified', reason: `device read ${unmapped.deviceReads} after munmap` };
}

function arrow(values: ReadonlyArray<number | null>): string {
  return values.map(compactBytes).join('→');
}

/** "VmPin 16K→16K→0; dev reads pre; new map ≠ dev": accounting at registered → munmap → released. */
export function munmapEvidence(row: ScenarioRow): string {
  const o = row.observations.filter((x) => x.step === 'registered' || x.step === 'munmap' || x.step === 'released');
  if (o.length === 0) return '';
  const parts = [row.backend === 'mlock' ? `VmLck ${arrow(o.map((x) => x.lockedBytes))}` : `VmPin ${arrow(o.map((x) => x.pinnedBytes))}`];
  const unmapped = row.observations.find((x) => x.step === 'munmap');
  const remapped = row.observations.find((x) => x.step === 'remapped');
  if (unmapped?.deviceReads != null) parts.push(`dev ${shortSeen(unmapped.deviceReads)}`);
  if (remapped?.deviceReads != null) parts.push(`new map ${remapped.deviceReads === remapped.processSees ? '=' : '≠'} dev`);
  else if (unmapped) parts.push(`process sees ${unmapped.processSees}`);
  return parts.join('; ');
}

export const munmapScenario: ScenarioDefinition = {
  name: 'munmap',
  summary: 'munmap a registered range, then map something new at its address: what does the device see?',
  description: 'Register a buffer, fill it with a pattern ("old"), munmap it, then read VmPin/VmLck, the outstanding '
    + 'FOLL_PIN pins (/proc/vmstat), pagemap, what the process sees at the address (through /proc/self/mem: '
    + 'nothing is mapped), what the device path reads there, and whether the device can still write. Then map '
    + 'anonymous memory at the same address (MAP_FIXED_NOREPLACE), fill it with a new pattern and read both '
    + 'again: a pin keeps the old pages alive for the device while the process has moved on. Last, release '
    + 'the registration and read the pins once more.',
  verdicts: MUNMAP_VERDICTS,
  backends: ['plain', 'mlock', 'uring', 'verbs'],
  backings: ['anon', 'thp', 'memfd', 'file-shared', 'file-private'],
  variants: null,
  defaultCases: [
    { backend: 'plain', backing: 'anon', variant: null },
    { backend: 'mlock', backing: 'anon', variant: null },
    { backend: 'uring', backing: 'anon', variant: null },
    { backend: 'uring', backing: 'memfd', variant: null },
    { backend: 'verbs', backing: 'anon', variant: null },
  ],
  selectionDefaults: { backing: ['anon'] },
  notApplicable: () => null,
  run: (c, ctx) => withRange('munmap', c, ctx, {}, async (range, row) => {
    const obs = row.observations;
    // The old pattern, written by the process while the range is still mapped.
    view(range.addr, range.length).fill(PATTERN.preFork);
    obs.push(observe('registered', range.target()));
    await step(ctx, 'registered', range);

    range.unmap(); // from here on the address is never touched from JS
    obs.push(observe('munmap', range.target()));
    await step(ctx, 'munmap', range);

    if (range.device) {
      const wrote = deviceWriteThenRead(range);
      obs.push(observe('device wrote', { ...range.target(), device: null }, { deviceReads: wrote.seen, note: wrote.note }));
      await step(ctx, 'device wrote', range);
    }
    const remap = remapAt(range);
    if (remap.exact) view(remap.addr, range.length).fill(NEW_PATTERN);
    // A verbs QP whose transfer failed stays in the error state: look at the new mapping through a fresh one.
    let reopened = '';
    if (range.device && obs.some((o) => o.deviceReads === 'failed') && range.backend === 'verbs') {
      const failure = range.reopenDevice();
      reopened = failure ? `; could not reopen the device path: ${failure}` : '; device path reopened (a fresh QP) after its failure';
    }
    const remapped = observe('remapped', range.target());
    remapped.note = [remapped.note, `${remap.note}${reopened}`].filter(Boolean).join('; ');
    obs.push(remapped);
    await step(ctx, 'remapped', range);

    range.releaseRegistration();
    obs.push(observe('released', { ...range.target(), device: null }));
    await step(ctx, 'released', range);
    if (remap.exact) {
      // Once the registration is gone, the process still has its new mapping, untouched by the release.
      const last = obs[obs.length - 1]!;
      if (last.processSees !== NEW) last.note = `new mapping reads ${last.processSees} after the release`;
    }
    const { verdict, reason } = munmapVerdict(row);
    row.verdict = verdict;
    row.reason = reason;
  }),
  evidence: munmapEvidence,
};
