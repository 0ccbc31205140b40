// The fork matrix's vocabulary: the dimensions a scenario varies (backend, protection, writer,
// backing), the default matrix, and how a selection on the command line becomes rows.

import { BACKINGS, type Backing, type BackendName, type Protection } from '../engine/types.js';

/** `plain` is the baseline: the same buffer, not registered at all. */
export type ForkBackend = 'plain' | BackendName;
export const FORK_BACKENDS: readonly ForkBackend[] = ['plain', 'mlock', 'uring', 'verbs'];
export const PROTECTIONS: readonly Protection[] = ['none', 'dontfork', 'wipeonfork', 'fork-init'];
export type Writer = 'parent' | 'child' | 'both' | 'none';
export const WRITERS: readonly Writer[] = ['parent', 'child', 'both', 'none'];
export const FORK_BACKINGS: readonly Backing[] = BACKINGS;

export interface ScenarioSpec {
  backend: ForkBackend;
  protection: Protection;
  writer: Writer;
  backing: Backing;
}

export const DEFAULT_MATRIX: readonly ScenarioSpec[] = [
  // Baselines: nothing pins these pages, so copy-on-write moves the writer to a new page.
  { backend: 'plain', protection: 'none', writer: 'parent', backing: 'anon' },
  { backend: 'mlock', protection: 'none', writer: 'parent', backing: 'anon' },
  // Long-term pins (io_uring fixed buffers pin the way ib_umem_get does), each writer.
  { backend: 'uring', protection: 'none', writer: 'parent', backing: 'anon' },
  { backend: 'uring', protection: 'none', writer: 'child', backing: 'anon' },
  { backend: 'uring', protection: 'none', writer: 'both', backing: 'anon' },
  { backend: 'uring', protection: 'none', writer: 'none', backing: 'anon' },
  // Other backings.
  { backend: 'uring', protection: 'none', writer: 'parent', backing: 'thp' },
  { backend: 'uring', protection: 'none', writer: 'both', backing: 'memfd' },
  { backend: 'uring', protection: 'none', writer: 'parent', backing: 'file-private' },
  // The protections.
  { backend: 'uring', protection: 'dontfork', writer: 'parent', backing: 'anon' },
  { backend: 'uring', protection: 'wipeonfork', writer: 'parent', backing: 'anon' },
  { backend: 'mlock', protection: 'dontfork', writer: 'parent', backing: 'anon' },
  // Real RDMA memory regions, when there is a device.
  { backend: 'verbs', protection: 'none', writer: 'parent', backing: 'anon' },
  { backend: 'verbs', protection: 'fork-init', writer: 'parent', backing: 'anon' },
];

/** The value each dimension takes when a selection does not name it. */
export const SELECTION_DEFAULTS = {
  backend: FORK_BACKENDS,
  protection: ['none'] as readonly Protection[],
  writer: ['parent'] as readonly Writer[],
  backing: ['anon'] as readonly Backing[],
};

export interface Selection {
  backend?: readonly ForkBackend[];
  protection?: readonly Protection[];
  writer?: readonly Writer[];
  backing?: readonly Backing[];
}

/**
 * No selection: the default matrix. Otherwise every combination of the named values, with
 * SELECTION_DEFAULTS for the dimensions not named (inapplicable combinations show as skipped).
 */
export function buildMatrix(selection: Selection = {}): ScenarioSpec[] {
  if (!selection.backend && !selection.protection && !selection.writer && !selection.backing) return [...DEFAULT_MATRIX];
  const out: ScenarioSpec[] = [];
  for (const backend of selection.backend ?? SELECTION_DEFAULTS.backend) {
    for (const protection of selection.protection ?? SELECTION_DEFAULTS.protection) {
      for (const backing of selection.backing ?? SELECTION_DEFAULTS.backing) {
        for (const writer of selection.writer ?? SELECTION_DEFAULTS.writer) out.push({ backend, protection, writer, backing });
      }
    }
  }
  return out;
}

/** Why a combination makes no sense, or null. */
export function notApplicable(spec: ScenarioSpec): string | null {
  if (spec.protection === 'fork-init' && spec.backend !== 'verbs') return 'not applicable: fork-init is ibv_fork_init(), verbs only';
  if (spec.protection === 'wipeonfork' && spec.backing !== 'anon' && spec.backing !== 'thp') {
    return `not applicable: MADV_WIPEONFORK needs private anonymous memory (anon or thp), not ${spec.backing}`;
  }
  return null;
}
