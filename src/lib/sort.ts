// `--sort KEY[,KEY…]` for every command that prints records, the `ps --sort` / `lsblk -x` way: a key
// is any column of the command's field list (its JSON key or its label, any case), ascending unless
// written `-KEY` (`+KEY` is ascending too); `--reverse` turns every key around. Records compare by
// their raw values, never by the text a column shows: sizes as numbers, addresses as integers,
// strings by code unit (as `LC_ALL=C sort`), and a null (unlimited, unknown) after every value
// whichever the direction.

import { UsageError } from './errors.js';
import type { Field, JsonValue } from './fields.js';

export type SortValue = number | bigint | string | boolean | null;

export interface SortColumn<R> {
  /** The field's JSON key. */
  key: string;
  descending: boolean;
  value: (record: R) => SortValue;
}

/** Per field key, a raw value to sort by where the field's own value is text (hex addresses). */
export type SortValues<R> = Partial<Record<string, (record: R) => SortValue>>;

function plainSortValue(value: JsonValue): SortValue {
  if (value === null || value === undefined) return null;
  if (Array.isArray(value)) return value.length === 0 ? null : value.map((v) => (typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v))).join(',');
  if (typeof value === 'object') return JSON.stringify(value);
  return value;
}

function fieldNamed<R>(fields: readonly Field<R>[], name: string): Field<R> | undefined {
  const wanted = name.toLowerCase();
  return fields.find((f) => f.key.toLowerCase() === wanted) ?? fields.find((f) => f.label.toLowerCase() === wanted);
}

/**
 * The keys of a `--sort` value. Throws UsageError naming the valid keys for an unknown one, and for an
 * empty list. `reverse` (--reverse) turns every key's direction around.
 */
export function parseSortKeys<R>(text: string, fields: readonly Field<R>[], options: { reverse?: boolean; values?: SortValues<R>; option?: string } = {}): SortColumn<R>[] {
  const option = options.option ?? '--sort';
  const valid = fields.map((f) => f.key).join(', ');
  const names = text.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (names.length === 0) throw new UsageError(`invalid ${option} '${text}': give a comma list of column keys, each with - for descending, e.g. user,-pinnedBytes; valid keys are ${valid}`);
  return names.map((name) => {
    const descending = name.startsWith('-');
    const bare = name.startsWith('-') || name.startsWith('+') ? name.slice(1) : name;
    const field = fieldNamed(fields, bare);
    if (!field) throw new UsageError(`unknown key '${bare}' for ${option}: valid keys are ${valid} (labels too; -KEY sorts descending)`);
    const raw = options.values?.[field.key];
    return {
      key: field.key,
      descending: descending !== (options.reverse ?? false),
      value: raw ?? ((record: R) => plainSortValue(field.get(record))),
    };
  });
}

/** Ascending order of two non-null values: numbers (and bigints) by value, booleans false first, text by code unit. */
function compareValues(a: Exclude<SortValue, null>, b: Exclude<SortValue, null>): number {
  if ((typeof a === 'number' || typeof a === 'bigint') && (typeof b === 'number' || typeof b === 'bigint')) return a < b ? -1 : a > b ? 1 : 0;
  if (typeof a === 'boolean' && typeof b === 'boolean') return Number(a) - Number(b);
  const x = String(a);
  const y = String(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** Compares two records by `keys` in turn; nulls go last in either direction. */
export function compareBy<R>(keys: readonly SortColumn<R>[]): (a: R, b: R) => number {
  return (a, b) => {
    for (const key of keys) {
      const x = key.value(a);
      const y = key.value(b);
      if (x === null || y === null) {
        if (x !== y) return x === null ? 1 : -1;
        continue;
      }
      const order = compareValues(x, y);
      if (order !== 0) return key.descending ? -order : order;
    }
    return 0;
  };
}

/** A sorted copy of `records`; records equal on every key keep their order (the sort is stable). */
export function sortRecords<R>(records: readonly R[], keys: readonly SortColumn<R>[]): R[] {
  return [...records].sort(compareBy(keys));
}
