// One field list per record type serves both text and JSON, so keys and columns never drift
// (the iproute2 rdma tool's approach). JSON carries raw values (integer bytes, null for
// unlimited/unknown); text formats them for people. Which fields a command prints, and how the
// text is laid out, is decided in output.ts.

import { escapeRaw, escapeText, escapeWord } from './escape.js';
import { formatBytes, type SizeStyle } from './size.js';

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

export type FieldKind = 'text' | 'bytes' | 'count' | 'micros' | 'bool' | 'percent';

export interface Field<R> {
  /** JSON key and `-o` column name: a stable contract, documented in the man page. */
  key: string;
  /**
   * Column header in text output (also accepted by `-o`): upper case and one word, like ps and
   * lsblk (`COUNTED-TWICE`), so `column -t` and awk see one word per header cell.
   */
  label: string;
  /** The row label where one record prints as label/value rows (`limits`, `reg`); default: label. */
  title?: string;
  /** One line for `-H` and the documentation: what the value is and where it comes from. */
  description: string;
  kind?: FieldKind;
  get: (record: R) => JsonValue;
  /** Text for a null value (default '-'), e.g. 'unlimited'. */
  nullText?: string;
  /** Not a default text column (too wide or too detailed): JSON has it, text shows it with -o/--output-all. */
  extra?: boolean;
  /** Default text output shows the field only when this holds for the record (JSON always has the key). */
  showIf?: (record: R) => boolean;
  /** On a terminal (boxed table), wrap this column's text at spaces to at most this many characters. */
  wrapAt?: number;
  /**
   * Free text for people (a reason, a summary, evidence in words): in plain tables its blanks stay
   * blanks, where every other cell is made one word. Such a column goes last in its field list.
   */
  prose?: boolean;
}

export interface FormatOptions {
  /** Sizes as integer bytes (`-b, --bytes`) instead of KiB/MiB/…. */
  bytes?: boolean;
  /** How sizes are written without -b (default 'iec': `64 MiB`; 'compact': `64M`, for plain output). */
  sizes?: SizeStyle;
  /** Values for `-r`: blanks, backslash and non-ASCII escaped too (escapeRaw), instead of escapeText. */
  raw?: boolean;
  /** Cells of a plain table: blanks escaped as \x20 (escapeWord), so each cell is one word. */
  oneWord?: boolean;
}

/**
 * The text of a value, escaped: strings in records come from the machine (comm, user and cgroup
 * names), so every control character in them is written as \xNN here, the one way out to text.
 */
export function formatValue(kind: FieldKind, value: JsonValue, nullText = '-', options: FormatOptions = {}): string {
  const text = plainValue(kind, value, nullText, options);
  return options.raw ? escapeRaw(text) : options.oneWord ? escapeWord(text) : escapeText(text);
}

function plainValue(kind: FieldKind, value: JsonValue, nullText: string, options: FormatOptions): string {
  if (value === null || value === undefined) return nullText;
  switch (kind) {
    case 'bytes':
      return typeof value === 'number' ? (options.bytes ? String(value) : formatBytes(value, options.sizes)) : String(value);
    case 'micros':
      return typeof value === 'number' ? formatMicros(value) : String(value);
    case 'bool':
      return value ? 'yes' : 'no';
    case 'percent':
      return typeof value === 'number' ? `${value.toFixed(1)}%` : String(value);
    default:
      return Array.isArray(value) ? value.map((v) => (typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v))).join(',')
        : typeof value === 'object' ? JSON.stringify(value) : String(value);
  }
}

/** A duration in microseconds as one word: `850µs`, `1.2ms`, `3.4s`. */
export function formatMicros(micros: number): string {
  if (micros < 1000) return `${micros}µs`;
  if (micros < 1_000_000) return `${Math.round(micros / 100) / 10}ms`;
  return `${Math.round(micros / 100_000) / 10}s`;
}

/** The text of one field of one record in a table; an empty list prints like null, so no cell is blank. */
export function fieldText<R>(field: Field<R>, record: R, options: FormatOptions = {}): string {
  const value = field.get(record);
  const cellOptions = field.prose && options.oneWord ? { ...options, oneWord: false } : options;
  return formatValue(field.kind ?? 'text', Array.isArray(value) && value.length === 0 ? null : value, field.nullText, cellOptions);
}

export function toJson<R>(fields: readonly Field<R>[], record: R): { [key: string]: JsonValue } {
  const out: { [key: string]: JsonValue } = {};
  for (const field of fields) out[field.key] = field.get(record);
  return out;
}

/** The default text columns: every field not marked extra. */
export function defaultTextFields<R>(fields: readonly Field<R>[]): Field<R>[] {
  return fields.filter((f) => !f.extra);
}
