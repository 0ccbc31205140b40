// What the uprobe and kprobe sources share: the payload of a probe's trace_pipe line, and the
// per-thread pairing of entry and return probes. Pure.
//
// The kernel prints a probe's payload as `(SITE) NAME=VALUE ...` at entry and
// `(CALLER <- SITE) NAME=VALUE ...` at return, where SITE is `0x7f...` for a uprobe and
// `ib_umem_get+0x0/0x390 [ib_core]` for a kprobe (a module name puts a blank inside the parentheses).
// Values are `0x…` for the default x64 type and for pointers, decimal for `:u64`/`:u32`/`:s32`.
// Entry probes end with `comm="…"` ($comm): the header's comm comes from the kernel's small comm
// cache at read time and is `<...>` once the cache lost the task (a short-lived client, a busy
// machine); $comm is the task's name when the probe fired. It is printed raw, so it is last: the
// text between its opening quote and the line's final quote is the name, whatever it holds.

import { errnoName } from '../lib/errno.js';
import type { ProbeSpec, TracepointName } from './types.js';

export interface ProbePayload {
  /** The probed site (entry) or the function returned from (return), as printed. */
  readonly site: string;
  /** Where the function returned to; null at entry. */
  readonly caller: string | null;
  readonly args: ReadonlyMap<string, string>;
  /** The task's name from the trailing `comm="…"`; null when absent or cut by a newline in the name. */
  readonly comm: string | null;
}

/** The fetch argument that ends every entry probe: the name of the task that hit it. */
export const COMM_FETCHARG = 'comm=$comm';
const COMM_FIELD = ' comm="';

/** Split a probe payload; null when it does not look like one. */
export function parseProbePayload(payload: string): ProbePayload | null {
  if (!payload.startsWith('(')) return null;
  const close = payload.indexOf(')');
  if (close < 0) return null;
  const inside = payload.slice(1, close);
  const arrow = inside.indexOf(' <- ');
  // The first ` comm="` after the site is the fetch argument's: the arguments before it are numbers.
  const commAt = payload.indexOf(COMM_FIELD, close);
  const argText = commAt < 0 ? payload.slice(close + 1) : payload.slice(close + 1, commAt);
  const commText = commAt < 0 ? null : payload.slice(commAt + COMM_FIELD.length);
  const comm = commText !== null && commText.length > 1 && commText.endsWith('"') ? commText.slice(0, -1) : null;
  const args = new Map<string, string>();
  for (const m of argText.matchAll(/(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)=(\S*)/g)) args.set(m[1]!, m[2]!);
  return arrow < 0 ? { site: inside, caller: null, args, comm } : { site: inside.slice(arrow + 4), caller: inside.slice(0, arrow), args, comm };
}

/** An argument as an unsigned 64-bit integer (hex `0x…` or decimal), null when absent or `(fault)`. */
export function argU64(args: ReadonlyMap<string, string>, name: string): bigint | null {
  const text = args.get(name);
  if (text === undefined || !/^(0x[0-9a-fA-F]{1,16}|-?[0-9]{1,20})$/.test(text)) return null;
  const value = BigInt(text);
  return BigInt.asUintN(64, value);
}

/** An argument as a byte count or small number; null when absent, unreadable or beyond 2^53. */
export function argNumber(args: ReadonlyMap<string, string>, name: string): number | null {
  const value = argU64(args, name);
  return value === null || value > BigInt(Number.MAX_SAFE_INTEGER) ? null : Number(value);
}

/** An argument as a signed 64-bit integer (a return code). */
export function argS64(args: ReadonlyMap<string, string>, name: string): bigint | null {
  const value = argU64(args, name);
  return value === null ? null : BigInt.asIntN(64, value);
}

/** `0x…` text for a pointer, for the events' detail. */
export function hex(value: bigint): string {
  return `0x${value.toString(16)}`;
}

/**
 * The errno of a kernel ERR_PTR return (a pointer in [-4095, -1]); null for a real pointer.
 * NULL is not an ERR_PTR: callers decide what it means.
 */
export function errPtrErrno(pointer: bigint): string | null {
  const signed = BigInt.asIntN(64, pointer);
  return signed < 0n && signed >= -4095n ? errnoName(Number(-signed)) : null;
}

export interface CallFrame<E> {
  readonly function: string;
  /** Trace clock seconds at entry. */
  readonly time: number;
  readonly entry: E;
}

/** How deep one thread's open calls may go before the oldest is dropped (a lost return). */
const MAX_DEPTH = 16;
/** Threads with open calls remembered at once; beyond it the longest-idle thread is forgotten. */
const MAX_THREADS = 65_536;

/**
 * Entry and return probes paired per thread. One library call can hit several probes (ibv_reg_mr
 * tail-calls ibv_reg_mr_iova2; a header inline calls an export), and the kernel then fires the
 * returns innermost first at the one return. So calls nest per thread, and only the outermost
 * return makes an event: one call, one event. A return with no matching entry (the call began
 * before tracing) is dropped; entries left open by lost returns are dropped when a caller returns.
 */
export class CallStacks<E> {
  private readonly stacks = new Map<number, CallFrame<E>[]>();

  enter(tid: number, frame: CallFrame<E>): void {
    let stack = this.stacks.get(tid);
    if (stack) this.stacks.delete(tid); // re-insert: Map order is then least recently used first
    else stack = [];
    stack.push(frame);
    if (stack.length > MAX_DEPTH) stack.shift();
    this.stacks.set(tid, stack);
    if (this.stacks.size > MAX_THREADS) this.stacks.delete(this.stacks.keys().next().value!);
  }

  /**
   * The frame a return of `fn` closes, if it is the outermost open call of the thread; null when the
   * return is nested in another probed call (its outer call will make the event) or unmatched.
   */
  leave(tid: number, fn: string): CallFrame<E> | null {
    const stack = this.stacks.get(tid);
    if (!stack) return null;
    let at = stack.length - 1;
    while (at >= 0 && stack[at]!.function !== fn) at--;
    if (at < 0) return null;
    const frame = stack[at]!;
    stack.length = at;
    if (at > 0) return null;
    this.stacks.delete(tid);
    return frame;
  }

  /** Threads with open calls (for tests and for bounding memory). */
  get threads(): number {
    return this.stacks.size;
  }
}

/** Sets `key` in `map` as its newest entry, forgetting the oldest entry when the map holds more than `max`. */
export function setBounded<K, V>(map: Map<K, V>, key: K, value: V, max: number): void {
  map.delete(key);
  map.set(key, value);
  if (map.size > max) map.delete(map.keys().next().value!);
}

/** Nanoseconds between two trace clock readings in seconds (printed to the microsecond). */
export function elapsedNs(from: number, to: number): number {
  return Math.max(0, Math.round((to - from) * 1e9));
}

/** What a probe source plans at detect(): the probes to create and, by event name, what each one is. */
export interface ProbePlan {
  readonly probes: readonly ProbeSpec[];
  readonly events: ReadonlyMap<string, unknown>;
}

/** The part of a TraceSourceDriver that a probe source (verbs, umem) answers from its plan alone. */
export abstract class PlannedProbeSource<P extends ProbePlan> {
  constructor(protected plan: P) {}

  tracepoints(): readonly TracepointName[] {
    return [];
  }

  probes(): readonly ProbeSpec[] {
    return this.plan.probes;
  }

  owns(event: string): boolean {
    return this.plan.events.has(event);
  }
}
