// fork as a scenario of the engine: the same rows `rdmactl fork` runs (fork/runner.ts runScenario),
// each reported as a ScenarioRow. The variant is protection/writer (e.g. none/parent); the
// observations are the fork result's readings, step by step; the verdicts are fork's own table.

import {
  DEFAULT_MATRIX, FORK_BACKENDS, FORK_BACKINGS, PROTECTIONS, VERDICTS, WRITERS, executionOrder, notApplicable, runScenario,
  type ScenarioResult, type ScenarioSpec, type Writer,
} from '../../fork/scenario.js';
import type { Protection } from '../../engine/types.js';
import { shortSeen } from '../summary.js';
import type { Observation, ScenarioCase, ScenarioDefinition, ScenarioRow } from '../types.js';

export const FORK_VARIANTS: readonly string[] = PROTECTIONS.flatMap((p) => WRITERS.map((w) => `${p}/${w}`));

function specOf(c: ScenarioCase): ScenarioSpec {
  const [protection, writer] = (c.variant ?? 'none/parent').split('/') as [Protection, Writer];
  return { backend: c.backend, backing: c.backing, protection, writer };
}

function caseOf(spec: ScenarioSpec): ScenarioCase {
  return { backend: spec.backend, backing: spec.backing, variant: `${spec.protection}/${spec.writer}` };
}

function blank(step: string): Observation {
  return { step, pinnedBytes: null, lockedBytes: null, pinsOutstanding: null, pfn: null, node: null, processSees: null, deviceReads: null, note: null };
}

function yesNo(value: boolean | null): string {
  return value === null ? '-' : value ? 'yes' : 'no';
}

/** The fork result as the engine's steps: registered, forked, written (by the writer), device-wrote. */
export function forkObservations(r: ScenarioResult): Observation[] {
  if (r.length === null) return [];
  const out: Observation[] = [
    { ...blank('registered'), pfn: r.parentPfnBefore, processSees: 'pre-fork' },
    { ...blank('forked'), note: `child got ${r.childInherited ?? '-'}` },
    {
      ...blank(`written by ${r.writer}`), pfn: r.parentPfnAfter, processSees: r.parentSees, deviceReads: r.deviceSees,
      note: `child sees ${r.childSees ?? '-'}; child PFN ${r.childPfn ?? '-'} (shares the parent's page: ${yesNo(r.childSharesPage)}); parent pages moved ${r.parentPagesMoved ?? '-'}`,
    },
  ];
  if (r.parentSeesDeviceWrite !== null) {
    // The fork result records whether the parent reads the device's write, not what it reads otherwise.
    out.push({
      ...blank('device wrote'), processSees: r.parentSeesDeviceWrite ? 'device-write' : null,
      note: `parent reads the device's write: ${yesNo(r.parentSeesDeviceWrite)}; child sees ${r.childSeesAfterDeviceWrite ?? '-'}; child mapped ${yesNo(r.childMapped)}`,
    });
  }
  return out;
}

/** A fork result as a ScenarioRow. */
export function forkRow(r: ScenarioResult): ScenarioRow {
  return {
    scenario: 'fork', variant: `${r.protection}/${r.writer}`, backend: r.backend, backing: r.backing, length: r.length,
    pinned: r.pinned, onDemand: r.onDemand, devicePath: r.devicePath, observations: forkObservations(r),
    verdict: r.verdict, reason: r.reason, elapsedMs: r.elapsedMs,
  };
}

/** One line of evidence for the text table: "parent/child/dev: parent/pre/parent; 0 moved". */
export function forkEvidence(row: ScenarioRow): string {
  const written = row.observations[2];
  if (!written) return '';
  const note = written.note ?? '';
  const moved = /parent pages moved ([^;\s]+)/.exec(note)?.[1];
  const child = /child sees ([^;\s]+)/.exec(note)?.[1];
  const who = ['P', 'C'];
  const what = [shortSeen(written.processSees), shortSeen(child)];
  if (written.deviceReads !== null) {
    who.push('D');
    what.push(shortSeen(written.deviceReads));
  }
  const text = `${who.join('/')}: ${what.join('/')}`;
  return moved !== undefined && moved !== '-' ? `${text}; ${moved} moved` : text;
}

export const forkScenario: ScenarioDefinition = {
  name: 'fork',
  summary: 'fork with registered memory: what the parent, the child and the device see afterwards',
  description: 'Register a buffer, fill it, fork a child that only sleeps, let the writer (the variant\'s second half: '
    + 'parent, child, both, none) write its pattern, then read PFNs, what the parent and the child see and what the '
    + 'device path reads; the device then writes and both sides are read again. The variant\'s first half is the '
    + 'fork protection (none, dontfork, wipeonfork, fork-init). The same rows as rdmactl fork.',
  verdicts: VERDICTS.filter((v) => v.id !== 'skipped' && v.id !== 'error'),
  backends: FORK_BACKENDS,
  backings: FORK_BACKINGS,
  variants: FORK_VARIANTS,
  defaultCases: DEFAULT_MATRIX.map(caseOf),
  selectionDefaults: { backing: ['anon'], variant: ['none/parent'] },
  forks: true,
  notApplicable: (c) => notApplicable(specOf(c)),
  executionOrder: (cases) => executionOrder(cases.map(specOf)),
  async run(c, ctx) {
    const spec = specOf(c);
    const result = await runScenario(spec, { verbsUnavailable: ctx.env.verbsUnavailable }, {
      length: ctx.length, verbsAccess: ctx.verbsAccess, stepDelayMs: ctx.stepDelayMs,
      ...(ctx.signal ? { signal: ctx.signal } : {}),
      ...(ctx.onChild ? { onChild: (pid: number) => ctx.onChild?.(pid) } : {}),
    });
    return forkRow(result);
  },
  evidence: forkEvidence,
};
