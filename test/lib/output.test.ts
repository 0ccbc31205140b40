// The pure parts of output.ts: column selection, util-linux raw escaping, table layouts.
import { describe, expect, it } from 'vitest';
import { escapeRaw, renderRecord, renderTable, selectFields, type TextStyle } from '../../src/lib/output.js';
import { UsageError } from '../../src/lib/errors.js';
import type { Field } from '../../src/lib/fields.js';

interface Row { pid: number; name: string; bytes: number | null }

const FIELDS: readonly Field<Row>[] = [
  { key: 'pid', label: 'PID', description: 'process id', get: (r) => r.pid },
  { key: 'name', label: 'NAME', description: 'name', get: (r) => r.name },
  { key: 'sizeBytes', label: 'SIZE', title: 'size in bytes', description: 'a size', kind: 'bytes', get: (r) => r.bytes, nullText: 'unlimited' },
  { key: 'hidden', label: 'HIDDEN', description: 'not default', get: () => 'x', extra: true },
];
const DEFAULTS = FIELDS.filter((f) => !f.extra);
const ROWS: Row[] = [{ pid: 1, name: 'init', bytes: 8 * 1024 * 1024 }, { pid: 4242, name: 'my prog\\x', bytes: null }];
const keys = (fields: readonly Field<Row>[]): string[] => fields.map((f) => f.key);
const style = (over: Partial<TextStyle> = {}): TextStyle => ({ boxed: false, headings: true, raw: false, bytes: false, ...over });

describe('selectFields', () => {
  it('defaults without -o; every field with --output-all', () => {
    expect(keys(selectFields(FIELDS, {}, DEFAULTS))).toEqual(['pid', 'name', 'sizeBytes']);
    expect(keys(selectFields(FIELDS, { outputAll: true }, DEFAULTS))).toEqual(['pid', 'name', 'sizeBytes', 'hidden']);
  });

  it('keys or labels, any case, in the order given, each once; +LIST appends to the defaults', () => {
    expect(keys(selectFields(FIELDS, { output: 'SIZEBYTES,size,Size in bytes,Pid,hidden' }, DEFAULTS))).toEqual(['sizeBytes', 'pid', 'hidden']);
    expect(keys(selectFields(FIELDS, { output: '+hidden,pid' }, DEFAULTS))).toEqual(['pid', 'name', 'sizeBytes', 'hidden']);
  });

  it('an unknown column or an empty list is a UsageError naming every valid column', () => {
    expect(() => selectFields(FIELDS, { output: 'pid,nope' }, DEFAULTS)).toThrow(new UsageError("unknown column 'nope' for --output: valid columns are pid, name, sizeBytes, hidden"));
    expect(() => selectFields(FIELDS, { output: ' , ' }, DEFAULTS)).toThrow(UsageError);
    expect(() => selectFields(FIELDS, { output: 'pid', outputAll: true }, DEFAULTS)).toThrow(UsageError);
  });
});

describe('escapeRaw (libsmartcols raw format)', () => {
  it('escapes blanks, backslash, control characters and every byte that is not printable ASCII', () => {
    expect(escapeRaw('a b\tc')).toBe('a\\x20b\\x09c');
    expect(escapeRaw('C:\\x')).toBe('C:\\x5cx');
    expect(escapeRaw('12 µs')).toBe('12\\x20\\xc2\\xb5s');
    expect(escapeRaw('line\n')).toBe('line\\x0a');
    expect(escapeRaw('plain-text_0x7f,ok')).toBe('plain-text_0x7f,ok');
  });
});

describe('renderTable / renderRecord', () => {
  it('plain: columns separated by spaces, numbers right-aligned, no trailing blanks, no boxes', () => {
    expect(renderTable(DEFAULTS, ROWS, style())).toBe([
      'PID  NAME              SIZE',
      '1    init                8M',
      '4242 my\\x20prog\\x unlimited',
    ].join('\n'));
  });

  it('plain: every cell is one word (sizes as lsblk writes them, blanks as \\x20), except prose columns', () => {
    const words = renderTable(DEFAULTS, [{ pid: 1, name: 'a b', bytes: 2.28 * 1024 ** 3 }], style()).split('\n');
    expect(words.map((line) => line.split(/ +/).length)).toEqual([3, 3]);
    expect(words[1]).toBe('1   a\\x20b 2.3G');
    const prose: Field<Row> = { key: 'why', label: 'WHY', description: 'words', get: () => 'because it is so', prose: true };
    expect(renderTable([...DEFAULTS, prose], ROWS.slice(0, 1), style()).split('\n')[1]).toBe('1   init   8M because it is so');
    // On a terminal people read the cells: sizes in IEC units, blanks as they are.
    expect(renderTable(DEFAULTS, ROWS, style({ boxed: true }))).toContain('│ 4242 │ my prog\\x │ unlimited │');
    expect(renderTable(DEFAULTS, ROWS, style({ boxed: true }))).toContain('│ 1    │ init      │     8 MiB │');
  });

  it('-b prints integer bytes; -n drops the header; nothing at all for no rows', () => {
    expect(renderTable(DEFAULTS, ROWS, style({ bytes: true, headings: false })).split('\n')[0]).toBe('1    init           8388608');
    expect(renderTable(DEFAULTS, [], style({ headings: false }))).toBe('');
    expect(renderTable(DEFAULTS, [], style())).toBe('PID NAME SIZE');
  });

  it('-r: one record per line, one space between values, values and labels escaped', () => {
    expect(renderTable(DEFAULTS, ROWS, style({ raw: true }))).toBe('PID NAME SIZE\n1 init 8M\n4242 my\\x20prog\\x5cx unlimited');
    expect(renderTable(DEFAULTS, ROWS, style({ raw: true, headings: false, bytes: true }))).toBe('1 init 8388608\n4242 my\\x20prog\\x5cx unlimited');
  });

  it('boxed on a terminal', () => {
    const boxed = renderTable(DEFAULTS, ROWS, style({ boxed: true }));
    expect(boxed.split('\n')[0]).toMatch(/^┌─+┬/);
    expect(boxed).toContain('│ 4242 │ my prog\\x │ unlimited │');
  });

  it('a record as label/value lines, plain or boxed', () => {
    expect(renderRecord(DEFAULTS, ROWS[0]!, style())).toBe('PID            1\nNAME           init\nsize in bytes  8M');
    expect(renderRecord(DEFAULTS, ROWS[0]!, style({ boxed: true }))).toContain('│ size in bytes │ 8 MiB │');
  });
});

describe('names other users chose (comm, cgroup) in text output', () => {
  const hostile: Row[] = [{ pid: 7, name: 'x\x1b]0;PWNED\x07\x1b[2J', bytes: 1 }, { pid: 8, name: 'evil\n9999 forged 0', bytes: 2 }];
  const inert = (text: string): void => {
    expect(text).not.toMatch(/[\x00-\x09\x0b-\x1f\x7f-\x9f]/);
    expect(text.split('\n').some((line) => line.includes('forged') && !line.includes('evil'))).toBe(false);
  };

  it('plain and boxed tables and records print control characters as \\xNN, one line per record', () => {
    for (const boxed of [false, true]) {
      const table = renderTable(DEFAULTS, hostile, style({ boxed }));
      inert(table);
      expect(table).toContain('x\\x1b]0;PWNED\\x07\\x1b[2J');
      expect(table).toContain(boxed ? 'evil\\x0a9999 forged 0' : 'evil\\x0a9999\\x20forged\\x200');
      expect(table.split('\n')).toHaveLength(boxed ? 6 : 3);
      const record = renderRecord(DEFAULTS, hostile[0]!, style({ boxed }));
      inert(record);
      expect(record).toContain('x\\x1b]0;PWNED\\x07\\x1b[2J');
    }
  });

  it('-r escapes them once, the util-linux way', () => {
    expect(renderTable(DEFAULTS, hostile, style({ raw: true, headings: false, bytes: true }))).toBe(
      '7 x\\x1b]0;PWNED\\x07\\x1b[2J 1\n8 evil\\x0a9999\\x20forged\\x200 2');
  });
});
