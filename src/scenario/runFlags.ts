// The options every run of scenarios takes from the command line (fork and scenario): the size of
// each row's buffer, verbs access flags on top of the defaults, and the testing pause between steps.

import { UsageError } from '../lib/errors.js';
import { parseSize } from '../lib/size.js';
import { pageSize } from '../proc/pagemap.js';

export interface RunFlags {
  size?: string;
  stepDelay?: string;
  access?: string;
}

export interface RunSettings {
  /** Requested bytes per row: 4 pages unless --size says otherwise (at most 1 GiB). */
  length: number;
  stepDelayMs: number;
  /** Extra IBV_ACCESS_* bits for verbs rows. */
  verbsAccess: number;
}

export async function parseRunFlags(flags: RunFlags, unit: string): Promise<RunSettings> {
  const length = flags.size !== undefined ? parseSize(flags.size, '--size') : 4 * pageSize();
  if (length > 1024 ** 3) throw new UsageError(`invalid --size '${flags.size}': at most 1 GiB per ${unit}`);
  let stepDelayMs = 0;
  if (flags.stepDelay !== undefined) {
    stepDelayMs = Number(flags.stepDelay);
    if (!Number.isInteger(stepDelayMs) || stepDelayMs < 0) throw new UsageError(`invalid --step-delay '${flags.stepDelay}': milliseconds`);
  }
  let verbsAccess = 0;
  if (flags.access !== undefined) {
    // Loaded only when asked: the access table lives with the verbs engine.
    const { parseAccessFlags } = await import('../engine/verbs/access.js');
    verbsAccess = parseAccessFlags(flags.access);
  }
  return { length, stepDelayMs, verbsAccess };
}
