// The registrations a trace saw fail, kept for `doctor PID`: every trace session (rdmactl trace,
// exporter --trace, top's events pane) appends its failed events to one file in rdmactl's runtime
// directory (src/held/store.ts: /run/rdmactl for root, mode 0700), and doctor reads the ones of its
// target process as evidence for the check the errno points at.
//
// The file, trace-failures.ndjson: one JSON document per line (schema below), mode 0600, opened with
// O_APPEND|O_NOFOLLOW and used only when it is a regular file of ours with one link. Bounded twice:
// failures of one kind from one process are folded into one line per second (a failing retry loop
// writes one line a second, not thousands), and past MAX_LOG_BYTES the file is renamed to
// trace-failures.ndjson.1 (replacing the older one) and a new one begun. Readers cap each file at
// MAX_LOG_BYTES too and skip any line that does not parse.
//
// A line names its process by pid AND start time (field 22 of /proc/PID/stat), so a reused pid never
// inherits another process's failures. A failure of a process that has already exited is not kept:
// doctor cannot be asked about it.

import { closeSync, constants, fstatSync, openSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { effectiveUid, ensureRuntimeDir, existingRuntimeDir, readOwnFile } from '../held/store.js';
import { writeAll } from '../lib/writeAll.js';
import { readStat } from '../proc/stat.js';
import { TRACE_SOURCES, UNKNOWN_ERRNO, type TraceAttempt, type TraceEvent, type TraceSourceName } from './types.js';

export const FAILURE_LOG_NAME = 'trace-failures.ndjson';
/** Past this size the log is rotated (and a reader reads no more than this of each file). */
export const MAX_LOG_BYTES = 256 * 1024;
/** Failures of one kind from one process within this window are one line. */
const FOLD_MS = 1000;
export const FAILURE_LOG_VERSION = 1;

/** One line of the log: `count` failures of one kind from one process, the first at `firstMs`. */
export interface LoggedFailure {
  readonly v: typeof FAILURE_LOG_VERSION;
  readonly pid: number;
  /** Clock ticks after boot (/proc/PID/stat field 22): with pid, names the process. */
  readonly startTime: number;
  /** As the kernel recorded it; untrusted (escape before printing). */
  readonly comm: string;
  readonly source: TraceSourceName;
  readonly attempt: TraceAttempt;
  /** Bytes the failed call asked for; null when the source could not tell. */
  readonly bytes: number | null;
  /** The errno name, or 'unknown' when the source could not tell (a verbs NULL return with no umem failure inside it). */
  readonly errno: string;
  readonly count: number;
  /** Wall-clock times of the first and last of them, ms since the epoch. */
  readonly firstMs: number;
  readonly lastMs: number;
}

const ATTEMPTS: readonly TraceAttempt[] = ['register', 'deregister', 'mlock', 'munlock'];

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** A line of the log, or null when it is not one (torn, foreign, or of another version). Pure. */
export function parseFailureLine(line: string): LoggedFailure | null {
  let doc: unknown;
  try {
    doc = JSON.parse(line);
  } catch {
    return null;
  }
  if (typeof doc !== 'object' || doc === null) return null;
  const d = doc as Record<string, unknown>;
  if (d['v'] !== FAILURE_LOG_VERSION) return null;
  if (!isCount(d['pid']) || !isCount(d['startTime']) || !isCount(d['count']) || !isCount(d['firstMs']) || !isCount(d['lastMs'])) return null;
  if (typeof d['comm'] !== 'string' || typeof d['errno'] !== 'string' || (d['errno'] !== UNKNOWN_ERRNO && !/^E[A-Z0-9]+$/.test(d['errno']))) return null;
  if (!TRACE_SOURCES.includes(d['source'] as TraceSourceName) || !ATTEMPTS.includes(d['attempt'] as TraceAttempt)) return null;
  if (d['bytes'] !== null && !isCount(d['bytes'])) return null;
  return {
    v: FAILURE_LOG_VERSION, pid: d['pid'], startTime: d['startTime'], comm: d['comm'], source: d['source'] as TraceSourceName,
    attempt: d['attempt'] as TraceAttempt, bytes: d['bytes'] as number | null, errno: d['errno'], count: d['count'], firstMs: d['firstMs'], lastMs: d['lastMs'],
  };
}

/** Opens `path` for appending when it is (or can be made) a regular file of ours with one link; else null. */
function openOwnLog(path: string): number | null {
  let fd: number;
  try {
    fd = openSync(path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
  } catch {
    return null;
  }
  const st = fstatSync(fd);
  if (!st.isFile() || st.uid !== effectiveUid() || st.nlink !== 1 || (st.mode & 0o077) !== 0) {
    closeSync(fd);
    return null;
  }
  return fd;
}

/**
 * Appends a session's failures to the log. Never throws into the trace: a log that cannot be written
 * (read-only runtime directory, a planted file) is given up for the session, and `problem` says why.
 */
export class FailureLogWriter implements Disposable {
  private fd: number | null = null;
  private path: string | null = null;
  private opened = false;
  /** Failures folded but not yet written, by process and kind. */
  private readonly pending = new Map<string, LoggedFailure>();
  private readonly startTimes = new Map<number, number | null>();
  problem: string | null = null;

  constructor(private readonly env: NodeJS.ProcessEnv = process.env) {}

  /** Keeps a failed event (others are ignored), `wallMs` its wall-clock time; written at a later flush. */
  add(event: TraceEvent, wallMs: number): void {
    if (event.op !== 'failed' || event.errno === null || this.problem !== null) return;
    let startTime = this.startTimes.get(event.pid);
    if (startTime === undefined) {
      startTime = readStat(event.pid)?.startTimeTicks ?? null;
      this.startTimes.set(event.pid, startTime);
    }
    if (startTime === null) return;
    const at = Math.round(wallMs);
    const key = `${event.pid}/${startTime}/${event.source}/${event.attempt}/${event.errno}/${event.bytes}`;
    const folded = this.pending.get(key);
    if (folded) {
      this.pending.set(key, { ...folded, count: folded.count + 1, lastMs: Math.max(folded.lastMs, at) });
      return;
    }
    this.pending.set(key, {
      v: FAILURE_LOG_VERSION, pid: event.pid, startTime, comm: event.comm, source: event.source, attempt: event.attempt,
      bytes: event.bytes, errno: event.errno, count: 1, firstMs: at, lastMs: at,
    });
  }

  /** A process gone: its pid may be reused, so its start time is read again next time. */
  forget(pid: number): void {
    this.startTimes.delete(pid);
  }

  /** Writes what is folded when its window has passed (all of it with `all`). */
  flush(all = false, now = Date.now()): void {
    if (this.pending.size === 0) return;
    const due: LoggedFailure[] = [];
    for (const [key, failure] of this.pending) {
      if (all || now - failure.firstMs >= FOLD_MS) {
        due.push(failure);
        this.pending.delete(key);
      }
    }
    if (due.length === 0 || !this.open()) return;
    const text = due.map((failure) => `${JSON.stringify(failure)}\n`).join('');
    try {
      // One write per batch: O_APPEND keeps concurrent sessions' lines whole.
      writeAll(this.fd!, Buffer.from(text, 'utf8'));
      if (fstatSync(this.fd!).size > MAX_LOG_BYTES) this.rotate();
    } catch (err) {
      this.giveUp(`cannot write ${this.path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
  }

  private open(): boolean {
    if (this.fd !== null) return true;
    if (this.opened) return false;
    this.opened = true;
    try {
      this.path = join(ensureRuntimeDir({ env: this.env }), FAILURE_LOG_NAME);
    } catch (err) {
      this.giveUp((err as Error).message);
      return false;
    }
    this.fd = openOwnLog(this.path);
    if (this.fd === null) this.giveUp(`cannot use ${this.path}: not a regular file of ours with one link and mode 0600`);
    return this.fd !== null;
  }

  private rotate(): void {
    renameSync(this.path!, `${this.path}.1`);
    closeSync(this.fd!);
    this.fd = openOwnLog(this.path!);
    if (this.fd === null) this.giveUp(`cannot use ${this.path} after rotating it`);
  }

  private giveUp(why: string): void {
    this.problem = why;
    this.pending.clear();
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }

  close(): void {
    this.flush(true);
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

export interface FailureLogReading {
  /** Where the log is (or would be); null when the runtime directory does not exist. */
  readonly path: string | null;
  readonly failures: LoggedFailure[];
}

/** The logged failures of one process (pid and start time), oldest first. Never throws on a missing log. */
export function readLoggedFailures(pid: number, startTime: number, env: NodeJS.ProcessEnv = process.env): FailureLogReading {
  const dir = existingRuntimeDir({ env });
  if (dir === null) return { path: null, failures: [] };
  const path = join(dir, FAILURE_LOG_NAME);
  const failures: LoggedFailure[] = [];
  for (const file of [`${path}.1`, path]) {
    for (const line of (readOwnFile(file, MAX_LOG_BYTES, 'tail') ?? '').split('\n')) {
      const failure = line === '' ? null : parseFailureLine(line);
      if (failure && failure.pid === pid && failure.startTime === startTime) failures.push(failure);
    }
  }
  return { path, failures };
}
