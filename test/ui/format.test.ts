// The dashboard's pure helpers.
import { describe, expect, it } from 'vitest';
import {
  bytesCell, chooseColumns, columnsWidth, fit, followSelection, gaugeBar, invertSort, limitPercent, limitPercentText, matchesFilter, nextSort, DEFAULT_SORT_TEXT,
  parseSortOrder, percentText, sortRows, sortText, sparkline, type Column,
} from '../../src/ui/format.js';
import { UsageError } from '../../src/lib/errors.js';
import { PROCESS_COLUMNS } from '../../src/ui/dashboard/columns.js';
import { PROCESS_FIELDS } from '../../src/observe/statFields.js';
import { MiB, proc } from './fixtures.js';

describe('gaugeBar', () => {
  it('fills in proportion, with eighths, always exactly `width` cells', () => {
    expect(gaugeBar(0, 100, 10)).toBe(' '.repeat(10));
    expect(gaugeBar(100, 100, 10)).toBe('█'.repeat(10));
    expect(gaugeBar(50, 100, 10)).toBe(`${'█'.repeat(5)}${' '.repeat(5)}`);
    expect(gaugeBar(55, 100, 10)).toBe(`${'█'.repeat(5)}▌${' '.repeat(4)}`);
    expect(gaugeBar(200, 100, 4)).toBe('████');
    for (const v of [0, 1, 33, 99, 100]) expect([...gaugeBar(v, 100, 7)]).toHaveLength(7);
  });
  it('shows a sliver for tiny non-zero values and handles a zero total', () => {
    expect(gaugeBar(1, 1e12, 10)).toBe(`▏${' '.repeat(9)}`);
    expect(gaugeBar(5, 0, 3)).toBe('▏  ');
    expect(gaugeBar(5, 100, 0)).toBe('');
  });
  it('percentText', () => {
    expect(percentText(1, 4)).toBe('25.0%');
    expect(percentText(1, 1e6)).toBe('<0.1%');
    expect(percentText(0, 10)).toBe('0.0%');
    expect(percentText(1, 0)).toBe('-');
  });
});

describe('sparkline', () => {
  it('scales from zero to the maximum and keeps the last `width` values', () => {
    expect(sparkline([0, 1, 2, 3, 4, 5, 6, 7], 8)).toBe('▁▂▃▄▅▆▇█');
    expect(sparkline([0, 0, 0], 5)).toBe('▁▁▁');
    expect(sparkline([9, 9, 1, 7], 2)).toBe('▂█');
    expect(sparkline([5, 5], 2)).toBe('██');
    expect(sparkline([1, 2], 0)).toBe('');
    expect(sparkline([], 4)).toBe('');
  });
});

describe('fit', () => {
  it('pads, right-aligns and truncates with an ellipsis', () => {
    expect(fit('abc', 5)).toBe('abc  ');
    expect(fit('abc', 5, 'right')).toBe('  abc');
    expect(fit('abcdef', 4)).toBe('abc…');
    expect(fit('abc', 1)).toBe('…');
    expect(fit('abc', 0)).toBe('');
  });
});

describe('chooseColumns', () => {
  const col = (key: string, width: number, dropOrder?: number, flex?: boolean): Column<unknown> =>
    ({ key, label: key, width, text: () => '', ...(dropOrder !== undefined ? { dropOrder } : {}), ...(flex ? { flex } : {}) });
  const columns = [col('a', 5), col('b', 5, 2), col('c', 5), col('d', 5, 1, true)];
  it('keeps everything when it fits and gives the spare width to the flexible column', () => {
    expect(columnsWidth(columns)).toBe(23);
    expect(chooseColumns(columns, 23).map((c) => c.key)).toEqual(['a', 'b', 'c', 'd']);
    expect(chooseColumns(columns, 30).find((c) => c.key === 'd')!.width).toBe(12);
  });
  it('drops the lowest dropOrder first, never the undroppable ones', () => {
    expect(chooseColumns(columns, 22).map((c) => c.key)).toEqual(['a', 'b', 'c']);
    expect(chooseColumns(columns, 12).map((c) => c.key)).toEqual(['a', 'c']);
    expect(chooseColumns(columns, 3).map((c) => c.key)).toEqual(['a', 'c']);
  });
  it('the process columns use stat\'s field keys and labels', () => {
    for (const c of PROCESS_COLUMNS) {
      if (c.key === 'limitPercent') continue;
      expect(PROCESS_FIELDS.find((f) => f.key === c.key)?.label).toBe(c.label);
    }
    const row = { ...proc(7, 'x', 8, 1), mark: null };
    expect(PROCESS_COLUMNS.map((c) => c.text(row))).toEqual(['7', 'alice', 'x', '8 MiB', '1 MiB', '64 MiB', '12.5%', '']);
  });
});

describe('sort cycling, filtering, limits, selection', () => {
  it('nextSort: key s steps through pinned, locked, headroom, pid, comm, user, each alone and in its own order', () => {
    let order = parseSortOrder(DEFAULT_SORT_TEXT);
    expect(sortText(order)).toBe('pinned desc, locked desc');
    const seen: string[] = [];
    for (let i = 0; i < 6; i++) seen.push(sortText(order = nextSort(order)));
    expect(seen).toEqual(['locked desc', 'headroom asc', 'pid asc', 'comm asc', 'user asc', 'pinned desc']);
    expect(sortText(nextSort(invertSort(parseSortOrder('pinned'))))).toBe('locked desc');
    // A column outside the cycle: s starts it over.
    expect(sortText(nextSort(parseSortOrder('-memlock')))).toBe('pinned desc');
  });

  it('parseSortOrder: stat --sort\'s syntax (keys or labels, -KEY descending, comma lists, --reverse); anything else is a usage error naming the keys', () => {
    expect(sortText(parseSortOrder('pinned'))).toBe('pinned asc');
    expect(sortText(parseSortOrder('-pid'))).toBe('pid desc');
    expect(sortText(parseSortOrder('+pinnedBytes'))).toBe('pinned asc');
    expect(sortText(parseSortOrder('user,-HEADROOM'))).toBe('user asc, headroom desc');
    expect(sortText(parseSortOrder('user,-headroom', { reverse: true }))).toBe('user desc, headroom asc');
    expect(sortText(parseSortOrder('-uringBytes'))).toBe('io_uring desc');
    for (const bad of ['size', '-', '--pid', '+-pid']) {
      expect(() => parseSortOrder(bad), bad).toThrow(UsageError);
      expect(() => parseSortOrder(bad), bad).toThrow(/^unknown key '.*' for --sort: valid keys are pid, user, uid, comm, pinnedBytes, lockedBytes, memlockLimitBytes, headroomBytes,/);
    }
    expect(() => parseSortOrder('')).toThrow("invalid --sort '': give a comma list of column keys");
  });

  it('sortRows: by the columns in turn, ties by pid; unlimited headroom last either way; I turns every column round', () => {
    const rows = [proc(30, 'b', 8), proc(10, 'a', 8), proc(20, 'c', 64, 2), proc(40, 'a', 0, 16, { memlockLimitBytes: null })];
    const pids = (text: string, options: { reverse?: boolean } = {}): number[] => sortRows(rows, parseSortOrder(text, options)).map((r) => r.pid);
    expect(pids(DEFAULT_SORT_TEXT)).toEqual([20, 10, 30, 40]);
    expect(pids('-pid')).toEqual([40, 30, 20, 10]);
    expect(pids('+pinned')).toEqual([40, 10, 30, 20]);
    expect(pids('comm,-pid')).toEqual([40, 10, 30, 20]);
    expect(pids('comm,-pid', { reverse: true })).toEqual([20, 30, 10, 40]);
    expect(pids('headroom')).toEqual([20, 10, 30, 40]);
    expect(pids('-headroom')).toEqual([10, 30, 20, 40]);
    expect(sortRows(rows, invertSort(parseSortOrder('comm,-pid'))).map((r) => r.pid)).toEqual([20, 30, 10, 40]);
    expect(sortText(invertSort(parseSortOrder('comm')))).toBe('comm desc');
  });

  it('matchesFilter: comm and user substrings (any case), pid prefixes, uids', () => {
    const row = { pid: 4321, comm: 'ib_write_bw', user: 'Alice', uid: 1000 };
    expect(matchesFilter(row, '')).toBe(true);
    expect(matchesFilter(row, '  ')).toBe(true);
    expect(matchesFilter(row, 'WRITE')).toBe(true);
    expect(matchesFilter(row, 'ali')).toBe(true);
    expect(matchesFilter(row, '43')).toBe(true);
    expect(matchesFilter(row, '1000')).toBe(true);
    expect(matchesFilter(row, '321')).toBe(false);
    expect(matchesFilter(row, 'bob')).toBe(false);
  });
  it('limitPercent uses the larger of pinned and locked; unlimited is null', () => {
    expect(limitPercent(proc(1, 'a', 8, 16))).toBe(25);
    expect(limitPercent(proc(1, 'a', 8, 0, { memlockLimitBytes: null }))).toBeNull();
    expect(limitPercent(proc(1, 'a', 1, 0, { memlockLimitBytes: 0 }))).toBe(Infinity);
    expect(limitPercentText(proc(1, 'a', 1, 0, { memlockLimitBytes: 0 }))).toBe('>limit');
    expect(limitPercentText(proc(1, 'a', 128, 0))).toBe('200%');
    expect(limitPercentText(proc(1, 'a', 8, 0, { memlockLimitBytes: null }))).toBe('-');
  });
  it('bytesCell', () => {
    expect(bytesCell(0)).toBe('0');
    expect(bytesCell(8 * MiB)).toBe('8 MiB');
    expect(bytesCell(null, 'unlimited')).toBe('unlimited');
  });
  it('followSelection keeps the selected pid, else clamps the index', () => {
    expect(followSelection([5, 6, 7], 7, 0)).toBe(2);
    expect(followSelection([5, 6, 7], 9, 1)).toBe(1);
    expect(followSelection([5, 6], null, 8)).toBe(1);
    expect(followSelection([], 5, 3)).toBe(0);
  });
});
