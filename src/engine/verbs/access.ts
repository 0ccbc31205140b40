// Command-line names of the IBV_ACCESS_* flags: parsing (a usage error names the valid ones) and
// formatting. Policy, not bindings, so it lives in the engine; it imports only constants (no koffi).

import { UsageError } from '../../lib/errors.js';
import {
  IBV_ACCESS_HUGETLB,
  IBV_ACCESS_LOCAL_WRITE,
  IBV_ACCESS_MW_BIND,
  IBV_ACCESS_ON_DEMAND,
  IBV_ACCESS_RELAXED_ORDERING,
  IBV_ACCESS_REMOTE_ATOMIC,
  IBV_ACCESS_REMOTE_READ,
  IBV_ACCESS_REMOTE_WRITE,
  IBV_ACCESS_ZERO_BASED,
} from '../../ffi/verbs/enums.js';

/** Command-line names of the access flags, in the order they are listed to users. */
export const ACCESS_FLAGS: Readonly<Record<string, number>> = {
  'local-write': IBV_ACCESS_LOCAL_WRITE,
  'remote-write': IBV_ACCESS_REMOTE_WRITE,
  'remote-read': IBV_ACCESS_REMOTE_READ,
  'remote-atomic': IBV_ACCESS_REMOTE_ATOMIC,
  'mw-bind': IBV_ACCESS_MW_BIND,
  'zero-based': IBV_ACCESS_ZERO_BASED,
  'on-demand': IBV_ACCESS_ON_DEMAND,
  hugetlb: IBV_ACCESS_HUGETLB,
  'relaxed-ordering': IBV_ACCESS_RELAXED_ORDERING,
};

/** The access `reg` asks for without --access: remote-read alone for a read-only buffer. */
export function defaultAccessText(readOnly: boolean): string {
  return readOnly ? 'remote-read' : 'local-write,remote-write,remote-read';
}

/** "local-write,remote-read" → IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ. Empty string → 0. */
export function parseAccessFlags(spec: string): number {
  let flags = 0;
  for (const raw of spec.split(',')) {
    const name = raw.trim().toLowerCase();
    if (name === '') continue;
    const bit = ACCESS_FLAGS[name];
    if (bit === undefined) {
      throw new UsageError(`unknown access flag '${raw.trim()}'`, [`valid access flags: ${Object.keys(ACCESS_FLAGS).join(', ')}`]);
    }
    flags |= bit;
  }
  return flags;
}

/** IBV_ACCESS_* bits → their command-line names (unknown bits as hex). */
export function formatAccessFlags(access: number): string[] {
  const names: string[] = [];
  let rest = access;
  for (const [name, bit] of Object.entries(ACCESS_FLAGS)) {
    if (access & bit) {
      names.push(name);
      rest &= ~bit;
    }
  }
  if (rest !== 0) names.push(`0x${(rest >>> 0).toString(16)}`);
  return names;
}
