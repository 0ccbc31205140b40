// Output the util-linux / iproute2 way, written once for every command that prints records:
// -o/--output picks columns by JSON key (or label), +LIST adds to the defaults, --output-all,
// -H/--list-columns, -n/--noheadings, -r/--raw, -b/--bytes; box-drawn tables only on a terminal,
// plain space-aligned columns otherwise; every JSON document starts with "host" and "schema".
// A command registers the options with addOutputOptions() and prints through the OutputView that
// outputView() builds from its flags; the values themselves come from its field list (fields.ts).

import { createRequire } from 'node:module';
import { hostname } from 'node:os';
import { CommanderError, InvalidArgumentError, type Command, type Option } from 'commander';
import type TableType from 'cli-table3';
import { printJson, printJsonLine, type Context } from './context.js';
import { UsageError } from './errors.js';
import { escapeRaw, escapeText } from './escape.js';
import { defaultTextFields, fieldText, toJson, type Field, type FieldKind, type FormatOptions, type JsonValue } from './fields.js';

export interface OutputFlags {
  output?: string;
  outputAll?: boolean;
  listColumns?: boolean;
  noheadings?: boolean;
  raw?: boolean;
  bytes?: boolean;
  json?: boolean;
}

/** How text is laid out. */
export interface TextStyle {
  /**
   * Box-drawn table (stdout is a terminal and not --raw), sizes as `64 MiB`; else plain
   * space-aligned columns with one word per cell (sizes as `64M`), for column -t and awk.
   */
  boxed: boolean;
  /** Header line / row labels (not with -n). */
  headings: boolean;
  /** One record per line, single-space separated, values escaped (-r). */
  raw: boolean;
  /** Sizes as integer bytes (-b). */
  bytes: boolean;
}

export { escapeRaw };

// ---- JSON documents --------------------------------------------------------------------------

/** The schema id of a document: `rdmactl.NAME/1`; described by schema/NAME.json. */
export function schemaId(name: string): string {
  return `rdmactl.${name}/1`;
}

/** A JSON document: "host" and "schema" first, so NDJSON from many nodes can be merged and told apart. */
export function jsonDocument(name: string, body: { [key: string]: unknown }): { [key: string]: unknown } {
  return { host: hostName(), schema: schemaId(name), ...body };
}

let cachedHostName: { name: string; at: number } | null = null;

/**
 * os.hostname() is a uname(2) each time (two per call here), which a stream of documents pays per
 * line (trace at 1,000 events/s); the name is read again after a second, so a renamed host shows.
 */
function hostName(now = Date.now()): string {
  if (cachedHostName === null || now - cachedHostName.at >= 1000) cachedHostName = { name: hostname(), at: now };
  return cachedHostName.name;
}

// ---- Column selection ------------------------------------------------------------------------

function columnList<R>(fields: readonly Field<R>[]): string {
  return fields.map((f) => f.key).join(', ');
}

function findField<R>(fields: readonly Field<R>[], name: string): Field<R> | undefined {
  const wanted = name.toLowerCase();
  return fields.find((f) => f.key.toLowerCase() === wanted)
    ?? fields.find((f) => f.label.toLowerCase() === wanted || f.title?.toLowerCase() === wanted);
}

/**
 * The fields to print. `defaults` is what prints without -o (text: the default columns; JSON: every
 * key). `-o LIST` replaces it, `-o +LIST` appends to it, `--output-all` is every field. Throws
 * UsageError for an unknown column, naming the valid ones.
 */
export function selectFields<R>(fields: readonly Field<R>[], flags: Pick<OutputFlags, 'output' | 'outputAll'>, defaults: readonly Field<R>[]): Field<R>[] {
  if (flags.outputAll && flags.output !== undefined) throw new UsageError('give -o/--output or --output-all, not both');
  if (flags.outputAll) return [...fields];
  if (flags.output === undefined) return [...defaults];
  const text = flags.output.trim();
  const append = text.startsWith('+');
  const names = (append ? text.slice(1) : text).split(',').map((s) => s.trim()).filter(Boolean);
  if (names.length === 0) throw new UsageError(`invalid --output '${flags.output}': give a comma list of columns: ${columnList(fields)}`);
  const chosen: Field<R>[] = append ? [...defaults] : [];
  for (const name of names) {
    const field = findField(fields, name);
    if (!field) throw new UsageError(`unknown column '${name}' for --output: valid columns are ${columnList(fields)}`);
    if (!chosen.includes(field)) chosen.push(field);
  }
  return chosen;
}

// ---- Text rendering --------------------------------------------------------------------------

// cli-table3 is loaded on first render: JSON output and --version never pay for it.
let tableClass: typeof TableType | undefined;
function Table(options: TableType.TableConstructorOptions): InstanceType<typeof TableType> {
  tableClass ??= createRequire(import.meta.url)('cli-table3') as typeof TableType;
  return new tableClass(options);
}

// No colours at all: output stays the same with or without NO_COLOR, on a terminal or not.
const NO_COLOUR = { head: [] as string[], border: [] as string[] };

/** Borderless: columns separated by `gap` spaces, like ps and lsblk. */
function plainChars(gap: string): Partial<Record<TableType.CharName, string>> {
  return {
    top: '', 'top-mid': '', 'top-left': '', 'top-right': '', bottom: '', 'bottom-mid': '', 'bottom-left': '', 'bottom-right': '',
    left: '', 'left-mid': '', mid: '', 'mid-mid': '', right: '', 'right-mid': '', middle: gap,
  };
}

function tableOptions(style: TextStyle, gap = ' '): TableType.TableConstructorOptions {
  return style.boxed
    ? { style: { ...NO_COLOUR, compact: true } }
    : { chars: plainChars(gap), style: { ...NO_COLOUR, compact: true, 'padding-left': 0, 'padding-right': 0 } };
}

/** Plain tables pad every cell to its column's width: drop the padding at the end of each line. */
function trimLines(text: string): string {
  return text.split('\n').map((line) => line.trimEnd()).join('\n');
}

const NUMERIC: ReadonlySet<FieldKind> = new Set(['bytes', 'count', 'micros', 'percent']);

// Typed as string: cli-table3 accepts cell objects in `head` too, but its types say string[].
function cell(content: string, kind: FieldKind | undefined): string {
  return (NUMERIC.has(kind ?? 'text') ? { content, hAlign: 'right' } : content) as string;
}

/** How values are written in this style: one-word sizes (`64M`) outside a terminal's boxes. */
function formatOptions(style: TextStyle): FormatOptions {
  return { bytes: style.bytes, raw: style.raw, sizes: style.boxed ? 'iec' : 'compact', oneWord: !style.boxed };
}

/** One row per record. Empty string when there is nothing to print (no records and no header). */
export function renderTable<R>(fields: readonly Field<R>[], records: readonly R[], style: TextStyle): string {
  if (style.raw) {
    const lines = style.headings ? [fields.map((f) => escapeRaw(f.label)).join(' ')] : [];
    for (const record of records) lines.push(fields.map((f) => fieldText(f, record, formatOptions(style))).join(' '));
    return lines.join('\n');
  }
  if (!style.headings && records.length === 0) return '';
  // Wrapping only in boxes: plain output (pipes, files) keeps one record per line for awk and grep.
  const wrapping = style.boxed && fields.some((f) => f.wrapAt !== undefined)
    ? { colWidths: fields.map((f) => (f.wrapAt === undefined ? null : f.wrapAt + 2)), wordWrap: true }
    : {};
  const table = Table({ ...tableOptions(style), ...wrapping, ...(style.headings ? { head: fields.map((f) => cell(f.label, f.kind)) as string[] } : {}) });
  for (const record of records) table.push(fields.map((f) => cell(fieldText(f, record, formatOptions(style)), f.kind)));
  return style.boxed ? table.toString() : trimLines(table.toString());
}

/** One record as label/value rows (fields whose showIf fails are left out). */
export function renderRecord<R>(fields: readonly Field<R>[], record: R, style: TextStyle): string {
  const table = Table(tableOptions(style, '  '));
  for (const field of fields) {
    if (field.showIf && !field.showIf(record)) continue;
    // Label/value rows are read by people: sizes as in tables, values as they are.
    table.push({ [field.title ?? field.label]: fieldText(field, record, { ...formatOptions(style), oneWord: false }) });
  }
  return style.boxed ? table.toString() : trimLines(table.toString());
}

// ---- Options ---------------------------------------------------------------------------------

export interface OutputSpec<R> {
  /** Document name: JSON "schema" is rdmactl.NAME/1; -H --json prints it as "command". */
  name: string;
  /** The records -o selects from. */
  fields: readonly Field<R>[];
  /** Its JSON documents are events of a stream: one line each, even on a terminal (`reg`). */
  jsonLines?: boolean;
}

interface OptionWithFlags {
  short?: string;
  long?: string;
}

// The spec each command registered its output options with, so its columns can be read from the
// command itself (shell completion of -o) without running it.
const registeredSpecs = new WeakMap<Command, OutputSpec<never>>();

/**
 * Register -o/--output, --output-all, -H/--list-columns, -n/--noheadings, -r/--raw, -b/--bytes on
 * `command` (call it after the command's own options). Where the command already uses a short
 * letter, it keeps its meaning and only the long form is offered. -H prints the columns and ends
 * the command before its arguments are checked or it does any work; -o is checked before the
 * action runs, so a typo never costs a registration or a fork matrix.
 */
export function addOutputOptions<R>(command: Command, ctx: Context, spec: OutputSpec<R>): Command {
  registeredSpecs.set(command, spec);
  const taken = new Map<string, string>();
  for (const option of command.options as readonly OptionWithFlags[]) if (option.short) taken.set(option.short, option.long ?? option.short);
  /** How the user spells the option on this command: -x, or the long form where x is taken. */
  const spelled = (letter: string, long: string): string => (taken.has(`-${letter}`) ? long.split(' ')[0]! : `-${letter}`);
  const flag = (letter: string, long: string, description: string): void => {
    const owner = taken.get(`-${letter}`);
    command.option(owner ? long : `-${letter}, ${long}`, owner ? `${description} (no -${letter}: here it is ${owner})` : description);
    if (owner) explainTakenLetter(command, `-${letter}`, long.split(' ')[0]!);
  };
  flag('o', '--output <list>', 'columns to print, by JSON key or label, comma-separated; +LIST adds to the defaults; also picks the --json keys (see -H)');
  command.option('--output-all', 'print every column');
  flag('H', '--list-columns', 'list the columns (key, label, default, description) and exit; with --json as JSON');
  flag('n', '--noheadings', 'no header line, and only the records (no totals, notes or explanations)');
  flag('r', '--raw', 'one record per line, values separated by one space (blanks escaped as \\x20), no totals or notes');
  flag('b', '--bytes', 'print sizes as integer bytes');

  // -H must work without the command's required arguments (`rdmactl reg -H`): commander checks them
  // after parsing options and before preAction, through this method.
  const withArgs = command as unknown as { missingArgument(name: string): void };
  const missingArgument = withArgs.missingArgument.bind(command);
  withArgs.missingArgument = (name) => {
    if (command.getOptionValue('listColumns') !== true) missingArgument(name);
  };
  command.hook('preAction', (hooked) => {
    const flags = hooked.opts<OutputFlags>();
    if (flags.listColumns) {
      printColumns(ctx, spec, flags);
      throw new CommanderError(0, 'commander.helpDisplayed', '(columns listed)');
    }
    outputView(ctx, spec, flags); // validates -o and the combinations before any work
  });
  command.addHelpText('after', `
Output: without a terminal on stdout, tables are plain columns separated by spaces (no box characters);
-o KEYS picks columns (rdmactl ${command.name()} -H lists them); -r ${spelled('n', '--noheadings')} ${spelled('b', '--bytes')} prints bare records for awk and cut.`);
  return command;
}

/**
 * `reg -rn --bytes`: -n is reg's --count, so "--bytes" became its value and the error named only
 * --count. When the option that owns a letter rejects its value, or has none (`reg 1M -rn` at the
 * end of the line), the error says which option the letter is here and how to spell the output
 * option instead. An owner whose value is checked only in the action gets no hint: check it in its
 * argParser (as fork --backend does).
 */
function explainTakenLetter(command: Command, letter: string, outputLong: string): void {
  const owner = (command.options as readonly Option[]).find((option) => option.short === letter);
  if (!owner || !(owner.required || owner.optional)) return;
  const parse = owner.parseArg;
  const explain = (message: string): string => `${message} (here ${letter} is ${owner.long ?? letter}; the output option is ${outputLong})`;
  // Commander reports a missing option value through this method (after printing nothing yet); a
  // UsageError instead makes it one line, as for a rejected value. Wrapping what is there keeps the
  // wrapper of another taken letter of the same command.
  const withMissing = command as unknown as { optionMissingArgument(option: Option): void };
  const optionMissingArgument = withMissing.optionMissingArgument.bind(command);
  withMissing.optionMissingArgument = (option) => {
    if (option === owner) throw new UsageError(explain(`option '${option.flags}' argument missing`));
    optionMissingArgument(option);
  };
  owner.parseArg = <T>(value: string, previous: T): T => {
    try {
      return (parse ? parse(value, previous) : value) as T;
    } catch (err) {
      if (err instanceof UsageError) throw new UsageError(explain(err.message), err.hints);
      if (err instanceof InvalidArgumentError) throw new InvalidArgumentError(explain(err.message));
      throw err;
    }
  };
}

export interface ColumnInfo {
  key: string;
  label: string;
  description: string;
  default: boolean;
}

const COLUMN_FIELDS: readonly Field<ColumnInfo>[] = [
  { key: 'key', label: 'KEY', description: 'name for -o and the JSON key', get: (c) => c.key },
  { key: 'label', label: 'LABEL', description: 'header in text output (also accepted by -o)', get: (c) => c.label },
  { key: 'default', label: 'DEFAULT', description: 'printed without -o', kind: 'bool', get: (c) => c.default },
  { key: 'description', label: 'DESCRIPTION', description: 'what the value is', get: (c) => c.description },
];

export function columnInfo<R>(fields: readonly Field<R>[]): ColumnInfo[] {
  return fields.map((f) => ({ key: f.key, label: f.label, description: f.description, default: !f.extra }));
}

/** The columns `command` lists with -H (its OutputSpec's fields); null when it has no output options. */
export function columnsOf(command: Command): ColumnInfo[] | null {
  const spec = registeredSpecs.get(command);
  return spec ? columnInfo(spec.fields) : null;
}

function printColumns<R>(ctx: Context, spec: OutputSpec<R>, flags: OutputFlags): void {
  const columns = columnInfo(spec.fields);
  if (flags.json) {
    printJson(ctx, jsonDocument('columns', { command: spec.name, columns }));
    return;
  }
  const style = textStyle(ctx, flags);
  ctx.stdout.write(`${renderTable(COLUMN_FIELDS, columns, style)}\n`);
  if (style.headings && !style.raw) {
    ctx.stdout.write(`Columns marked no print with -o KEY,… or -o +KEY (added to the defaults) or --output-all; --json has every key unless -o is given.\n`);
  }
}

// ---- The view a command prints through ------------------------------------------------------

function textStyle(ctx: Context, flags: OutputFlags): TextStyle {
  const raw = flags.raw ?? false;
  return { boxed: ctx.stdoutIsTty && !raw, headings: !flags.noheadings, raw, bytes: flags.bytes ?? false };
}

export interface OutputView<R> {
  readonly json: boolean;
  /** -n or -r: print the records only, no totals, notes or explanations. */
  readonly recordsOnly: boolean;
  readonly style: TextStyle;
  /** The chosen fields (text: the default columns unless -o/--output-all; JSON: every key unless -o). */
  readonly fields: readonly Field<R>[];
  /** Whether -o/--output-all chose the fields. */
  readonly chosen: boolean;
  /** A record as JSON, chosen keys only. */
  record(record: R): { [key: string]: JsonValue };
  /** Print a JSON document of this command's schema ('line': on one line even on a terminal, as a stream's). */
  printDocument(body: { [key: string]: unknown }, form?: 'line'): void;
  /** Print the records as a table (nothing at all for no records with -n or -r). */
  printTable(records: readonly R[]): void;
  /** Print one record: label/value rows, or a one-line table with -n or -r. */
  printRecord(record: R): void;
  /** A secondary table (totals, ports): same style, its default columns; not printed with -n or -r. */
  printOther<T>(fields: readonly Field<T>[], records: readonly T[]): void;
  /** A secondary record, like printOther; `bare` also prints it with -n/-r, as a one-line table. */
  printOtherRecord<T>(fields: readonly Field<T>[], record: T, bare?: 'bare'): void;
  /**
   * Words for people (e.g. "No registrations found."): on stdout only on a terminal; in a pipe or a
   * file, stdout carries records alone and this goes to stderr. Not printed with -n or -r.
   */
  prose(text: string): void;
  /** A warning or a note ("2 processes only partly readable"): always stderr, never inside a table. */
  warn(text: string): void;
}

export function outputView<R>(ctx: Context, spec: OutputSpec<R>, flags: OutputFlags): OutputView<R> {
  const json = flags.json ?? false;
  if (json && flags.raw) throw new UsageError('choose one of --json and --raw');
  const fields = selectFields(spec.fields, flags, json ? spec.fields : defaultTextFields(spec.fields));
  const chosen = flags.output !== undefined || (flags.outputAll ?? false);
  const style = textStyle(ctx, flags);
  const recordsOnly = style.raw || !style.headings;
  const write = (text: string): void => {
    if (text !== '') ctx.stdout.write(`${text}\n`);
  };
  return {
    json,
    recordsOnly,
    style,
    fields,
    chosen,
    record: (record) => toJson(fields, record),
    printDocument: (body, form) => (spec.jsonLines || form === 'line' ? printJsonLine : printJson)(ctx, jsonDocument(spec.name, body)),
    printTable: (records) => write(renderTable(fields, records, style)),
    printRecord: (record) => {
      if (recordsOnly) write(renderTable(fields, [record], style));
      // An explicitly chosen field is shown even where showIf would hide it.
      else write(renderRecord(chosen ? fields.map(({ showIf: _hidden, ...field }) => field) : fields, record, style));
    },
    printOther: (otherFields, records) => {
      if (!recordsOnly) write(renderTable(defaultTextFields(otherFields), records, style));
    },
    printOtherRecord: (otherFields, record, bare) => {
      if (!recordsOnly) write(renderRecord(defaultTextFields(otherFields), record, style));
      else if (bare) write(renderTable(defaultTextFields(otherFields), [record], style));
    },
    // Prose may quote a machine string (a reason, a name): no control character gets through.
    prose: (text) => {
      if (recordsOnly) return;
      if (ctx.stdoutIsTty) ctx.stdout.write(`${escapeText(text, 'lines')}\n`);
      else ctx.stderr.write(`rdmactl: ${escapeText(text, 'lines')}\n`);
    },
    warn: (text) => ctx.stderr.write(`rdmactl: ${escapeText(text, 'lines')}\n`),
  };
}

/** What `print` writes through a view, as a string (for text made in one process and printed by another). */
export function captureOutput(ctx: Context, print: (capturing: Context) => void): string {
  let text = '';
  print({ ...ctx, stdout: { write: (chunk) => { text += chunk; } } });
  return text.replace(/\n$/, '');
}
