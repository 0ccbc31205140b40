// The one comparator behind `stat --sort` and `ls --sort`, on records made here: raw values (not the
// text a column shows), -KEY and --reverse, several keys, nulls last, labels, unknown keys.
import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/lib/errors.js';
import { formatValue, type Field } from '../../src/lib/fields.js';
import { parseSortKeys, sortRecords, type SortValues } from '../../src/lib/sort.js';

interface Row {
  id: string;
  user: string;
  pinned: number;
  limit: number | null;
  addr: bigint | null;
  flags: string[];
  overlap: boolean;
}

const FIELDS: readonly Field<Row>[] = [
  { key: 'id', label: 'ID', description: 'row', get: (r) => r.id },
  { key: 'user', label: 'USER', description: 'owner', get: (r) => r.user },
  { key: 'pinnedBytes', label: 'PINNED', description: 'bytes', kind: 'bytes', get: (r) => r.pinned },
  { key: 'limitBytes', label: 'MEMLOCK', description: 'null: unlimited', kind: 'bytes', nullText: 'unlimited', get: (r) => r.limit },
  { key: 'addr', label: 'RANGE', description: 'hex text', get: (r) => (r.addr === null ? null : `0x${r.addr.toString(16)}`) },
  { key: 'flags', label: 'FLAGS', description: 'a list', get: (r) => r.flags },
  { key: 'overlap', label: 'OVERLAP', description: 'yes/no', kind: 'bool', get: (r) => r.overlap },
];

const MiB = 1024 * 1024;
const ROWS: readonly Row[] = [
  { id: 'a', user: 'root', pinned: 10 * MiB, limit: null, addr: 0x10000000n, flags: ['io_uring'], overlap: false },
  { id: 'b', user: 'alice', pinned: 100, limit: 64 * 1024, addr: 0x9000n, flags: [], overlap: true },
  { id: 'c', user: 'root', pinned: 9 * MiB, limit: 8 * MiB, addr: null, flags: ['overlap', 'io_uring'], overlap: false },
  { id: 'd', user: 'alice', pinned: 9 * MiB, limit: null, addr: 0xa000n, flags: ['dontfork'], overlap: true },
];

const ids = (text: string, options: Parameters<typeof parseSortKeys<Row>>[2] = {}): string[] =>
  sortRecords(ROWS, parseSortKeys(text, FIELDS, options)).map((r) => r.id);

describe('sortRecords with parseSortKeys', () => {
  it('sorts sizes by their value, not by the text the column shows', () => {
    // Sorted as the column's text ("10 MiB" < "100 B" < "9 MiB") the order would be wrong.
    const byText = [...ROWS].sort((x, y) => (formatValue('bytes', x.pinned) < formatValue('bytes', y.pinned) ? -1 : 1)).map((r) => r.id);
    expect(byText).not.toEqual(['b', 'c', 'd', 'a']);
    expect(ids('pinnedBytes')).toEqual(['b', 'c', 'd', 'a']);
    expect(ids('-pinnedBytes')).toEqual(['a', 'c', 'd', 'b']); // c and d tie: they keep their order
  });

  it('takes labels and keys in any case; +KEY is ascending', () => {
    expect(ids('PINNED')).toEqual(ids('pinnedbytes'));
    expect(ids('+Pinned')).toEqual(ids('pinnedBytes'));
  });

  it('several keys: user ascending, then most pinned first', () => {
    expect(ids('user,-pinned')).toEqual(['d', 'b', 'a', 'c']);
    expect(ids(' user , -pinned ')).toEqual(['d', 'b', 'a', 'c']);
  });

  it('--reverse turns every key around, -KEY included', () => {
    expect(ids('pinnedBytes', { reverse: true })).toEqual(ids('-pinnedBytes'));
    expect(ids('user,-pinned', { reverse: true })).toEqual(['c', 'a', 'b', 'd']);
  });

  it('nulls (unlimited) go last in either direction', () => {
    expect(ids('limitBytes')).toEqual(['b', 'c', 'a', 'd']);
    expect(ids('-limitBytes')).toEqual(['c', 'b', 'a', 'd']);
    expect(ids('limitBytes', { reverse: true })).toEqual(['c', 'b', 'a', 'd']);
  });

  it('a raw value given for a text column (hex addresses) is what is compared', () => {
    // As text "0x10000000" < "0x9000" < "0xa000".
    expect(ids('addr')).toEqual(['a', 'b', 'd', 'c']);
    const values: SortValues<Row> = { addr: (r) => r.addr };
    expect(ids('addr', { values })).toEqual(['b', 'd', 'a', 'c']);
    expect(ids('-addr', { values })).toEqual(['a', 'd', 'b', 'c']);
  });

  it('booleans false first; lists by their comma text, an empty list like null', () => {
    expect(ids('overlap')).toEqual(['a', 'c', 'b', 'd']);
    expect(ids('flags')).toEqual(['d', 'a', 'c', 'b']);
  });

  it('text by code unit (as LC_ALL=C sort), whatever the locale', () => {
    const rows = ['b', 'B', 'a', 'A'].map((user, i) => ({ ...ROWS[0]!, id: String(i), user }));
    expect(sortRecords(rows, parseSortKeys('user', FIELDS)).map((r) => r.user)).toEqual(['A', 'B', 'a', 'b']);
  });

  it('an unknown key or an empty list is a one-line usage error naming the valid keys', () => {
    expect(() => parseSortKeys('size', FIELDS)).toThrow(UsageError);
    expect(() => parseSortKeys('user,-size', FIELDS)).toThrow(/^unknown key 'size' for --sort: valid keys are id, user, pinnedBytes, limitBytes, addr, flags, overlap/);
    expect(() => parseSortKeys(' , ', FIELDS)).toThrow(/^invalid --sort ' , ': give a comma list/);
    expect(() => parseSortKeys('-', FIELDS)).toThrow(/^unknown key '' for --sort/);
    for (const text of ['size', '', '-']) {
      try { parseSortKeys(text, FIELDS); } catch (err) { expect((err as Error).message).not.toContain('\n'); }
    }
  });
});
