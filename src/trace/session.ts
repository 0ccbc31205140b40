// One `rdmactl trace` run: check tracefs, clean what dead runs left, ask each source what it needs,
// start rdmactl's own instance, read trace_pipe without blocking (so a signal or the deadline always
// ends the loop within one poll), hand each line to the sources that own its event, filter and
// enrich their events, and on every way out — end of --duration, Ctrl-C/SIGTERM/SIGHUP, an output
// error, a bug — remove the instance and the probes before returning or throwing.

import { setTimeout as sleep } from 'node:timers/promises';
import { UnsupportedError } from '../lib/errors.js';
import { untilSignal } from '../lib/hold.js';
import { cgroupOwners, type CgroupOwner } from '../observe/cgroups.js';
import { readCgroupMounts, type CgroupMounts } from '../proc/cgroup.js';
import { readComm } from '../proc/comm.js';
import { readStatus } from '../proc/status.js';
import { FailureLogWriter } from './failureLog.js';
import { KernelErrnos } from './kernelErrno.js';
import { exitComm, TracePipeParser } from './parse.js';
import { cleanupStale, exitTracing, TraceInstance, tracefsFacts, tracefsProblem, type CleanupReport } from './tracefs.js';
import { ThreadGroups } from './threadGroups.js';
import { UNKNOWN_COMM, type ProbeSpec, type SourceAvailability, type TraceEvent, type TracefsFacts, type TracepointName, type TraceSourceDriver, type TraceSourceName } from './types.js';

/** Per-CPU ring buffer: ~40,000 syscall records per CPU, a few seconds of a heavy registration loop between reads. */
export const BUFFER_KB = 4096;
/** How long the loop sleeps when trace_pipe is empty. */
const IDLE_POLL_MS = 50;
/** How long the end of a run keeps reading what is left in the buffer before it stops recording. */
const FINAL_DRAIN_MS = 2000;
/** How often the kernel's loss counters are read while tracing. */
const LOSS_CHECK_MS = 1000;

/** One event as printed: the source's event and what rdmactl read about its process. */
export interface TraceRecord {
  readonly event: TraceEvent;
  /** Wall-clock time of the event, ms since the epoch (from the monotonic trace clock). */
  readonly wallMs: number;
  readonly cgroup: string | null;
  readonly unit: string | null;
  /** VmPin of the process when rdmactl read it, right after the batch holding the event; null when gone. */
  readonly vmPinBytes: number | null;
}

/**
 * The probe sources record the task's name with the event ($comm, trace/probeline.ts); a name cut by
 * a newline falls back to the line's, which the session then treats like a tracepoint's.
 */
function recordsComm(event: TraceEvent): boolean {
  return (event.source === 'verbs' || event.source === 'umem') && event.comm !== UNKNOWN_COMM;
}

export interface TraceFilter {
  pids?: readonly number[];
  uids?: readonly number[];
  /** A cgroup path (the process's cgroup or an ancestor) or a systemd unit name. */
  cgroup?: string;
}

export interface SessionOptions {
  drivers: readonly TraceSourceDriver[];
  filter?: TraceFilter;
  /** Stop after this long; null: until a signal. */
  durationMs?: number | null;
  onRecord(record: TraceRecord): void;
  /** Called after the records of one read of the buffer: a printer writes what it gathered in one go. */
  onBatchEnd?(): void;
  /** Called when the kernel's loss counters grow: the total so far. */
  onLoss?(lostEvents: number): void;
  /** What the start-up cleanup removed (instances and probes of dead runs). */
  onCleanup?(report: CleanupReport): void;
  /** Called once tracing is on, with the sources in use. */
  onStart?(sources: readonly SourceAvailability[]): void;
  bufferKb?: number;
  /** Read each process's VmPin after its events (default true); off when nobody prints it. */
  vmPin?: boolean;
  /**
   * Ends the session from outside, like the deadline: for a session embedded in a command that
   * handles signals itself (exporter --trace, top's events pane). With it, no signal handlers are installed.
   */
  stop?: AbortSignal;
  /** Keep failed events for `doctor PID` in the runtime directory (default true; failureLog.ts). */
  failureLog?: boolean;
}

export interface SessionResult {
  sources: SourceAvailability[];
  /** Events the kernel dropped or overwrote before rdmactl read them (per-CPU stats, or LOST lines). */
  lostEvents: number;
  /** trace_pipe lines of no known shape: counted, never printed. */
  unparsableLines: number;
  records: number;
  /** Wall time of the start and end of tracing, ms since the epoch. */
  startedMs: number;
  endedMs: number;
  /** What could not be removed at the end (normally empty). */
  cleanupFailures: string[];
  signal: NodeJS.Signals | null;
  /** Why failed events could not be kept for doctor (null when they were, or there were none). */
  failureLogProblem: string | null;
}

/** Each source's availability here. Never throws. */
export function listSources(drivers: readonly TraceSourceDriver[], facts: TracefsFacts = tracefsFacts()): SourceAvailability[] {
  return drivers.map((driver) => driver.detect(facts));
}

/** A record ready but for its comm, which may wait for its process's exit event. */
interface PendingRecord {
  readonly event: TraceEvent;
  readonly cgroup: string | null;
  readonly unit: string | null;
  readonly vmPinBytes: number | null;
  /** The comm is the task's own (recorded with the event, from /proc, or from its exit), not the cache's. */
  readonly named: boolean;
}

/** Per-process facts read once (uid, cgroup) and VmPin read once per batch. */
class ProcessInfo {
  private readonly owners = new Map<number, CgroupOwner>();
  private readonly uids = new Map<number, number | null>();
  private mounts: CgroupMounts | null = null;

  owner(pid: number): CgroupOwner {
    let owner = this.owners.get(pid);
    if (!owner) {
      this.mounts ??= readCgroupMounts();
      owner = cgroupOwners([pid], this.mounts).get(pid) ?? { cgroup: null, unit: null, container: null };
      this.owners.set(pid, owner);
    }
    return owner;
  }

  uid(pid: number): number | null {
    if (!this.uids.has(pid)) this.uids.set(pid, readStatus(pid)?.uid ?? null);
    return this.uids.get(pid)!;
  }

  comm(tid: number): string | null {
    try {
      return readComm(tid);
    } catch {
      return null;
    }
  }

  static vmPin(pid: number): number | null {
    try {
      return readStatus(pid)?.pinnedBytes ?? null;
    } catch {
      return null;
    }
  }

  forget(pid: number): void {
    this.owners.delete(pid);
    this.uids.delete(pid);
  }
}

function matches(filter: TraceFilter, info: ProcessInfo, pid: number): boolean {
  if (filter.pids && !filter.pids.includes(pid)) return false;
  if (filter.uids) {
    const uid = info.uid(pid);
    if (uid === null || !filter.uids.includes(uid)) return false;
  }
  if (filter.cgroup !== undefined) {
    const owner = info.owner(pid);
    const path = filter.cgroup.replace(/\/+$/, '') || '/';
    const inside = owner.cgroup !== null && (path === '/' || owner.cgroup === path || owner.cgroup.startsWith(`${path}/`));
    if (!inside && owner.unit !== filter.cgroup) return false;
  }
  return true;
}

/**
 * Runs one trace until the duration ends or a release signal arrives. Throws UnsupportedError /
 * PermissionError (one line) when tracing cannot start; the instance never outlives the call.
 */
export async function runTraceSession(options: SessionOptions): Promise<SessionResult> {
  const facts = tracefsFacts();
  const problem = tracefsProblem(facts, process.geteuid?.() ?? 0);
  if (problem) throw problem;
  options.onCleanup?.(cleanupStale(facts.root!));
  const availability = options.drivers.map((driver) => driver.detect(facts));
  const drivers = options.drivers.filter((_, i) => availability[i]!.available);
  if (drivers.length === 0) {
    throw new UnsupportedError(`no trace source is available here: ${availability.map((a) => `${a.source}: ${a.why}`).join('; ')}`);
  }
  // Exits are the session's, whatever the sources: a pid's cached facts end there (the number may be
  // reused), the io_uring source releases an exited process's rings, and the exit event names a
  // process already gone when its lines are read.
  const exits = exitTracing(facts);
  const tracepoints = [...new Set([...drivers.flatMap((d): readonly TracepointName[] => d.tracepoints()), ...(exits ? [exits.tracepoint] : [])])];
  const probes = drivers.flatMap((d): readonly ProbeSpec[] => d.probes());
  // Optional, beyond the TraceSourceDriver interface: kernel-side filters a source asks for.
  const filters = Object.assign({}, ...drivers.map((d) => (d as { filters?: () => Partial<Record<TracepointName, string>> }).filters?.() ?? {}),
    exits?.filter ? { [exits.tracepoint]: exits.filter } : {}) as Partial<Record<TracepointName, string>>;
  const filter = options.filter ?? {};

  // Signals are caught before the instance exists, so none can end the process between its creation and the try below.
  const signals = options.stop ? null : untilSignal();
  let signal: NodeJS.Signals | null = null;
  const stop = new AbortController();
  void signals?.signalled.then((s) => {
    signal = s;
    stop.abort();
  });
  if (options.stop?.aborted) stop.abort();
  options.stop?.addEventListener('abort', () => stop.abort(), { once: true });
  const deadline = options.durationMs === null || options.durationMs === undefined ? null : setTimeout(() => stop.abort(), options.durationMs);

  const monoOffsetMs = Date.now() - Number(process.hrtime.bigint()) / 1e6;
  const startedMs = Date.now();
  const parser = new TracePipeParser();
  const info = new ProcessInfo();
  const groups = new ThreadGroups();
  const kernelErrnos = new KernelErrnos();
  let lostEvents = 0;
  let pipeLost = 0;
  /** Events left in the buffer at the end (not read, so lost to this run). */
  let unread = 0;
  let unparsableLines = 0;
  let records = 0;
  let instance: TraceInstance | null = null;
  let cleanupFailures: string[] = [];
  const failureLog = options.failureLog === false ? null : new FailureLogWriter();
  try {
    instance = TraceInstance.create(facts.root!, {
      bufferKb: options.bufferKb ?? BUFFER_KB,
      tracepoints,
      probes,
      filters,
      // --pid is filtered here, not with set_event_pid: the kernel's pid filter follows tasks through
      // per-CPU flags updated at context switches, and under load it dropped events without counting
      // them (the load test saw ~1.5 % of a loop's calls vanish); it also made each traced call slower.
    });
    options.onStart?.(availability.filter((a) => a.available));
    const traced = instance;
    let lastLossCheck = Date.now();
    const checkLosses = (): void => {
      const stats = traced.losses().reduce((n, cpu) => n + cpu.overrun + cpu.dropped, 0);
      const total = Math.max(stats, pipeLost) + unread;
      if (total > lostEvents) {
        lostEvents = total;
        options.onLoss?.(total);
      }
    };
    // A tracepoint record's comm is the kernel's cache at read time (below). A process already gone
    // said its name in its exit event, which can come in the next read. So a record whose own name is
    // still unknown is held back, with
    // all that follows it (order is kept), until the next read, and printed then whatever it holds.
    // Only the exits of those two reads are asked: a pid is reused, but not that soon.
    let exitComms = new Map<number, string>();
    let lastExitComms = new Map<number, string>();
    const exitCommOf = (pid: number): string | undefined => exitComms.get(pid) ?? lastExitComms.get(pid);
    let held: PendingRecord[] = [];
    const emit = (pending: readonly PendingRecord[]): void => {
      for (const { event: found, cgroup, unit, vmPinBytes, named } of pending) {
        const event = named ? found : { ...found, comm: exitCommOf(found.pid) ?? found.comm };
        records++;
        const wallMs = event.time * 1000 + monoOffsetMs;
        failureLog?.add(event, wallMs);
        options.onRecord({ event, wallMs, cgroup, unit, vmPinBytes });
      }
      if (pending.length > 0) options.onBatchEnd?.();
    };
    const drain = (): boolean => {
      const chunk = traced.read();
      if (chunk.length === 0) {
        emit(held);
        held = [];
        return false;
      }
      const batch = parser.feed(chunk);
      unparsableLines += batch.unparsable;
      pipeLost += batch.lost;
      const events: TraceEvent[] = [];
      const lines = batch.lines.map((line) => groups.resolve(line));
      [lastExitComms, exitComms] = [exitComms, new Map()];
      for (const line of lines) {
        if (line.event === 'sched_process_exit') {
          const comm = exitComm(line.payload);
          if (comm !== null) exitComms.set(line.tgid ?? line.tid, comm);
        }
        for (const driver of drivers) if (driver.owns(line.event)) events.push(...driver.handle(line));
      }
      for (const driver of drivers) if (driver.flush) events.push(...driver.flush());
      const vmPins = new Map<number, number | null>();
      // A line's comm is the kernel's cache at read time: `<...>` once lost, and after pid reuse the
      // name of the pid's previous process (seen in tests that start thousands of processes). A live
      // task's own comm in /proc is no older, so it comes first; once per task and read.
      const liveComms = new Map<number, string | null>();
      const liveComm = (event: TraceEvent): string | null => {
        if (!liveComms.has(event.tid)) liveComms.set(event.tid, info.comm(event.tid));
        return liveComms.get(event.tid)!;
      };
      const pending: PendingRecord[] = [];
      for (const seen of events) {
        const found = kernelErrnos.fill(seen);
        if (!matches(filter, info, found.pid)) continue;
        // The task's own name, else null (the cache's name stands, or waits for an exit in the next read).
        // A thread gone without its process takes the process's name when the cache lost it, as before.
        const ownComm = recordsComm(found) ? found.comm
          : liveComm(found) ?? exitCommOf(found.pid) ?? (found.comm === UNKNOWN_COMM && found.tid !== found.pid ? info.comm(found.pid) : null);
        const event = ownComm === null || ownComm === found.comm ? found : { ...found, comm: ownComm };
        if (options.vmPin !== false && !vmPins.has(event.pid)) vmPins.set(event.pid, ProcessInfo.vmPin(event.pid));
        const owner = info.owner(event.pid);
        pending.push({ event, cgroup: owner.cgroup, unit: owner.unit, vmPinBytes: vmPins.get(event.pid) ?? null, named: ownComm !== null });
      }
      emit(held);
      const unnamed = pending.findIndex((r) => !r.named);
      held = unnamed < 0 ? [] : pending.slice(unnamed);
      emit(unnamed < 0 ? pending : pending.slice(0, unnamed));
      // A whole process gone (group_dead, or on kernels without it its leader): its pid may be reused.
      for (const line of lines) {
        if (line.event !== 'sched_process_exit') continue;
        const groupDead = /\bgroup_dead=(\w+)/.exec(line.payload)?.[1];
        if (groupDead === 'true' || (groupDead === undefined && line.tid === line.tgid)) {
          info.forget(line.tgid ?? line.tid);
          failureLog?.forget(line.tgid ?? line.tid);
          groups.forgetProcess(line.tgid ?? line.tid);
        }
      }
      return true;
    };
    while (!stop.signal.aborted) {
      const got = drain();
      if (Date.now() - lastLossCheck >= LOSS_CHECK_MS) {
        checkLosses();
        failureLog?.flush();
        lastLossCheck = Date.now();
      }
      // Between batches, what else the process does runs too (an exporter's scrapes, top's frames and keys).
      if (got) {
        await new Promise<void>((resolve) => setImmediate(resolve));
        continue;
      }
      try {
        await sleep(IDLE_POLL_MS, undefined, { signal: stop.signal });
      } catch {
        break; // stopped while waiting
      }
    }
    // What the kernel recorded before the stop is still read and printed: drained while recording is
    // on (a stopped instance's trace_pipe reads as ended), for at most FINAL_DRAIN_MS under a load that
    // never lets it run dry; whatever is still in the buffer after the stop counts as lost.
    const drainUntil = Date.now() + FINAL_DRAIN_MS;
    while (drain() && Date.now() < drainUntil);
    traced.stop();
    while (drain());
    unread = traced.losses().reduce((n, cpu) => n + cpu.entries, 0);
    checkLosses();
    unparsableLines += parser.flush().unparsable;
  } finally {
    if (deadline) clearTimeout(deadline);
    if (instance) cleanupFailures = instance.remove();
    failureLog?.close();
    for (const driver of options.drivers) (driver as Partial<Disposable>)[Symbol.dispose]?.();
    signals?.dispose();
  }
  return { sources: availability, lostEvents, unparsableLines, records, startedMs, endedMs: Date.now(), cleanupFailures, signal, failureLogProblem: failureLog?.problem ?? null };
}

/** Sources by name, for --source and --list-sources. */
export function sourceNames(drivers: readonly TraceSourceDriver[]): TraceSourceName[] {
  return drivers.map((d) => d.name);
}
