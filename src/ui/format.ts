// Pure helpers of the dashboard: gauges, sparklines, column dropping, sort order, filtering.
// No ink, no React: unit-tested on their own.

import type { ProcessRow } from '../observe/stat.js';
import { PROCESS_FIELDS } from '../observe/statFields.js';
import { escapeText } from '../lib/escape.js';
import { parseSortKeys, sortRecords, type SortColumn } from '../lib/sort.js';
import { formatBytes } from '../lib/size.js';

/** A bar of `width` cells, filled in proportion to value/total (eighths for the last cell). */
export function gaugeBar(value: number, total: number, width: number): string {
  if (width <= 0) return '';
  const fraction = total > 0 ? Math.min(1, Math.max(0, value / total)) : 0;
  const eighths = Math.round(fraction * width * 8);
  const full = Math.floor(eighths / 8);
  const partial = eighths % 8;
  const partials = ['', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];
  let bar = '█'.repeat(full);
  if (full < width && partial > 0) bar += partials[partial];
  // Any non-zero value shows at least a sliver, so "something is pinned" is never invisible.
  if (bar === '' && value > 0) bar = '▏';
  return bar + ' '.repeat(width - [...bar].length);
}

/** Percentage with one decimal, '<0.1%' for small non-zero shares. */
export function percentText(value: number, total: number): string {
  if (total <= 0) return '-';
  const pct = (100 * value) / total;
  if (pct > 0 && pct < 0.1) return '<0.1%';
  return `${pct.toFixed(1)}%`;
}

const SPARKS = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/** The last `width` values as a sparkline scaled from 0 to their maximum. */
export function sparkline(values: readonly number[], width: number): string {
  if (width <= 0) return '';
  const shown = values.slice(-width);
  const max = Math.max(0, ...shown);
  return shown.map((v) => (max <= 0 ? SPARKS[0] : SPARKS[Math.min(7, Math.max(0, Math.round((v / max) * 7)))])).join('');
}

/**
 * Truncate (with …) or pad `text` to exactly `width` columns. Every line of the dashboard goes
 * through here, and ink's Text passes escape sequences through to the terminal: control
 * characters in the text (a comm, a cgroup or file name) are written as \xNN first.
 */
export function fit(text: string, width: number, align: 'left' | 'right' = 'left'): string {
  if (width <= 0) return '';
  const safe = escapeText(text);
  const chars = [...safe];
  if (chars.length > width) return width === 1 ? '…' : `${chars.slice(0, width - 1).join('')}…`;
  const pad = ' '.repeat(width - chars.length);
  return align === 'right' ? pad + safe : safe + pad;
}

export interface Column<R> {
  key: string;
  label: string;
  width: number;
  align?: 'left' | 'right';
  /** Dropped when the terminal is too narrow: lower numbers go first; undefined = never dropped. */
  dropOrder?: number;
  /** Takes the width left over (at least `width`). */
  flex?: boolean;
  text: (row: R) => string;
}

/** Columns are separated by one space. */
export function columnsWidth(columns: readonly Pick<Column<unknown>, 'width'>[]): number {
  return columns.reduce((sum, c) => sum + c.width, 0) + Math.max(0, columns.length - 1);
}

/**
 * The columns that fit in `width`: drops droppable columns (lowest dropOrder first) until the rest fit,
 * then gives the flexible column the leftover width. Never wraps: if even the fixed columns are too
 * wide, the last ones are cut by the caller's fit().
 */
export function chooseColumns<R>(columns: readonly Column<R>[], width: number): Column<R>[] {
  let shown = [...columns];
  const droppable = columns.filter((c) => c.dropOrder !== undefined).sort((a, b) => a.dropOrder! - b.dropOrder!);
  for (const column of droppable) {
    if (columnsWidth(shown) <= width) break;
    shown = shown.filter((c) => c !== column);
  }
  const spare = width - columnsWidth(shown);
  return shown.map((c) => (c.flex && spare > 0 ? { ...c, width: c.width + spare } : c));
}

/**
 * The dashboard's order: columns of stat's process table, as `stat --sort` parses them (any key or
 * label, -KEY descending); rows equal on all of them by pid.
 */
export interface SortOrder {
  columns: readonly SortColumn<ProcessRow>[];
}

/** `top --sort` without a value: as stat, most pinned first, then most locked. */
export const DEFAULT_SORT_TEXT = '-pinned,-locked';

/** The columns key s steps through, each in its own order: largest first, least headroom first, A to Z. */
const SORT_CYCLE: readonly SortColumn<ProcessRow>[] = parseSortKeys('-pinned,-locked,headroom,pid,comm,user', PROCESS_FIELDS);
const BY_PID = parseSortKeys('pid', PROCESS_FIELDS);

/** `top --sort KEYS` (and --reverse): stat's --sort syntax; a UsageError names the valid keys. */
export function parseSortOrder(text: string, options: { reverse?: boolean } = {}): SortOrder {
  return { columns: parseSortKeys(text, PROCESS_FIELDS, options) };
}

/** Rows in `order`, ties by pid. */
export function sortRows<R extends ProcessRow>(rows: readonly R[], order: SortOrder): R[] {
  return sortRecords(rows, [...order.columns, ...BY_PID]);
}

/** Key s: the column after the first one of `order` in SORT_CYCLE, alone and in its own order. */
export function nextSort(order: SortOrder): SortOrder {
  const at = SORT_CYCLE.findIndex((column) => column.key === order.columns[0]?.key);
  return { columns: [SORT_CYCLE[(at + 1) % SORT_CYCLE.length]!] };
}

/** Key I: every column the other way round. */
export function invertSort(order: SortOrder): SortOrder {
  return { columns: order.columns.map((column) => ({ ...column, descending: !column.descending })) };
}

/** For the header: "pinned desc, locked desc" (the columns' labels). */
export function sortText(order: SortOrder): string {
  const label = (key: string): string => (PROCESS_FIELDS.find((f) => f.key === key)?.label ?? key).toLowerCase();
  return order.columns.map((column) => `${label(column.key)} ${column.descending ? 'desc' : 'asc'}`).join(', ');
}

/** Local wall-clock time, HH:MM:SS. */
export function clockTime(epochMs: number): string {
  const d = new Date(epochMs);
  return [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, '0')).join(':');
}

/** Does the row match the filter text? Digits match a pid prefix; text matches comm or user (any case). */
export function matchesFilter(row: Pick<ProcessRow, 'pid' | 'comm' | 'user' | 'uid'>, filter: string): boolean {
  const wanted = filter.trim().toLowerCase();
  if (wanted === '') return true;
  if (/^\d+$/.test(wanted) && (String(row.pid).startsWith(wanted) || String(row.uid) === wanted)) return true;
  return row.comm.toLowerCase().includes(wanted) || row.user.toLowerCase().includes(wanted);
}

/** The larger of pinned and locked as a percentage of RLIMIT_MEMLOCK; null when unlimited. */
export function limitPercent(row: Pick<ProcessRow, 'pinnedBytes' | 'lockedBytes' | 'memlockLimitBytes'>): number | null {
  const limit = row.memlockLimitBytes;
  if (limit === null) return null;
  const used = Math.max(row.pinnedBytes, row.lockedBytes);
  if (limit === 0) return used > 0 ? Infinity : 0;
  return (100 * used) / limit;
}

export function limitPercentText(row: Pick<ProcessRow, 'pinnedBytes' | 'lockedBytes' | 'memlockLimitBytes'>): string {
  const pct = limitPercent(row);
  if (pct === null) return '-';
  if (pct === Infinity) return '>limit';
  return `${pct >= 100 ? Math.round(pct) : pct.toFixed(1)}%`;
}

/** Bytes for a table cell: '0' instead of '0 B' keeps idle columns quiet. */
export function bytesCell(bytes: number | null, nullText = '-'): string {
  if (bytes === null) return nullText;
  return bytes === 0 ? '0' : formatBytes(bytes);
}

/** Keep the selection on the same pid when rows move; else clamp the index. */
export function followSelection(pids: readonly number[], selectedPid: number | null, fallbackIndex: number): number {
  if (pids.length === 0) return 0;
  if (selectedPid !== null) {
    const i = pids.indexOf(selectedPid);
    if (i >= 0) return i;
  }
  return Math.min(Math.max(0, fallbackIndex), pids.length - 1);
}
