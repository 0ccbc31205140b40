// The fork verdicts: one table gives each verdict's id (JSON), its plain words (text output), what it
// means (help), and whether `--expect` accepts it. Text output, `fork --help` and `--expect` all read
// this table, so they cannot drift apart. Also the row a verdict is drawn from (ScenarioResult),
// which runner.ts fills in.

import type { ScenarioSpec } from './matrix.js';
import type { Content } from './observe.js';

export interface Verdict {
  /** The JSON id (`verdict` key). */
  id: string;
  /** Plain words for text output (`verdictText` key). */
  words: string;
  /** What it means, for `fork --help`. */
  meaning: string;
  /** A run can be expected to reach it (`--expect`); skipped and error are not outcomes. */
  expectable: boolean;
}

export const VERDICTS = [
  {
    id: 'coherent', words: 'coherent', expectable: true,
    meaning: 'the device and the parent see the same pages, both ways',
  },
  {
    id: 'parent-disconnected', words: 'parent disconnected from the registered pages (device writes lost)', expectable: true,
    meaning: 'the parent moved to a new page; the device still holds the old one, so the two no longer see each other\'s writes',
  },
  {
    id: 'child-unmapped', words: 'child has no mapping (touching it would crash the child)', expectable: true,
    meaning: 'the range was not inherited (MADV_DONTFORK, or libibverbs after ibv_fork_init)',
  },
  {
    id: 'child-zeros', words: 'child sees zeros', expectable: true,
    meaning: 'the child got fresh zero-filled pages (MADV_WIPEONFORK)',
  },
  {
    id: 'not-pinned', words: 'not pinned (no device path to check)', expectable: true,
    meaning: 'nothing holds a long-term pin on the pages (plain, mlock), so there is no device view to compare',
  },
  {
    id: 'unverified', words: 'cannot tell (no device data path here, and PFNs hidden or the MR on-demand)', expectable: true,
    meaning: 'pinned, but neither a device data path nor PFNs could show where the device\'s page is',
  },
  {
    id: 'skipped', words: 'skipped', expectable: false,
    meaning: 'could not run here (with the reason); never fails the run or an --expect',
  },
  {
    id: 'error', words: 'failed', expectable: false,
    meaning: 'the scenario failed (with the reason); the run exits 1',
  },
] as const satisfies readonly Verdict[];

export type VerdictId = (typeof VERDICTS)[number]['id'];

/** What the child found at the buffer's address right after the fork, before anyone wrote. */
export type Inherited = Content | 'unmapped';

export interface ScenarioResult extends ScenarioSpec {
  /** Bytes of the buffer (the size rounded up to the backing's page size). */
  length: number | null;
  /** Whether the registration pins pages (uring, verbs except on-demand MRs). */
  pinned: boolean;
  /** A verbs on-demand (ODP) MR: nothing is pinned, the device follows the page tables. */
  onDemand: boolean;
  /** PFN of the buffer's first page in the parent, after registration and before the fork. */
  parentPfnBefore: number | null;
  /** … and after the writes, with the child still alive. */
  parentPfnAfter: number | null;
  /** PFN of the first page in the child. */
  childPfn: number | null;
  /** Pages whose PFN changed in the parent across fork + writes (null when PFNs are hidden). */
  parentPagesMoved: number | null;
  parentPfnStable: boolean | null;
  /** The child maps the same physical page as the parent (first page). */
  childSharesPage: boolean | null;
  /** process_vm_readv of the child succeeded (EFAULT: the range was not inherited). */
  childMapped: boolean | null;
  childInherited: Inherited | null;
  /** What the parent reads after the writes (before the device writes). */
  parentSees: Content | null;
  /** What the child holds after the writes; 'unmapped' when it has no mapping. */
  childSees: Inherited | null;
  /** What the device path read after the writes (before it wrote). */
  deviceSees: Content | null;
  /** The device path's read returned what the parent sees (its latest write). */
  deviceSeesParentWrite: boolean | null;
  /** After the device wrote a new pattern, the parent reads it. */
  parentSeesDeviceWrite: boolean | null;
  /** After the device wrote, what the child holds. */
  childSeesAfterDeviceWrite: Inherited | null;
  /** The data path used for the device checks, or why there is none. */
  devicePath: string | null;
  verdict: VerdictId;
  /** Skip or failure reason, or a note on how the verdict was reached. */
  reason: string | null;
  elapsedMs: number;
}

/** Plain words for each verdict id (text output; JSON carries the id). */
export const VERDICT_TEXT: Readonly<Record<VerdictId, string>> = Object.fromEntries(VERDICTS.map((v) => [v.id, v.words])) as Record<VerdictId, string>;

/** Verdicts a run can be expected to reach (`--expect`). */
export const EXPECTABLE_VERDICTS: readonly VerdictId[] = VERDICTS.filter((v) => v.expectable).map((v) => v.id);

/** The verdict from the evidence: data loss first, then what the child got, then what could not be checked. */
export function verdictOf(r: ScenarioResult): { verdict: VerdictId; note: string | null } {
  if (r.pinned || r.onDemand) {
    if (r.deviceSeesParentWrite === false || r.parentSeesDeviceWrite === false) return { verdict: 'parent-disconnected', note: null };
    // A moved page means a disconnected device only when the device holds a pin on the old one;
    // an on-demand MR follows the page tables to the new page.
    if (r.pinned && r.deviceSeesParentWrite === null && r.parentPfnStable === false) {
      return { verdict: 'parent-disconnected', note: 'from PFNs: the parent no longer maps the pinned page' };
    }
  }
  if (r.childMapped === false) return { verdict: 'child-unmapped', note: null };
  if (r.childInherited === 'zeros') return { verdict: 'child-zeros', note: null };
  if (!r.pinned && !r.onDemand) return { verdict: 'not-pinned', note: null };
  if (r.deviceSeesParentWrite === null) {
    if (r.parentPfnStable === null || r.onDemand) return { verdict: 'unverified', note: r.devicePath };
    return { verdict: 'coherent', note: `from PFNs only: the parent still maps the pinned page (${r.devicePath ?? 'no device path'})` };
  }
  return { verdict: 'coherent', note: null };
}

