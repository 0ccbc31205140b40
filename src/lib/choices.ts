// Comma-separated choices on the command line (`--backend uring,mlock`, `--backing all`), checked
// against the valid values: a usage error names the bad value and lists the valid ones.

import { UsageError } from './errors.js';

/** undefined when the flag was not given; `all` alone means every valid value; duplicates dropped. */
export function parseChoiceList<T extends string>(text: string | undefined, valid: readonly T[], flag: string): T[] | undefined {
  return text === undefined ? undefined : checkedChoices(text, valid, flag);
}

/** parseChoiceList as a commander argParser: the list is checked while the options are parsed. */
export function choiceListArg<T extends string>(valid: readonly T[], flag: string): (text: string) => T[] {
  return (text) => checkedChoices(text, valid, flag);
}

function checkedChoices<T extends string>(text: string, valid: readonly T[], flag: string): T[] {
  const items = text.split(',').map((s) => s.trim()).filter(Boolean);
  if (items.length === 0) throw new UsageError(`invalid ${flag} '${text}': valid values are ${valid.join(', ')} (comma-separated, or all)`);
  if (items.length === 1 && items[0] === 'all') return [...valid];
  const out: T[] = [];
  for (const item of items) {
    if (!(valid as readonly string[]).includes(item)) throw new UsageError(`invalid ${flag} '${item}': valid values are ${valid.join(', ')} (comma-separated, or all)`);
    if (!out.includes(item as T)) out.push(item as T);
  }
  return out;
}

