// rdmactl trace: every registration, deregistration, mlock and failure as it happens, from the
// kernel's tracepoints and probes (src/trace/), then a per-process summary.

import { Command, Option } from 'commander';
import { commaListOf, completes, dynamic, users } from '../lib/completionHints.js';
import { jsonLine, note, printJsonLine, type Context } from '../lib/context.js';
import { PermissionError, UsageError } from '../lib/errors.js';
import { escapeText } from '../lib/escape.js';
import { fieldText, toJson, type Field, type FormatOptions } from '../lib/fields.js';
import { addOutputOptions, jsonDocument, outputView, type OutputFlags, type OutputView } from '../lib/output.js';
import { parsePidList } from '../lib/pids.js';
import { DURATION_HELP, parseDuration } from '../lib/size.js';
import { resolveUser } from '../proc/accounts.js';
import { listSources, runTraceSession, type SessionResult, type TraceFilter, type TraceRecord } from '../trace/session.js';
import { traceDrivers } from '../trace/sources.js';
import { LATENCY_FIELDS, PROCESS_SUMMARY_FIELDS, TraceSummary } from '../trace/summary.js';
import { cleanupStale, tracefsFacts, tracefsProblem } from '../trace/tracefs.js';
import { TRACE_SOURCES, type SourceAvailability, type TraceSourceName } from '../trace/types.js';
import { counted } from '../lib/plural.js';

function pad2(n: number): string {
  return String(n).padStart(2, '0');
}

/** Wall-clock microseconds as a Date (to the ms) and the microseconds within its second. */
function wallParts(wallMs: number): { date: Date; micros: number } {
  const wallMicros = Math.round(wallMs * 1000);
  return { date: new Date(Math.floor(wallMicros / 1000)), micros: wallMicros % 1_000_000 };
}

/** Local time of day to the microsecond: `06:41:07.123456`. */
export function clockText(wallMs: number): string {
  const { date, micros } = wallParts(wallMs);
  return `${pad2(date.getHours())}:${pad2(date.getMinutes())}:${pad2(date.getSeconds())}.${String(micros).padStart(6, '0')}`;
}

/** Local time with its UTC offset and microseconds: `2026-12-06T06:41:07.123456+00:00`. */
export function isoMicros(wallMs: number): string {
  const { date, micros } = wallParts(wallMs);
  const offset = -date.getTimezoneOffset();
  const abs = Math.abs(offset);
  return `${date.getFullYear()}-${pad2(date.getMonth() + 1)}-${pad2(date.getDate())}T${pad2(date.getHours())}:${pad2(date.getMinutes())}:${pad2(date.getSeconds())}`
    + `.${String(micros).padStart(6, '0')}${offset < 0 ? '-' : '+'}${pad2(Math.floor(abs / 60))}:${pad2(abs % 60)}`;
}

export const TRACE_EVENT_FIELDS: readonly Field<TraceRecord>[] = [
  { key: 'clock', label: 'TIME', description: 'local time of day of the event, to the microsecond (the trace clock)', get: (r) => clockText(r.wallMs) },
  { key: 'time', label: 'DATE', description: 'local date and time of the event with its UTC offset, to the microsecond', get: (r) => isoMicros(r.wallMs), extra: true },
  { key: 'monotonic', label: 'MONOTONIC', description: 'the event\'s CLOCK_MONOTONIC time in seconds, as the kernel recorded it (µs resolution)', get: (r) => r.event.time, extra: true },
  { key: 'pid', label: 'PID', description: 'process (thread group) that made the call', get: (r) => r.event.pid },
  { key: 'tid', label: 'TID', description: 'thread that made the call', get: (r) => r.event.tid, extra: true },
  { key: 'comm', label: 'COMM', description: 'its command name as the kernel recorded it', get: (r) => r.event.comm },
  { key: 'source', label: 'SOURCE', description: `where the event was seen: ${TRACE_SOURCES.join(', ')}`, get: (r) => r.event.source },
  { key: 'op', label: 'OP', description: 'register, deregister, mlock, munlock, or failed', get: (r) => r.event.op },
  { key: 'attempt', label: 'ATTEMPT', description: 'what a failed call tried (register, deregister, mlock, munlock); equal to op otherwise', get: (r) => r.event.attempt, extra: true },
  { key: 'bytes', label: 'BYTES', description: 'bytes registered, released, locked or unlocked (requested lengths; null when the source cannot tell)', kind: 'bytes', get: (r) => r.event.bytes, nullText: '?' },
  { key: 'latencyUs', label: 'LATENCY', description: 'from the entry to the return of the call, in microseconds (null for events without a call, such as a release at exit)', kind: 'micros', get: (r) => (r.event.latencyNs === null ? null : r.event.latencyNs / 1000) },
  { key: 'errno', label: 'RESULT', description: 'null on success (text: ok); the errno name of a failed call', get: (r) => r.event.errno, nullText: 'ok' },
  { key: 'vmPinBytes', label: 'VMPIN', description: 'VmPin of the process read right after the event was seen (later events of the same read may be included; null when it exited)', kind: 'bytes', get: (r) => r.vmPinBytes },
  { key: 'unit', label: 'UNIT', description: 'systemd unit of the process, from its cgroup path', get: (r) => r.unit },
  { key: 'cgroup', label: 'CGROUP', description: 'cgroup of the process (memory hierarchy on v1, unified on v2)', get: (r) => r.cgroup, extra: true },
  { key: 'detail', label: 'DETAIL', description: 'source detail: fd, opcode, nrBufs; call, address, flags; reason (exit, update)', get: (r) => ({ ...r.event.detail }), extra: true },
];

/** Width of each streamed text column (the events are printed as they come, so widths cannot be measured). */
const STREAM_WIDTHS: Record<string, number> = { clock: 15, time: 32, monotonic: 16, pid: 7, tid: 7, comm: 15, source: 8, op: 10, attempt: 10, bytes: 7, latencyUs: 8, errno: 7, vmPinBytes: 7, unit: 24, cgroup: 30 };

const SOURCE_FIELDS: readonly Field<SourceAvailability>[] = [
  { key: 'source', label: 'SOURCE', description: 'trace source', get: (r) => r.source },
  { key: 'available', label: 'AVAILABLE', description: 'whether this kernel and these privileges allow it', kind: 'bool', get: (r) => r.available },
  { key: 'why', label: 'WHY', description: 'what was found, or what is missing and how to get it', get: (r) => r.why, prose: true },
];

const TRACE_OUTPUT = { name: 'trace-event', fields: TRACE_EVENT_FIELDS, jsonLines: true };

interface TraceFlags extends OutputFlags {
  pid?: string;
  user?: string;
  cgroup?: string;
  source?: string;
  duration?: string;
  summary?: boolean;
  listSources?: boolean;
  cleanup?: boolean;
}

function parseSourceList(text: string): TraceSourceName[] {
  const names = text.split(',').map((s) => s.trim()).filter(Boolean);
  if (names.length === 0 || names.some((n) => !(TRACE_SOURCES as readonly string[]).includes(n))) {
    throw new UsageError(`invalid --source '${text}': expected a comma list of ${TRACE_SOURCES.join(', ')}`);
  }
  return names as TraceSourceName[];
}

function parseUsers(text: string): number[] {
  const names = text.split(',').map((s) => s.trim()).filter(Boolean);
  if (names.length === 0) throw new UsageError(`invalid --user '${text}': give user names or uids, comma-separated`);
  return names.map((name) => {
    const uid = resolveUser(name);
    if (uid === null) throw new UsageError(`invalid --user '${name}': no such user`);
    return uid;
  });
}

/** One streamed event as a text line: fixed-width cells, one word each (or -r's escaping). */
function streamLine<R>(fields: readonly Field<R>[], record: R, raw: boolean, options: FormatOptions): string {
  const cells = fields.map((field) => fieldText(field, record, raw ? { ...options, raw: true } : { ...options, oneWord: true }));
  if (raw) return cells.join(' ');
  return cells.map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(Math.max(fields[i]!.label.length, STREAM_WIDTHS[fields[i]!.key] ?? 8)))).join(' ');
}

function streamHeader<R>(fields: readonly Field<R>[]): string {
  return fields.map((f, i) => (i === fields.length - 1 ? f.label : f.label.padEnd(Math.max(f.label.length, STREAM_WIDTHS[f.key] ?? 8)))).join(' ');
}

export function traceCommand(ctx: Context): Command {
  const command = new Command('trace')
    .summary('watch registrations, deregistrations, mlocks and failures as they happen')
    .description(`One line (or with --json one NDJSON document) per event, from the kernel's tracepoints and probes:
  io_uring  io_uring_register(2) fixed buffers (syscall tracepoints; sizes read from the caller's iovecs)
  mlock     mlock, mlock2, munlock, mlockall, munlockall (syscall tracepoints)
  verbs     ibv_reg_mr and ibv_dereg_mr in libibverbs (uprobes), where available
  umem      ib_umem_get / ib_umem_release in the kernel (kprobes), where available
At the end (--duration, Ctrl-C, SIGTERM, SIGHUP) a summary per process and source: registrations,
deregistrations, bytes registered and released, outstanding (registered minus released while
tracing), mlocks and bytes locked, failures by errno, and the latency by source and size class
(count, median, p99, max; percentiles over a bounded uniform sample of the calls). --summary prints
only that. Events the kernel dropped (a full buffer) are counted and reported, never hidden.

Tracing needs root and a mounted tracefs (mount -t tracefs nodev /sys/kernel/tracing). rdmactl
uses a tracefs instance of its own, so other tracers are not disturbed; it removes it, and its
probes, on every exit. If it was killed with SIGKILL, the next run or \`rdmactl trace --cleanup\`
removes what it left. --list-sources says which sources this kernel and these privileges allow.`)
    .addOption(completes(new Option('-p, --pid <pids>', 'only these processes (comma list, all their threads)'), dynamic('pids', true)))
    .addOption(completes(new Option('-u, --user <list>', 'only processes of these users (names or uids, comma list)'), users(true)))
    .addOption(completes(new Option('--cgroup <path>', 'only processes in this cgroup (a path as in /proc/PID/cgroup, with its sub-cgroups) or this systemd unit'), { kind: 'files' }))
    .addOption(completes(new Option('-s, --source <list>', `only these sources (comma list of ${TRACE_SOURCES.join(', ')})`), commaListOf(TRACE_SOURCES)))
    .option('-d, --duration <duration>', `stop after this long (${DURATION_HELP}); default: until Ctrl-C`)
    .option('--summary', 'print only the summary at the end, not each event')
    .option('--json', 'one JSON document per event (NDJSON, schema rdmactl.trace-event/1), then the summary (rdmactl.trace-summary/1)')
    .option('--list-sources', 'say for each source whether it can run here, and why not; then exit')
    .option('--cleanup', 'remove tracefs instances and probes left by rdmactl runs that were killed; then exit')
    .addHelpText('after', `
Examples:
  rdmactl trace                           every event until Ctrl-C, then the summary
  rdmactl trace -p 1234 --duration 10s    one process for ten seconds
  rdmactl trace --summary -d 1m           a minute of counts and latencies per process
  rdmactl trace --json | jq -c 'select(.op == "failed") | {pid, comm, errno, bytes}'
  rdmactl trace --list-sources            what this kernel allows
  rdmactl trace --cleanup                 after a trace that was killed with SIGKILL`)
    .action(async (flags: TraceFlags) => {
      const view = outputView(ctx, TRACE_OUTPUT, flags);
      if (flags.listSources && flags.cleanup) throw new UsageError('choose one of --list-sources and --cleanup');
      const wanted = flags.source !== undefined ? parseSourceList(flags.source) : null;
      const drivers = traceDrivers().filter((d) => wanted === null || wanted.includes(d.name));
      if (flags.listSources) return printSources(ctx, view, listSources(drivers));
      if (flags.cleanup) return cleanup(ctx, view);
      const filter: TraceFilter = {
        ...(flags.pid !== undefined ? { pids: parsePidList([flags.pid], '--pid') } : {}),
        ...(flags.user !== undefined ? { uids: parseUsers(flags.user) } : {}),
        ...(flags.cgroup !== undefined ? { cgroup: flags.cgroup } : {}),
      };
      const durationMs = flags.duration !== undefined ? parseDuration(flags.duration, '--duration') : null;
      await trace(ctx, view, flags, drivers, filter, durationMs);
    });
  return addOutputOptions(command, ctx, TRACE_OUTPUT);
}

function printSources(ctx: Context, view: OutputView<TraceRecord>, sources: SourceAvailability[]): void {
  if (view.json) {
    printJsonLine(ctx, jsonDocument('trace-sources', { sources: sources.map((s) => ({ source: s.source, available: s.available, why: s.why })) }));
    return;
  }
  view.printOther(SOURCE_FIELDS, sources);
  if (view.recordsOnly) for (const s of sources) ctx.stdout.write(`${s.source} ${s.available ? 'yes' : 'no'}\n`);
}

function cleanup(ctx: Context, view: OutputView<TraceRecord>): void {
  const facts = tracefsFacts();
  const problem = tracefsProblem(facts, ctx.euid);
  if (problem) throw problem;
  const report = cleanupStale(facts.root!);
  if (report.failed.length > 0) throw new PermissionError(`could not remove everything: ${report.failed.join('; ')}`);
  if (view.json) {
    printJsonLine(ctx, jsonDocument('trace-cleanup', { instances: report.instances, probes: report.probes }));
    return;
  }
  view.prose(report.instances.length + report.probes.length === 0 ? 'Nothing left by earlier runs.'
    : `Removed ${report.instances.length} instance(s) and ${report.probes.length} probe(s) left by earlier runs.`);
}

async function trace(ctx: Context, view: OutputView<TraceRecord>, flags: TraceFlags, drivers: ReturnType<typeof traceDrivers>, filter: TraceFilter, durationMs: number | null): Promise<void> {
  // Incremental and bounded: a trace of hours keeps counters and latency reservoirs, not its events.
  const summary = new TraceSummary();
  const formatOptions: FormatOptions = { bytes: view.style.bytes, sizes: 'compact' };
  let headerDue = !view.json && !flags.summary && view.style.headings && !view.style.raw;
  const pending: string[] = [];
  const result: SessionResult = await runTraceSession({
    drivers,
    filter,
    durationMs,
    vmPin: !flags.summary && view.fields.some((f) => f.key === 'vmPinBytes'),
    onStart: (sources) => note(ctx, `tracing ${sources.map((s) => s.source).join(', ')}${durationMs === null ? ' until Ctrl-C' : ''}`),
    onCleanup: (report) => {
      if (report.instances.length + report.probes.length > 0) note(ctx, `removed ${report.instances.length} instance(s) and ${report.probes.length} probe(s) left by a run that was killed`);
      for (const failure of report.failed) note(ctx, `could not remove what an earlier run left: ${failure}`);
    },
    onLoss: (lost) => note(ctx, `the kernel dropped ${lost} trace events so far (its buffer was full): the events and the summary miss them`),
    onRecord: (record) => {
      summary.add(record.event);
      if (flags.summary) return;
      if (view.json) {
        pending.push(jsonLine(jsonDocument('trace-event', view.record(record))));
        return;
      }
      if (headerDue) {
        pending.push(`${streamHeader(view.fields)}\n`);
        headerDue = false;
      }
      pending.push(`${streamLine(view.fields, record, view.style.raw, formatOptions)}\n`);
    },
    // One write per read of the kernel's buffer, not one per event (a write costs more than formatting a line).
    onBatchEnd: () => {
      if (pending.length === 0) return;
      const text = pending.join('');
      pending.length = 0;
      ctx.stdout.write(text);
    },
  });
  printSummary(ctx, view, flags, summary, result);
}

function printSummary(ctx: Context, view: OutputView<TraceRecord>, flags: TraceFlags, summary: TraceSummary, result: SessionResult): void {
  const processes = summary.processes();
  const latency = summary.latency();
  if (result.cleanupFailures.length > 0) note(ctx, `could not remove everything from tracefs (rdmactl trace --cleanup retries): ${result.cleanupFailures.join('; ')}`);
  if (result.unparsableLines > 0) note(ctx, `${result.unparsableLines} trace lines of unknown shape were skipped`);
  if (result.failureLogProblem !== null) note(ctx, `failures were not kept for doctor: ${result.failureLogProblem}`);
  if (view.json) {
    printJsonLine(ctx, jsonDocument('trace-summary', {
      startedAt: new Date(result.startedMs).toISOString(),
      endedAt: new Date(result.endedMs).toISOString(),
      sources: result.sources.filter((s) => s.available).map((s) => s.source),
      events: result.records,
      lostEvents: result.lostEvents,
      unparsableLines: result.unparsableLines,
      processes: processes.map((row) => toJson(PROCESS_SUMMARY_FIELDS, row)),
      latency: latency.map((row) => toJson(LATENCY_FIELDS, row)),
    }));
    return;
  }
  // -r and -n print the events alone; the summary is for people (and --summary).
  if (view.recordsOnly && !flags.summary) return;
  if (!flags.summary && result.records > 0) ctx.stdout.write('\n');
  const seconds = ((result.endedMs - result.startedMs) / 1000).toFixed(1);
  const lost = result.lostEvents > 0 ? `; the kernel dropped ${counted(result.lostEvents, 'event', 'events')} (buffer full): counts are short by up to that many` : '';
  ctx.stdout.write(`${escapeText(`${counted(result.records, 'event', 'events')} in ${seconds}s${lost}`)}\n`);
  if (processes.length > 0) {
    view.printOther(PROCESS_SUMMARY_FIELDS, processes);
    if (latency.length > 0) {
      ctx.stdout.write('\nlatency of registrations and mlocks by source and size\n');
      view.printOther(LATENCY_FIELDS, latency);
    }
  }
}
