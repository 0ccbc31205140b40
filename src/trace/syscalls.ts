// The two sources built on syscall tracepoints, which every kernel with CONFIG_FTRACE_SYSCALLS has:
//   io_uring  io_uring_register(2) buffer registration: REGISTER_BUFFERS (0), UNREGISTER_BUFFERS (1),
//             REGISTER_BUFFERS2 (15), REGISTER_BUFFERS_UPDATE (16). The tracepoints carry only the
//             arguments, so the sizes come from the iovec array in the caller's memory (read through
//             /proc/PID/mem when the entry is handled; null when it cannot be read). Each ring's
//             slots are remembered, so an unregister, an update or the process's exit releases
//             exactly what that ring (pid, fd) registered while we watched.
//   mlock     mlock/mlock2/munlock/mlockall/munlockall.
// Entry and return are paired per thread (a thread is in one syscall at a time) for the latency.

import { closeSync, constants, openSync, readSync } from 'node:fs';
import { procPath } from '../proc/procfs.js';
import { readProcessEnded } from '../proc/stat.js';
import { EXIT_TRACEPOINT, tracefsAccessReason } from './tracefs.js';
import { errnoName } from '../lib/errno.js';
import { parseKeyValues, parseSyscallArgs, parseSyscallReturn, timeMicros } from './parse.js';
import { UNKNOWN_COMM, type SourceAvailability, type TraceAttempt, type TraceEvent, type TraceLine, type TracefsFacts, type TraceOp, type TracepointName, type TraceSourceDriver, type TraceSourceName } from './types.js';

export const IORING_REGISTER_BUFFERS = 0;
export const IORING_UNREGISTER_BUFFERS = 1;
export const IORING_REGISTER_BUFFERS2 = 15;
export const IORING_REGISTER_BUFFERS_UPDATE = 16;
/** The kernel's own limit on buffers per ring (IORING_MAX_REG_BUFFERS): also our read cap. */
export const MAX_IOVECS = 16384;
const IOVEC_BYTES = 16;

/** Reads `length` bytes at `addr` of process `pid`; null when it cannot (gone, unmapped, no permission). */
export type MemoryReader = (pid: number, addr: bigint, length: number) => Buffer | null;

/** Open /proc/PID/mem files kept for the processes seen registering most recently. */
const MAX_OPEN_MEM_FILES = 16;

/**
 * pread on /proc/PID/mem, capped. Opening that file costs more than reading it (tens of µs: the
 * ptrace access check), so the fds of the last few processes stay open until the process exits
 * (forget), the cache is full, or the run ends (close). A read that fails closes the fd: the next
 * one reopens, so a pid reused after an unseen exit is read afresh.
 */
export class ProcMemReader {
  private readonly fds = new Map<number, number>();

  read(pid: number, addr: bigint, length: number): Buffer | null {
    if (length <= 0 || length > MAX_IOVECS * IOVEC_BYTES || addr === 0n) return null;
    for (let attempt = 0; attempt < 2; attempt++) {
      const fd = this.open(pid);
      if (fd === null) return null;
      try {
        const buffer = Buffer.alloc(length);
        if (readSync(fd, buffer, 0, length, addr) === length) return buffer;
      } catch {
        // unmapped, or the process is gone: retry once with a fresh fd
      }
      this.forget(pid);
    }
    return null;
  }

  private open(pid: number): number | null {
    const cached = this.fds.get(pid);
    if (cached !== undefined) return cached;
    let fd: number;
    try {
      fd = openSync(procPath(pid, 'mem'), constants.O_RDONLY);
    } catch {
      return null;
    }
    if (this.fds.size >= MAX_OPEN_MEM_FILES) this.forget(this.fds.keys().next().value!);
    this.fds.set(pid, fd);
    return fd;
  }

  forget(pid: number): void {
    const fd = this.fds.get(pid);
    if (fd === undefined) return;
    this.fds.delete(pid);
    try {
      closeSync(fd);
    } catch {
      // already closed
    }
  }

  close(): void {
    for (const pid of [...this.fds.keys()]) this.forget(pid);
  }
}

/** The lengths of `count` iovecs at `addr` (struct iovec: base u64, len u64); null when unreadable. */
export function iovecLengths(read: MemoryReader, pid: number, addr: bigint, count: number): number[] | null {
  if (count < 0 || count > MAX_IOVECS) return null;
  if (count === 0) return [];
  const bytes = read(pid, addr, count * IOVEC_BYTES);
  if (bytes === null) return null;
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    const base = bytes.readBigUInt64LE(i * IOVEC_BYTES);
    const len = bytes.readBigUInt64LE(i * IOVEC_BYTES + 8);
    // A NULL base with length 0 is an empty (sparse) slot.
    out.push(base === 0n ? 0 : Number(len));
  }
  return out;
}

function sum(values: readonly (number | null)[]): number | null {
  let total = 0;
  for (const v of values) {
    if (v === null) return null;
    total += v;
  }
  return total;
}

interface EventBase {
  line: TraceLine;
  source: TraceSourceName;
}

function makeEvent(base: EventBase, fields: { op: TraceOp; attempt: TraceAttempt; bytes: number | null; latencyNs: number | null; errno: string | null; detail: Record<string, string | number | null> }): TraceEvent {
  const { line } = base;
  return {
    time: line.time,
    pid: line.tgid ?? line.tid,
    tid: line.tid,
    comm: line.comm,
    source: base.source,
    ...fields,
  };
}

function latencyNs(enterTime: number, exitTime: number): number {
  return (timeMicros(exitTime) - timeMicros(enterTime)) * 1000;
}

function missingReason(facts: TracefsFacts, needed: readonly string[]): string | null {
  const access = tracefsAccessReason(facts);
  if (access) return access;
  const missing = needed.filter((e) => !facts.availableEvents.has(e));
  if (missing.length > 0) return `the kernel has no tracepoint ${missing.join(', ')} (CONFIG_FTRACE_SYSCALLS)`;
  return null;
}

// ---- io_uring -------------------------------------------------------------------------------

interface UringEntry {
  time: number;
  fd: number;
  opcode: number;
  /** Buffer sizes of a register or an update; null when unreadable. */
  sizes: (number | null)[] | null;
  /** Slot offset of an update. */
  offset: number;
  /** nr_args: the iovec count of REGISTER_BUFFERS. */
  nrArgs: number | null;
}

const URING_OPCODES = new Set([IORING_REGISTER_BUFFERS, IORING_UNREGISTER_BUFFERS, IORING_REGISTER_BUFFERS2, IORING_REGISTER_BUFFERS_UPDATE]);

export class UringSource implements TraceSourceDriver {
  readonly name = 'io_uring' as const;
  private readonly read: MemoryReader;
  private readonly ended: (pid: number) => boolean;
  private readonly memory: ProcMemReader | null;
  private readonly pending = new Map<number, UringEntry>();
  /** Slot sizes of each ring seen registering, by `pid:fd`. */
  private readonly rings = new Map<string, (number | null)[]>();
  /** A whole-process exit seen in this batch that named no process holding rings for sure. */
  private unattributedExit: TraceLine | null = null;
  /** Each ring owner's comm when it registered (an exit line may name another thread, or `<...>`). */
  private readonly ownerComm = new Map<number, string>();

  /**
   * `read`: where the iovec arrays are read from; default /proc/PID/mem. `ended`: whether a pid's
   * process has ended; default /proc (readProcessEnded).
   */
  constructor(read?: MemoryReader, ended?: (pid: number) => boolean) {
    this.memory = read ? null : new ProcMemReader();
    this.read = read ?? ((pid, addr, length) => this.memory!.read(pid, addr, length));
    this.ended = ended ?? readProcessEnded;
  }

  /** Closes the /proc/PID/mem files kept open; the session calls it when the run ends. */
  [Symbol.dispose](): void {
    this.memory?.close();
  }

  static readonly REQUIRED: readonly TracepointName[] = ['syscalls/sys_enter_io_uring_register', 'syscalls/sys_exit_io_uring_register'];

  detect(facts: TracefsFacts): SourceAvailability {
    const why = missingReason(facts, UringSource.REQUIRED);
    // io_uring:io_uring_register adds only the ring's hashed address and a count to what the syscall
    // tracepoints give: not enabled, which saves a third of the records under load. Process exits
    // (which release a ring's buffers) are enabled by the session, for every source.
    if (why) return { source: this.name, available: false, why };
    const exits = facts.availableEvents.has(EXIT_TRACEPOINT) ? '' : '; no sched_process_exit: exits are not seen';
    return { source: this.name, available: true, why: `syscall tracepoints of io_uring_register${exits}` };
  }

  tracepoints(): readonly TracepointName[] {
    return UringSource.REQUIRED;
  }

  /** Kernel-side filter (events/…/filter): only the buffer opcodes, so other io_uring users cost no record. */
  filters(): Partial<Record<TracepointName, string>> {
    const opcodes = [...URING_OPCODES].map((op) => `opcode == ${op}`).join(' || ');
    return { 'syscalls/sys_enter_io_uring_register': opcodes };
  }

  probes(): readonly [] {
    return [];
  }

  private static readonly EVENTS: ReadonlySet<string> = new Set(['sys_enter_io_uring_register', 'sys_exit_io_uring_register', 'sched_process_exit']);

  owns(event: string): boolean {
    return UringSource.EVENTS.has(event);
  }

  /** Bytes each ring seen registering still holds, for tests and the exit path. */
  outstanding(pid: number): number {
    let total = 0;
    for (const [key, slots] of this.rings) if (key.startsWith(`${pid}:`)) total += sum(slots) ?? 0;
    return total;
  }

  handle(line: TraceLine): readonly TraceEvent[] {
    switch (line.event) {
      case 'sys_enter_io_uring_register': return this.enter(line);
      case 'sys_exit_io_uring_register': return this.exit(line);
      case 'sched_process_exit': return this.processExit(line);
      default: return [];
    }
  }

  private enter(line: TraceLine): TraceEvent[] {
    const args = parseSyscallArgs(line.payload);
    const opcode = Number(args.get('opcode') ?? -1n);
    if (!URING_OPCODES.has(opcode)) {
      this.pending.delete(line.tid);
      return [];
    }
    const pid = line.tgid ?? line.tid;
    const arg = args.get('arg') ?? 0n;
    const nrArgs = Number(args.get('nr_args') ?? 0n);
    let sizes: (number | null)[] | null = null;
    let offset = 0;
    if (opcode === IORING_REGISTER_BUFFERS) {
      sizes = iovecLengths(this.read, pid, arg, nrArgs);
    } else if (opcode === IORING_REGISTER_BUFFERS2 || opcode === IORING_REGISTER_BUFFERS_UPDATE) {
      // struct io_uring_rsrc_register { u32 nr; u32 flags; u64 resv2; u64 data; u64 tags; }
      // struct io_uring_rsrc_update2 { u32 offset; u32 resv; u64 data; u64 tags; u32 nr; u32 resv2; }
      const struct = this.read(pid, arg, 32);
      if (struct !== null) {
        const update = opcode === IORING_REGISTER_BUFFERS_UPDATE;
        const nr = update ? struct.readUInt32LE(24) : struct.readUInt32LE(0);
        const data = struct.readBigUInt64LE(update ? 8 : 16);
        offset = update ? struct.readUInt32LE(0) : 0;
        // REGISTER_BUFFERS2 with no data registers `nr` empty slots.
        sizes = data === 0n ? new Array<number>(nr).fill(0) : iovecLengths(this.read, pid, data, nr);
      }
    }
    this.pending.set(line.tid, { time: line.time, fd: Number(args.get('fd') ?? -1n), opcode, sizes, offset, nrArgs: opcode === IORING_REGISTER_BUFFERS ? nrArgs : null });
    return [];
  }

  private exit(line: TraceLine): TraceEvent[] {
    const entry = this.pending.get(line.tid);
    if (!entry) return []; // entered before tracing started: neither the opcode nor the sizes are known
    this.pending.delete(line.tid);
    const ret = parseSyscallReturn(line.payload);
    const pid = line.tgid ?? line.tid;
    const key = `${pid}:${entry.fd}`;
    const base = { line, source: this.name };
    const latency = latencyNs(entry.time, line.time);
    const detail: Record<string, string | number | null> = {
      fd: entry.fd, opcode: entry.opcode, nrBufs: entry.sizes?.length ?? entry.nrArgs,
    };
    const known = this.rings.get(key);
    const failed = ret === null || ret < 0n;
    const errno = failed ? (ret === null ? 'EINVAL' : errnoName(Number(-ret))) : null;
    if (entry.opcode === IORING_UNREGISTER_BUFFERS) {
      const bytes = known ? sum(known) : null;
      if (failed) return [makeEvent(base, { op: 'failed', attempt: 'deregister', bytes, latencyNs: latency, errno, detail })];
      this.rings.delete(key);
      if (!this.holdsRings(pid)) this.ownerComm.delete(pid);
      return [makeEvent(base, { op: 'deregister', attempt: 'deregister', bytes, latencyNs: latency, errno: null, detail })];
    }
    const bytes = entry.sizes === null ? null : sum(entry.sizes);
    if (failed) return [makeEvent(base, { op: 'failed', attempt: 'register', bytes, latencyNs: latency, errno, detail })];
    if (entry.opcode === IORING_REGISTER_BUFFERS_UPDATE) {
      // ret is how many slots were updated; each releases what it held and takes the new buffer.
      const updated = Number(ret);
      const slots = known ?? [];
      const taken = entry.sizes?.slice(0, updated) ?? null;
      const released: (number | null)[] = [];
      for (let i = 0; i < updated; i++) {
        released.push(known ? (slots[entry.offset + i] ?? 0) : null);
        slots[entry.offset + i] = taken?.[i] ?? null;
      }
      if (known) this.rings.set(key, slots);
      const out: TraceEvent[] = [];
      const releasedBytes = sum(released);
      if (releasedBytes !== 0) out.push(makeEvent(base, { op: 'deregister', attempt: 'deregister', bytes: releasedBytes, latencyNs: latency, errno: null, detail: { ...detail, reason: 'update' } }));
      const takenBytes = taken === null ? null : sum(taken);
      if (takenBytes !== 0) out.push(makeEvent(base, { op: 'register', attempt: 'register', bytes: takenBytes, latencyNs: latency, errno: null, detail: { ...detail, reason: 'update' } }));
      return out;
    }
    this.rings.set(key, entry.sizes ?? [null]);
    if (line.comm !== UNKNOWN_COMM) this.ownerComm.set(pid, line.comm);
    return [makeEvent(base, { op: 'register', attempt: 'register', bytes, latencyNs: latency, errno: null, detail })];
  }

  private processExit(line: TraceLine): TraceEvent[] {
    const fields = parseKeyValues(line.payload);
    const groupDead = fields.get('group_dead');
    const pid = line.tgid ?? line.tid;
    this.pending.delete(line.tid);
    // Older kernels print no group_dead: the thread group leader's exit stands for the process.
    if (groupDead === undefined ? line.tid !== pid : groupDead !== 'true') return [];
    this.memory?.forget(pid);
    if (this.rings.size === 0) return [];
    const named = line.tgid;
    if (named !== null && this.holdsRings(named) && (line.tid === named || this.ended(named))) return this.releaseAtExit(named, line);
    // No process holding rings is named for sure: the tgid is unknown (`-------`), or the kernel's
    // column is stale (the exiting thread was gone before /proc could be asked, and its number
    // belonged to another process before), or the named process is still finishing. Each process
    // holding rings is asked after this batch.
    this.unattributedExit ??= line;
    return [];
  }

  /** After a batch: the processes holding rings that ended with an exit that did not name them. */
  flush(): TraceEvent[] {
    const exit = this.unattributedExit;
    if (exit === null) return [];
    this.unattributedExit = null;
    return [...this.ringOwners()].filter((owner) => this.ended(owner)).flatMap((owner) => this.releaseAtExit(owner, exit));
  }

  private ringOwners(): Set<number> {
    return new Set([...this.rings.keys()].map(ringOwner));
  }

  private holdsRings(pid: number): boolean {
    for (const key of this.rings.keys()) if (ringOwner(key) === pid) return true;
    return false;
  }

  /** Every ring of `pid` releases what it held: the process's exit closed them. */
  private releaseAtExit(pid: number, exit: TraceLine): TraceEvent[] {
    this.memory?.forget(pid);
    const line = { ...exit, tgid: pid, comm: this.ownerComm.get(pid) ?? exit.comm };
    this.ownerComm.delete(pid);
    const out: TraceEvent[] = [];
    for (const [key, slots] of [...this.rings]) {
      if (ringOwner(key) !== pid) continue;
      this.rings.delete(key);
      const bytes = sum(slots);
      if (bytes === 0) continue;
      const fd = Number(key.slice(key.indexOf(':') + 1));
      out.push(makeEvent({ line, source: this.name }, { op: 'deregister', attempt: 'deregister', bytes, latencyNs: null, errno: null, detail: { fd, reason: 'exit' } }));
    }
    return out;
  }
}

/** The pid of a `pid:fd` ring key. */
function ringOwner(key: string): number {
  return Number(key.slice(0, key.indexOf(':')));
}

// ---- mlock ----------------------------------------------------------------------------------

const MLOCK_CALLS = ['mlock', 'mlock2', 'munlock', 'mlockall', 'munlockall'] as const;
type MlockCall = (typeof MLOCK_CALLS)[number];

interface MlockEntry {
  call: MlockCall;
  time: number;
  start: bigint | null;
  length: number | null;
  flags: number | null;
}

export class MlockSource implements TraceSourceDriver {
  readonly name = 'mlock' as const;
  private readonly pending = new Map<number, MlockEntry>();
  private calls: MlockCall[] = [];

  detect(facts: TracefsFacts): SourceAvailability {
    this.calls = MLOCK_CALLS.filter((c) => facts.availableEvents.has(`syscalls/sys_enter_${c}`) && facts.availableEvents.has(`syscalls/sys_exit_${c}`));
    const why = missingReason(facts, ['syscalls/sys_enter_mlock', 'syscalls/sys_exit_mlock', 'syscalls/sys_enter_munlock', 'syscalls/sys_exit_munlock']);
    if (why) return { source: this.name, available: false, why };
    return { source: this.name, available: true, why: `syscall tracepoints of ${this.calls.join(', ')}` };
  }

  tracepoints(): readonly TracepointName[] {
    return this.calls.flatMap((c): TracepointName[] => [`syscalls/sys_enter_${c}`, `syscalls/sys_exit_${c}`]);
  }

  probes(): readonly [] {
    return [];
  }

  private static readonly EVENTS: ReadonlySet<string> = new Set(MLOCK_CALLS.flatMap((c) => [`sys_enter_${c}`, `sys_exit_${c}`]));

  owns(event: string): boolean {
    return MlockSource.EVENTS.has(event);
  }

  handle(line: TraceLine): readonly TraceEvent[] {
    const m = /^sys_(enter|exit)_(\w+)$/.exec(line.event);
    if (!m) return [];
    const call = m[2] as MlockCall;
    if (m[1] === 'enter') {
      const args = parseSyscallArgs(line.payload);
      const len = args.get('len');
      const flags = args.get('flags');
      this.pending.set(line.tid, { call, time: line.time, start: args.get('start') ?? null, length: len === undefined ? null : Number(len), flags: flags === undefined ? null : Number(flags) });
      return [];
    }
    const entry = this.pending.get(line.tid);
    if (!entry || entry.call !== call) return [];
    this.pending.delete(line.tid);
    const ret = parseSyscallReturn(line.payload);
    const attempt: TraceAttempt = call.startsWith('munlock') ? 'munlock' : 'mlock';
    const failed = ret === null || ret < 0n;
    const detail: Record<string, string | number | null> = { call };
    if (entry.start !== null) detail['address'] = `0x${entry.start.toString(16)}`;
    if (entry.flags !== null) detail['flags'] = entry.flags;
    return [makeEvent({ line, source: this.name }, {
      op: failed ? 'failed' : attempt,
      attempt,
      bytes: entry.length,
      latencyNs: latencyNs(entry.time, line.time),
      errno: failed ? (ret === null ? 'EINVAL' : errnoName(Number(-ret))) : null,
      detail,
    })];
  }
}
