// One field list per record type serves both text and JSON, so keys and columns never drift
// (the iproute2 rdma tool's approach). JSON carries raw values (integer bytes, null for
// unlimited/unknown); text formats them for people.

import { createRequire } from 'node:module';
import type TableType from 'cli-table3';
import { formatBytes } from './size.js';

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

export type FieldKind = 'text' | 'bytes' | 'count' | 'micros' | 'bool' | 'percent';

export interface Field<R> {
  /** JSON key: stable contract, documented in the man page. */
  key: string;
  /** Column header / row label in text output. */
  label: string;
  kind?: FieldKind;
  get: (record: R) => JsonValue;
  /** Text for a null value (default '-'), e.g. 'unlimited'. */
  nullText?: string;
  /** Leave the field out of text output (JSON only), e.g. long lists. */
  jsonOnly?: boolean;
  /** Text output shows the field only when this holds for the record (JSON always has the key). */
  showIf?: (record: R) => boolean;
}

export function formatValue(kind: FieldKind, value: JsonValue, nullText = '-'): string {
  if (value === null || value === undefined) return nullText;
  switch (kind) {
    case 'bytes':
      return typeof value === 'number' ? formatBytes(value) : String(value);
    case 'micros':
      return typeof value === 'number' ? (value >= 1000 ? `${(value / 1000).toFixed(1)} ms` : `${value} µs`) : String(value);
    case 'bool':
      return value ? 'yes' : 'no';
    case 'percent':
      return typeof value === 'number' ? `${value.toFixed(1)}%` : String(value);
    default:
      return Array.isArray(value) ? value.join(',') : typeof value === 'object' ? JSON.stringify(value) : String(value);
  }
}

export function toJson<R>(fields: readonly Field<R>[], record: R): { [key: string]: JsonValue } {
  const out: { [key: string]: JsonValue } = {};
  for (const field of fields) out[field.key] = field.get(record);
  return out;
}

export function textCells<R>(fields: readonly Field<R>[], record: R): string[] {
  return fields.filter((f) => !f.jsonOnly).map((f) => formatValue(f.kind ?? 'text', f.get(record), f.nullText));
}

// cli-table3 is loaded on first render: JSON output and --version never pay for it.
let tableClass: typeof TableType | undefined;
function Table(options: TableType.TableConstructorOptions): InstanceType<typeof TableType> {
  tableClass ??= createRequire(import.meta.url)('cli-table3') as typeof TableType;
  return new tableClass(options);
}

const PLAIN_STYLE = { head: [] as string[], border: [] as string[] };

/** A table with one row per record. */
export function renderTable<R>(fields: readonly Field<R>[], records: readonly R[]): string {
  const shown = fields.filter((f) => !f.jsonOnly);
  const table = Table({ head: shown.map((f) => f.label), style: { ...PLAIN_STYLE, compact: true } });
  for (const record of records) table.push(textCells(fields, record));
  return table.toString();
}

/** One record as label/value rows. */
export function renderRecord<R>(fields: readonly Field<R>[], record: R): string {
  const table = Table({ style: { ...PLAIN_STYLE, compact: true } });
  for (const field of fields) {
    if (field.jsonOnly || (field.showIf && !field.showIf(record))) continue;
    table.push({ [field.label]: formatValue(field.kind ?? 'text', field.get(record), field.nullText) });
  }
  return table.toString();
}
