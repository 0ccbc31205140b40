// The munmap and munlock verdict tables on observation sequences the lab and the host produce
// (pinned MR, on-demand MR that follows or faults, mlock): each verdict from the evidence alone.
import { describe, expect, it } from 'vitest';
import { munmapVerdict } from '../../src/scenario/scenarios/munmap.js';
import { munlockVerdict } from '../../src/scenario/scenarios/munlock.js';
import { casesFor } from '../../src/scenario/engine.js';
import { SCENARIOS } from '../../src/scenario/registry.js';
import type { Observation, ScenarioRow, Seen } from '../../src/scenario/types.js';

const L = 16384;

function o(step: string, pin: number, lck: number, processSees: Seen | null, deviceReads: Seen | null): Observation {
  return { step, pinnedBytes: pin, lockedBytes: lck, pinsOutstanding: null, pfn: null, node: null, processSees, deviceReads, note: null };
}

function row(backend: ScenarioRow['backend'], observations: Observation[], pinned = backend === 'uring' || backend === 'verbs'): ScenarioRow {
  return { scenario: 'x', variant: null, backend, backing: 'anon', length: L, pinned, onDemand: !pinned && backend === 'verbs', devicePath: null, observations, verdict: 'error', reason: null, elapsedMs: 0 };
}

describe('munmap verdicts', () => {
  it('pinned: the device reads the old pages after munmap and not the new mapping', () => {
    expect(munmapVerdict(row('uring', [
      o('registered', L, 0, 'pre-fork', 'pre-fork'), o('munmap', L, 0, 'unmapped', 'pre-fork'),
      o('device wrote', L, 0, 'unmapped', 'device-write'), o('remapped', L, 0, 'parent-write', 'device-write'), o('released', 0, 0, 'parent-write', null),
    ])).verdict).toBe('device-keeps-old-pages');
  });
  it('on-demand: the device reads the new mapping', () => {
    expect(munmapVerdict(row('verbs', [
      o('registered', 0, 0, 'pre-fork', 'pre-fork'), o('munmap', 0, 0, 'unmapped', 'zeros'),
      o('remapped', 0, 0, 'parent-write', 'parent-write'), o('released', 0, 0, 'parent-write', null),
    ], false)).verdict).toBe('device-follows-new-mapping');
  });
  it('on-demand that faults: lost access', () => {
    expect(munmapVerdict(row('verbs', [
      o('registered', 0, 0, 'pre-fork', 'pre-fork'), o('munmap', 0, 0, 'unmapped', 'failed'), o('remapped', 0, 0, 'parent-write', 'failed'),
    ], false)).verdict).toBe('device-lost-access');
  });
  it('mlock: VmLck dropped at munmap, nothing held; without the drop, cannot tell', () => {
    expect(munmapVerdict(row('mlock', [o('registered', 0, L, 'pre-fork', null), o('munmap', 0, 0, 'unmapped', null)])).verdict).toBe('released-with-mapping');
    expect(munmapVerdict(row('mlock', [o('registered', 0, L, 'pre-fork', null), o('munmap', 0, L, 'unmapped', null)])).verdict).toBe('unverified');
  });
});

describe('munlock verdicts', () => {
  it('mlock only: munlock releases everything', () => {
    expect(munlockVerdict(row('mlock', [o('locked', 0, L, 'pre-fork', null), o('munlock', 0, 0, 'pre-fork', null)])).verdict).toBe('munlock-releases-all');
  });
  it('pinned: VmPin stays and both sides see each other; a device that misses the process write is disconnected', () => {
    const base = [o('locked', L, L, 'pre-fork', 'pre-fork'), o('munlock', L, 0, 'pre-fork', 'pre-fork')];
    expect(munlockVerdict(row('uring', [...base, o('process wrote', L, 0, 'parent-write', 'parent-write'), o('device wrote', L, 0, 'device-write', null)])).verdict).toBe('pin-outlives-munlock');
    expect(munlockVerdict(row('uring', [...base, o('process wrote', L, 0, 'parent-write', 'pre-fork'), o('device wrote', L, 0, 'parent-write', null)])).verdict).toBe('device-disconnected');
  });
});

describe('selection', () => {
  it('every scenario\'s default rows use only its own backends, backings and variants', () => {
    for (const def of SCENARIOS) {
      for (const c of casesFor(def, {}, true)) {
        expect(def.backends).toContain(c.backend);
        expect(def.backings).toContain(c.backing);
        if (def.variants === null) expect(c.variant).toBeNull();
        else expect(def.variants).toContain(c.variant);
      }
    }
  });
  it('named values combine with the scenario\'s defaults; all leaves out what a scenario lacks', () => {
    const munlock = SCENARIOS.find((s) => s.name === 'munlock')!;
    expect(casesFor(munlock, { backend: ['uring'] }, true)).toEqual([{ backend: 'uring', backing: 'anon', variant: null }]);
    expect(casesFor(munlock, { backend: ['plain', 'uring'] }, false)).toEqual([{ backend: 'uring', backing: 'anon', variant: null }]);
    expect(() => casesFor(munlock, { backend: ['plain'] }, true)).toThrow(/no --backend plain/);
  });
});
