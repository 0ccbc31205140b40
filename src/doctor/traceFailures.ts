// trace.failures: the registrations of the target that a trace saw fail (rdmactl trace, exporter
// --trace or top's events pane keep them in the runtime directory: src/trace/failureLog.ts). Each
// kind of failure is also evidence in the check its errno points at, so `doctor PID` shows the
// kernel's own answer next to the limit that explains it.

import { formatBytes } from '../lib/size.js';
import { readStat } from '../proc/stat.js';
import { readLoggedFailures, type LoggedFailure } from '../trace/failureLog.js';
import { UNKNOWN_ERRNO, type TraceAttempt, type TraceSourceName } from '../trace/types.js';
import { finding, skipped, type DoctorContext, type Finding } from './types.js';

/** Failures older than this are not evidence any more: the limits may have changed since. */
export const TRACE_FAILURES_WINDOW_MS = 60 * 60 * 1000;

/** Failures of one kind (source, call, errno, size), summed over the window. */
export interface FailureGroup {
  readonly source: TraceSourceName;
  readonly attempt: TraceAttempt;
  readonly errno: string;
  readonly bytes: number | null;
  readonly count: number;
  readonly lastMs: number;
  /** The doctor check this errno points at; null when none does. */
  readonly check: string | null;
  /** umem for verbs registrations whose kernel half the umem source saw fail too: the same calls, counted once. */
  readonly alsoSeenBy: TraceSourceName | null;
}

/**
 * The check a failure is evidence for. ENOMEM from a long-term pin is RLIMIT_MEMLOCK's refusal (the
 * pinned-vm charge), as EAGAIN and EPERM are mlock's; EPERM from io_uring_register is
 * kernel.io_uring_disabled; EAGAIN from a verbs registration is the rdma cgroup's hca_object limit;
 * EFAULT or EOPNOTSUPP from a pin is a mapping that may not be pinned long-term (a file-backed one).
 */
export function checkForFailure(source: TraceSourceName, attempt: TraceAttempt, errno: string): string | null {
  if (attempt === 'mlock') return errno === 'ENOMEM' || errno === 'EAGAIN' || errno === 'EPERM' ? 'memlock.limit' : null;
  if (attempt !== 'register') return null;
  if (errno === 'ENOMEM') return 'memlock.limit';
  if (errno === 'EPERM' && source === 'io_uring') return 'uring.disabled';
  if (errno === 'EAGAIN' && (source === 'verbs' || source === 'umem')) return 'cgroup.rdma';
  if (errno === 'EFAULT' || errno === 'EOPNOTSUPP') return 'file.longterm-pin';
  return null;
}

/** Logged failures since `sinceMs`, grouped by kind, most recent first. Pure. */
export function groupFailures(failures: readonly LoggedFailure[], sinceMs: number): FailureGroup[] {
  const groups = new Map<string, FailureGroup>();
  for (const failure of failures) {
    if (failure.lastMs < sinceMs) continue;
    const key = `${failure.source}/${failure.attempt}/${failure.errno}/${failure.bytes}`;
    const seen = groups.get(key);
    groups.set(key, seen
      ? { ...seen, count: seen.count + failure.count, lastMs: Math.max(seen.lastMs, failure.lastMs) }
      : { source: failure.source, attempt: failure.attempt, errno: failure.errno, bytes: failure.bytes, count: failure.count, lastMs: failure.lastMs, check: checkForFailure(failure.source, failure.attempt, failure.errno), alsoSeenBy: null });
  }
  return mergeKernelHalves([...groups.values()]).sort((a, b) => b.lastMs - a.lastMs);
}

/**
 * A failed ibv_reg_mr is seen twice when both sources run: by verbs in the library, and by umem as
 * the ib_umem_get that failed inside it (the errno the verbs event carries then comes from there).
 * Those umem failures are the same calls: they are counted once, on the verbs group, and what is
 * left of the umem group (calls from programs whose library was not probed) stays on its own.
 */
function mergeKernelHalves(groups: FailureGroup[]): FailureGroup[] {
  const merged = [...groups];
  for (const [i, verbs] of merged.entries()) {
    if (verbs.source !== 'verbs' || verbs.errno === UNKNOWN_ERRNO) continue;
    const at = merged.findIndex((g) => g.source === 'umem' && g.attempt === verbs.attempt && g.errno === verbs.errno && g.bytes === verbs.bytes);
    if (at < 0) continue;
    const umem = merged[at]!;
    merged[i] = { ...verbs, alsoSeenBy: 'umem' };
    merged[at] = { ...umem, count: umem.count - verbs.count };
  }
  return merged.filter((g) => g.count > 0);
}

function groupEvidence(group: FailureGroup): { [key: string]: string | number | null } {
  return {
    source: group.source, alsoSeenBy: group.alsoSeenBy, call: group.attempt, errno: group.errno, sizeBytes: group.bytes, count: group.count,
    lastAt: new Date(group.lastMs).toISOString(),
  };
}

function groupText(group: FailureGroup): string {
  const size = group.bytes === null ? 'size unknown' : formatBytes(group.bytes);
  const source = group.alsoSeenBy ? `${group.source} (and ${group.alsoSeenBy})` : group.source;
  const errno = group.errno === UNKNOWN_ERRNO ? 'errno unknown' : group.errno;
  return `${source} ${group.attempt} of ${size} ${errno}${group.count > 1 ? ` x${group.count}` : ''}${group.check ? ` (see ${group.check})` : ''}`;
}

/**
 * The trace.failures finding, and the evidence it adds to the checks in `findings` (changed in place:
 * a `traceFailures` list on each matching finding). Call after every other check has run.
 */
export function traceFailureFindings(ctx: DoctorContext, findings: Finding[], now = Date.now()): Finding {
  const id = 'trace.failures';
  if (ctx.target.self) return skipped(id, 'the target is rdmactl itself; give a PID to see what a trace saw of that process');
  const startTime = readStat(ctx.target.pid)?.startTimeTicks;
  if (startTime === undefined) return skipped(id, `process ${ctx.target.pid} is gone`);
  let reading;
  try {
    reading = readLoggedFailures(ctx.target.pid, startTime);
  } catch (err) {
    return skipped(id, `the failures traces keep cannot be read: ${(err as Error).message}`);
  }
  if (reading.path === null) return skipped(id, 'no trace has run here as this user (rdmactl trace, exporter --trace and top keep the failures they see for doctor)');
  const groups = groupFailures(reading.failures, now - TRACE_FAILURES_WINDOW_MS);
  const evidence = { file: reading.path, windowSeconds: TRACE_FAILURES_WINDOW_MS / 1000 };
  if (groups.length === 0) return finding(id, 'ok', 'no registration of this process failed in a trace of the last hour', evidence);
  for (const group of groups) {
    const target = group.check === null ? undefined : findings.find((f) => f.id === group.check);
    if (!target) continue;
    const list = Array.isArray(target.evidence['traceFailures']) ? target.evidence['traceFailures'] : [];
    target.evidence['traceFailures'] = [...list, groupEvidence(group)];
  }
  const total = groups.reduce((n, g) => n + g.count, 0);
  return finding(id, 'warn', `${total} failed call${total === 1 ? '' : 's'} in traces of the last hour: ${groups.slice(0, 3).map(groupText).join('; ')}${groups.length > 3 ? `; and ${groups.length - 3} more kinds` : ''}`,
    { ...evidence, failures: groups.map(groupEvidence) });
}
