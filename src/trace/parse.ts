// trace_pipe text → TraceLines. Pure: no I/O. The kernel prints each record as
//   `<comm right-aligned to 16>-<tid> (<tgid>) [<cpu>] <flags> <secs>.<usecs>: <event>: <payload>`
// (record-tgid on), and syscall tracepoints in their own shape: `sys_mlock(start: 0x…, len: 0x…)` on
// entry and `sys_mlock -> 0x0` on return. The comm is chosen by the traced process (up to 15 bytes,
// any byte but NUL): it may hold spaces, dashes, brackets, a fake header, even a newline. It cannot
// hold a whole forged header (that needs more than 15 bytes), so the first split of the line whose
// rest has the full header shape is the right one; a comm with a newline splits its record over
// two lines, which are joined again by their width. Lines of no known shape are counted, never
// passed on (nothing raw from trace_pipe reaches the output).

import { StringDecoder } from 'node:string_decoder';
import type { TraceLine } from './types.js';

/** Width the kernel pads the comm to (`%16s`): a shorter prefix means the comm held a newline. */
const COMM_FIELD_BYTES = 16;

const HEADER = /^(.*?)-(\d+)\s+\(\s*(\d+|-+)\)\s+\[(\d+)\]\s+(?:\S{4,6}\s+)?(\d+)\.(\d{6}):\s(.*)$/s;
const LOST = /^CPU:(\d+) \[LOST (\d+) EVENTS\]$/;
const GENERIC_EVENT = /^([A-Za-z0-9_.]+): (.*)$/s;
const SYSCALL_ENTER = /^sys_([a-z0-9_]+)\((.*)\)$/s;
const SYSCALL_EXIT = /^sys_([a-z0-9_]+) -> ((?:0x)?[0-9a-f]+)$/;

/** A parsed line and its comm field as printed (with padding). */
interface ParsedLine {
  readonly line: TraceLine;
  readonly prefix: string;
}

function parseWithPrefix(text: string): ParsedLine | null {
  const m = HEADER.exec(text);
  if (!m) return null;
  const event = splitEvent(m[7]!);
  if (!event) return null;
  const prefix = m[1]!;
  return {
    prefix,
    line: {
      comm: prefix.charCodeAt(0) === 32 ? prefix.replace(/^ +/, '') : prefix,
      tid: Number(m[2]),
      tgid: m[3]!.charCodeAt(0) === 45 ? null : Number(m[3]),
      cpu: Number(m[4]),
      time: Number(m[5]) + Number(m[6]) / 1e6,
      event: event.event,
      payload: event.payload,
    },
  };
}

/** One line split into its header and event, or null for any other shape. */
export function parseTraceLine(text: string): TraceLine | null {
  return parseWithPrefix(text)?.line ?? null;
}

/** Microseconds of a TraceLine's time, exactly (the kernel prints µs). */
export function timeMicros(time: number): number {
  return Math.round(time * 1e6);
}

/** `EVENT: payload`, `sys_X(args)` → sys_enter_X, `sys_X -> 0xRET` → sys_exit_X. */
export function splitEvent(text: string): { event: string; payload: string } | null {
  const exit = SYSCALL_EXIT.exec(text);
  if (exit) return { event: `sys_exit_${exit[1]}`, payload: exit[2]! };
  const enter = SYSCALL_ENTER.exec(text);
  if (enter) return { event: `sys_enter_${enter[1]}`, payload: enter[2]! };
  const generic = GENERIC_EVENT.exec(text);
  if (generic) return { event: generic[1]!, payload: generic[2]! };
  return null;
}

/**
 * `name: 0x…, other: 5` (syscall entry arguments) → values. Every value is hex: kernels up to 5.x
 * print `%lx` (no 0x), later ones `0x%lx`, and newer ones bare digits for values below 10 (where
 * hex and decimal agree). Other shapes are left out.
 */
export function parseSyscallArgs(payload: string): Map<string, bigint> {
  const out = new Map<string, bigint>();
  for (const part of payload.split(', ')) {
    const m = /^([a-z0-9_]+): (?:0x)?([0-9a-f]{1,16})$/.exec(part);
    if (m) out.set(m[1]!, BigInt(`0x${m[2]!}`));
  }
  return out;
}

/** A syscall return as printed (`0xfffffffffffffff4`) → signed value (-12). */
export function parseSyscallReturn(payload: string): bigint | null {
  const m = /^(?:0x)?([0-9a-f]{1,16})$/.exec(payload);
  return m ? BigInt.asIntN(64, BigInt(`0x${m[1]!}`)) : null;
}

/** `key=value key2=value2` payloads (sched_process_exit, probes) → values as text; a value ends at a blank. */
export function parseKeyValues(payload: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of payload.matchAll(/(?:^|\s)([A-Za-z0-9_]+)=(\S*)/g)) out.set(m[1]!, m[2]!);
  return out;
}

/**
 * The comm a sched_process_exit payload (`comm=NAME pid=N prio=N [group_dead=BOOL]`) carries: the
 * kernel copies it into the event when the task exits, unlike the line header's comm. A name may hold
 * blanks and even ` pid=`; the kernel's own fields are last, so the last match is theirs. Null when
 * the payload is not of that shape (a name with a newline splits the line).
 */
export function exitComm(payload: string): string | null {
  const m = /^comm=([^\n]*) pid=\d+ prio=-?\d+(?: group_dead=\w+)?$/.exec(payload);
  return m && m[1]!.length > 0 ? m[1]! : null;
}

export interface PipeBatch {
  lines: TraceLine[];
  /** Lines of no known shape in this batch (never printed). */
  unparsable: number;
  /** Events the kernel reported lost in this batch (`CPU:N [LOST M EVENTS]`). */
  lost: number;
}

/**
 * Splits a stream of trace_pipe reads into TraceLines. Keeps a partial last line for the next read,
 * and rejoins a record whose comm held a newline: its first part has no header (held back), its last
 * part a comm prefix narrower than the kernel's 16-byte field.
 */
export class TracePipeParser {
  private partial = '';
  /** A multi-byte character (a comm in UTF-8) may be split between two reads. */
  private readonly decoder = new StringDecoder('utf8');
  /** Lines without a header since the last good line: the heads of a comm with newlines, or junk. */
  private fragments: string[] = [];

  feed(chunk: Buffer | string): PipeBatch {
    const text = this.partial + (typeof chunk === 'string' ? chunk : this.decoder.write(chunk));
    const end = text.lastIndexOf('\n');
    this.partial = end < 0 ? text : text.slice(end + 1);
    const batch: PipeBatch = { lines: [], unparsable: 0, lost: 0 };
    if (end < 0) return batch;
    for (const raw of text.slice(0, end).split('\n')) this.line(raw, batch);
    return batch;
  }

  /** At the end of the stream: whatever is held back is unparsable. */
  flush(): PipeBatch {
    const batch: PipeBatch = { lines: [], unparsable: this.fragments.length + (this.partial === '' ? 0 : 1), lost: 0 };
    this.fragments = [];
    this.partial = '';
    return batch;
  }

  private line(raw: string, batch: PipeBatch): void {
    if (raw.startsWith('CPU:')) {
      const lost = LOST.exec(raw);
      if (lost) {
        batch.lost += Number(lost[2]);
        return;
      }
    }
    const parsed = parseWithPrefix(raw);
    if (parsed === null) {
      // An empty line is kept too: it is part of a comm holding two newlines in a row.
      this.fragments.push(raw);
      // Only the last few can belong to one comm (15 bytes hold at most 14 newlines and the rest).
      if (this.fragments.length > 15) {
        this.fragments.shift();
        batch.unparsable++;
      }
      return;
    }
    const { prefix, line } = parsed;
    // The comm field is at least 16 bytes wide; narrower (in characters, then in bytes) means a newline split it.
    if (prefix.length < COMM_FIELD_BYTES && Buffer.byteLength(prefix) < COMM_FIELD_BYTES) {
      let joined = prefix;
      for (let k = this.fragments.length - 1; k >= 0; k--) {
        joined = `${this.fragments[k]}\n${joined}`;
        const bytes = Buffer.byteLength(joined);
        if (bytes === COMM_FIELD_BYTES) {
          batch.unparsable += k;
          this.fragments = [];
          batch.lines.push({ ...line, comm: joined.replace(/^ +/, '') });
          return;
        }
        if (bytes > COMM_FIELD_BYTES) break;
      }
    }
    if (this.fragments.length > 0) {
      batch.unparsable += this.fragments.length;
      this.fragments = [];
    }
    batch.lines.push(line);
  }
}
