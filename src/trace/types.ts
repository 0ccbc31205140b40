// rdmactl trace: the declarations every part of the tracer shares. The tracefs session
// (session.ts), the line parser and the pairing of entry and return probes produce TraceEvents;
// the summary, the printers, top's events pane and the exporter's counters consume them.

/** Where an event was seen. Each is one group of tracefs events or probes, detected at start. */
export type TraceSourceName =
  /** io_uring_register(2): the syscalls enter/exit pair (sizes, latency) and io_uring:io_uring_register. */
  | 'io_uring'
  /** ibv_reg_mr*, ibv_reg_dmabuf_mr, ibv_dereg_mr in the libibverbs processes map (uprobes). */
  | 'verbs'
  /** ib_umem_get / ib_umem_release (and the ODP variant) in the kernel (kprobes). */
  | 'umem'
  /** mlock/mlock2/munlock/mlockall/munlockall through the syscall tracepoints. */
  | 'mlock';

export const TRACE_SOURCES: readonly TraceSourceName[] = ['io_uring', 'verbs', 'umem', 'mlock'];

/** What happened. A call that returned an error is 'failed', with `errno` set. */
export type TraceOp = 'register' | 'deregister' | 'mlock' | 'munlock' | 'failed';

/** The operation a failed event attempted. */
export type TraceAttempt = Exclude<TraceOp, 'failed'>;

/** The errno of a failure whose source cannot tell which (a verbs NULL return, a kernel NULL pointer). */
export const UNKNOWN_ERRNO = 'unknown';

export interface TraceEvent {
  /** Event time, seconds of the trace clock (CLOCK_MONOTONIC: the instance's trace_clock is mono). */
  readonly time: number;
  /** Thread group id (the process), and the thread that made the call. */
  readonly pid: number;
  readonly tid: number;
  /** The task's comm as the kernel recorded it. Untrusted: escape before printing. */
  readonly comm: string;
  readonly source: TraceSourceName;
  readonly op: TraceOp;
  /** For a failed event, what it tried to do. Equal to `op` otherwise. */
  readonly attempt: TraceAttempt;
  /** Bytes registered, released, locked or unlocked; null when the source cannot tell. */
  readonly bytes: number | null;
  /** From the entry to the return of the call, in nanoseconds; null for one-sided events. */
  readonly latencyNs: number | null;
  /** null on success; the errno name (ENOMEM, EFAULT, ...) on failure, UNKNOWN_ERRNO when the source cannot tell. */
  readonly errno: string | null;
  /** Source-specific detail kept for the JSON output: lkey, opcode, nr_bufs, address. */
  readonly detail: Readonly<Record<string, string | number | null>>;
}

/** Size classes of the latency table: upper bounds in bytes, the last one open-ended. */
export const SIZE_CLASSES: readonly { readonly label: string; readonly maxBytes: number | null }[] = [
  { label: '<=64K', maxBytes: 64 * 1024 },
  { label: '<=1M', maxBytes: 1024 * 1024 },
  { label: '<=64M', maxBytes: 64 * 1024 * 1024 },
  { label: '<=1G', maxBytes: 1024 * 1024 * 1024 },
  { label: '>1G', maxBytes: null },
];

/** Whether a source can run here, and if not, why and how to get it. */
export interface SourceAvailability {
  readonly source: TraceSourceName;
  readonly available: boolean;
  /** One line: what was found, or what is missing and how to get it. */
  readonly why: string;
}

/** One line of an instance's trace_pipe, split (src/trace/parse.ts). The record-tgid option is on. */
export interface TraceLine {
  readonly comm: string;
  readonly tid: number;
  /** null when the kernel printed `-------` (tgid not recorded). */
  readonly tgid: number | null;
  readonly cpu: number;
  /** Seconds of the trace clock. */
  readonly time: number;
  /** The event's name as printed: `sys_enter_mlock`, `io_uring_register`, or a probe's event name. */
  readonly event: string;
  /** Everything after `EVENT: `, undecoded. */
  readonly payload: string;
}

/**
 * A dynamic probe a source asks for (uprobe or kprobe). The session writes `definition` to
 * dynamic_events under rdmactl's own group (rdmactl_PID: a later run or `trace --cleanup` removes
 * the groups of dead PIDs) and enables it in rdmactl's instance only.
 */
export interface ProbeSpec {
  readonly kind: 'uprobe' | 'uretprobe' | 'kprobe' | 'kretprobe';
  /** Event name inside the group, [a-z0-9_]. */
  readonly event: string;
  /** What follows `GROUP/EVENT ` in the definition: `PATH:0xOFFSET ARGS` or `SYMBOL ARGS`. */
  readonly target: string;
}

/** A tracepoint to enable in the instance: `syscalls/sys_enter_mlock`, `io_uring/io_uring_register`. */
export type TracepointName = `${string}/${string}`;

/**
 * One source of events. The session asks each source what it needs, enables it, and hands it the
 * lines of its events in order; the source turns them (pairing entry and return per thread) into
 * TraceEvents. Sources keep no file descriptors: I/O other than tracefs is theirs to cap and close.
 */
export interface TraceSourceDriver {
  readonly name: TraceSourceName;
  /** Whether it can run here; reads only (available_events, the ELF files, kprobe support). */
  detect(tracefs: TracefsFacts): SourceAvailability;
  tracepoints(): readonly TracepointName[];
  probes(): readonly ProbeSpec[];
  /** The event names (as printed in TraceLine.event) this source consumes. */
  owns(event: string): boolean;
  handle(line: TraceLine): readonly TraceEvent[];
  /** Events the source can tell only once a whole batch of lines was handled (optional). */
  flush?(): readonly TraceEvent[];
}

/** What trace_pipe prints for a task whose comm the kernel did not keep (its saved_cmdlines cache is small). */
export const UNKNOWN_COMM = '<...>';

/** What the session found out about tracefs, passed to sources' detect(). */
export interface TracefsFacts {
  /** The tracefs mount point, e.g. /sys/kernel/tracing; null when none is mounted. */
  readonly root: string | null;
  /** `SYSTEM/EVENT` lines of available_events. */
  readonly availableEvents: ReadonlySet<string>;
  readonly uprobes: boolean;
  readonly kprobes: boolean;
  /** Whether this process may write tracefs (root or CAP_SYS_ADMIN/CAP_PERFMON and access). */
  readonly writable: boolean;
}
