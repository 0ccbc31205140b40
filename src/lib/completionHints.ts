// What the value of an option or argument is, for shell completion. Commands attach a hint where
// they declare the option (next to the list it is checked against), so the completion scripts are
// generated from the program and cannot drift from it. Options with commander `.choices()` need no
// hint: their choices are read from the option itself.

import type { Argument, Option } from 'commander';

/** Values that only exist at completion time; resolved by `rdmactl completion --values KIND`. */
export const DYNAMIC_KINDS = ['pids', 'held-ids', 'columns'] as const;
export type DynamicKind = (typeof DYNAMIC_KINDS)[number];

export type ValueHint =
  /** Fixed words (loaded on demand when a function); `list`: a comma list, completed after the last comma. */
  | { kind: 'words'; words: Words; list: boolean }
  | { kind: 'dynamic'; source: DynamicKind; list: boolean }
  /** A path: the shell's own file completion. */
  | { kind: 'files' }
  /** A user name (`list`: a comma list of them): the shell's own user completion. */
  | { kind: 'users'; list: boolean };

export type Words = readonly string[] | (() => Promise<readonly string[]>);

const hints = new WeakMap<Option | Argument, ValueHint>();

/** Attach `hint` to an option or argument; returns it, for `.addOption(completes(new Option(…), …))`. */
export function completes<T extends Option | Argument>(target: T, hint: ValueHint): T {
  hints.set(target, hint);
  return target;
}

export function hintOf(target: Option | Argument): ValueHint | undefined {
  return hints.get(target);
}

/** Hint for a comma list of `words`. */
export function commaListOf(words: Words): ValueHint {
  return { kind: 'words', words, list: true };
}

/** Hint for one of `words` (when commander `.choices()` would change the error message). */
export function oneOf(words: Words): ValueHint {
  return { kind: 'words', words, list: false };
}

export function users(list = false): ValueHint {
  return { kind: 'users', list };
}

export function dynamic(source: DynamicKind, list = false): ValueHint {
  return { kind: 'dynamic', source, list };
}
