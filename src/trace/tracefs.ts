// The tracefs side of `rdmactl trace`: finding the mount, rdmactl's own instance (so other tracers,
// and the top-level buffer, are never touched), dynamic probe groups, stale-run cleanup and the
// per-CPU loss counters. All I/O on tracefs lives here. Control files are opened with O_NOFOLLOW and
// read with a cap; dynamic_events is only ever appended to (opening it without O_APPEND truncates
// it, which deletes every dynamic probe on the machine, other tools' included).

import { closeSync, constants, existsSync, mkdirSync, openSync, readdirSync, readSync, rmdirSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { PermissionError, UnsupportedError } from '../lib/errors.js';
import { parseMountinfo } from '../proc/cgroup.js';
import { errorCode, procPath } from '../proc/procfs.js';
import { readStat } from '../proc/stat.js';
import type { ProbeSpec, TracefsFacts, TracepointName } from './types.js';

/** Control files are small; available_events is the largest (tens of KiB). */
const MAX_CONTROL_BYTES = 4 * 1024 * 1024;

/** How to get tracefs when it is missing: rdmactl never mounts it itself (a machine-wide change). */
export const MOUNT_HINT = 'mount -t tracefs nodev /sys/kernel/tracing';

/** Most bytes taken from trace_pipe in one read(): the session handles them as one batch. */
const READ_BYTES = 1 << 20;

/** Instance names: `rdmactl-PID-STARTTIME` (start time in clock ticks since boot, so a reused PID is not mistaken for the run). */
export const INSTANCE_PREFIX = 'rdmactl-';
/** Probe groups: `rdmactl_PID` (group names allow [A-Za-z0-9_]). */
export const GROUP_PREFIX = 'rdmactl_';

/** The tracefs mount point from /proc/self/mountinfo: tracefs itself, else debugfs's tracing/. */
export function findTracefsRoot(mountinfo: string): string | null {
  const entries = parseMountinfo(mountinfo);
  const tracefs = entries.find((e) => e.fsType === 'tracefs');
  if (tracefs) return tracefs.mountPoint;
  const debugfs = entries.find((e) => e.fsType === 'debugfs');
  return debugfs ? join(debugfs.mountPoint, 'tracing') : null;
}

export function readCapped(path: string, maxBytes = MAX_CONTROL_BYTES): string {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = Buffer.alloc(Math.min(65536, maxBytes - total + 1));
      const n = readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      chunks.push(chunk.subarray(0, n));
      total += n;
      if (total > maxBytes) throw new Error(`${path} is larger than ${maxBytes} bytes`);
    }
    return Buffer.concat(chunks).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/** Writes one control value; `append` for dynamic_events and set_event (never truncate those). */
export function writeControl(path: string, text: string, append = false): void {
  const flags = constants.O_WRONLY | constants.O_NOFOLLOW | (append ? constants.O_APPEND : constants.O_TRUNC);
  const fd = openSync(path, flags);
  try {
    const bytes = Buffer.from(text);
    // tracefs takes one command per write(); a short write would split it.
    const n = writeSync(fd, bytes, 0, bytes.length);
    if (n !== bytes.length) throw new Error(`short write to ${path}`);
  } finally {
    closeSync(fd);
  }
}

function tryRead(path: string): string | null {
  try {
    return readCapped(path);
  } catch {
    return null;
  }
}

/** Whole-process exits: every source's processes end, and the exit event carries the process's name. */
export const EXIT_TRACEPOINT: TracepointName = 'sched/sched_process_exit';

/**
 * What the session enables to follow exits, when the kernel has the tracepoint: with a kernel-side
 * filter to the exit of a whole process where the event says so (its group_dead field, on newer kernels), so
 * every exiting thread on the machine costs no record. Null without the tracepoint.
 */
export function exitTracing(facts: TracefsFacts): { tracepoint: TracepointName; filter: string | null } | null {
  if (facts.root === null || !facts.availableEvents.has(EXIT_TRACEPOINT)) return null;
  let format = '';
  try {
    format = readCapped(join(facts.root, 'events', EXIT_TRACEPOINT, 'format'), 64 * 1024);
  } catch {
    // unreadable: no filter, every exit is recorded and the session picks whole-process ones
  }
  return { tracepoint: EXIT_TRACEPOINT, filter: /\bgroup_dead\b/.test(format) ? 'group_dead == 1' : null };
}

/** Reads what sources need to decide whether they can run. Throws nothing. */
export function tracefsFacts(mountinfo: string | null = tryRead(procPath('self', 'mountinfo'))): TracefsFacts {
  const root = mountinfo === null ? null : findTracefsRoot(mountinfo);
  if (root === null || !existsSync(join(root, 'instances'))) {
    return { root: root !== null && existsSync(root) ? root : null, availableEvents: new Set(), uprobes: false, kprobes: false, writable: false };
  }
  const events = tryRead(join(root, 'available_events'));
  const availableEvents = new Set((events ?? '').split('\n').filter(Boolean).map((line) => line.replace(':', '/')));
  let writable = events !== null;
  if (writable) {
    try {
      // Opening for write is the permission check tracefs really makes (root, or a granted group).
      closeSync(openSync(join(root, 'instances'), constants.O_RDONLY | constants.O_DIRECTORY));
      closeSync(openSync(join(root, 'dynamic_events'), constants.O_WRONLY | constants.O_APPEND | constants.O_NOFOLLOW));
    } catch {
      writable = false;
    }
  }
  return {
    root,
    availableEvents,
    uprobes: existsSync(join(root, 'uprobe_events')),
    kprobes: existsSync(join(root, 'kprobe_events')),
    writable,
  };
}

/**
 * The one-line reason tracing cannot start, as the error to throw: no tracefs mounted (exit 3,
 * unsupported, with the mount command) or no permission (exit 4). null when it can start.
 */
export function tracefsProblem(facts: TracefsFacts, euid: number): UnsupportedError | PermissionError | null {
  if (facts.root === null) {
    return new UnsupportedError(`tracefs is not mounted; mount it as root: ${MOUNT_HINT}`);
  }
  if (!facts.writable) {
    return euid === 0
      ? new PermissionError(`cannot write tracefs at ${facts.root} (locked down, or no instances/ support)`)
      : new PermissionError(`tracing needs root (CAP_SYS_ADMIN) to write tracefs at ${facts.root}; run rdmactl trace as root, e.g. with sudo`);
  }
  return null;
}

/**
 * Why no source can run, as a source's `why`: no tracefs, or no permission to write it. Checked
 * first by every source, because without permission tracefs's lists (available_events,
 * uprobe_events, kprobe_events) read as missing too, and "root" is then what is really missing.
 */
export function tracefsAccessReason(facts: TracefsFacts): string | null {
  if (facts.root === null) return `tracefs is not mounted (${MOUNT_HINT})`;
  if (!facts.writable) return 'tracefs is not writable by this user (run as root)';
  return null;
}

/** Start time of a process in clock ticks since boot (/proc/PID/stat field 22); null when it is gone. */
export function processStartTime(pid: number | 'self'): number | null {
  try {
    const start = readStat(pid)?.startTimeTicks;
    return start === undefined || !Number.isFinite(start) ? null : start;
  } catch {
    return null;
  }
}

/** `rdmactl-PID-START` → its pid and start time; null for any other name. */
export function parseInstanceName(name: string): { pid: number; start: number } | null {
  const m = /^rdmactl-(\d+)-(\d+)$/.exec(name);
  return m ? { pid: Number(m[1]), start: Number(m[2]) } : null;
}

/** Whether the run that made instance `name` is still alive (same pid, same start time). */
function instanceAlive(name: string): boolean {
  const parsed = parseInstanceName(name);
  return parsed !== null && processStartTime(parsed.pid) === parsed.start;
}

/** A dynamic_events line → its group and event (`p:rdmactl_12/ev PATH:0x10` → rdmactl_12, ev). */
export function parseDynamicEvent(line: string): { kind: string; group: string; event: string } | null {
  const m = /^([a-z]+):([A-Za-z0-9_.-]+)\/([A-Za-z0-9_.-]+)\s/.exec(`${line} `);
  return m ? { kind: m[1]!, group: m[2]!, event: m[3]! } : null;
}

export interface CleanupReport {
  instances: string[];
  probes: string[];
  /** What could not be removed, and why (one line each). */
  failed: string[];
}

/**
 * Removes what runs that are gone left behind: instances `rdmactl-PID-START` whose process is not
 * that run any more, then the probe groups `rdmactl_PID` that no live instance of that PID owns.
 * Instances go first: a probe enabled in a leftover instance cannot be deleted (EBUSY).
 */
export function cleanupStale(root: string): CleanupReport {
  const report: CleanupReport = { instances: [], probes: [], failed: [] };
  const alivePids = new Set<number>();
  let names: string[] = [];
  try {
    names = readdirSync(join(root, 'instances'));
  } catch (err) {
    report.failed.push(`cannot list ${join(root, 'instances')}: ${errorCode(err) ?? String(err)}`);
  }
  for (const name of names) {
    const parsed = parseInstanceName(name);
    if (parsed === null) continue;
    if (instanceAlive(name)) {
      alivePids.add(parsed.pid);
      continue;
    }
    try {
      removeInstanceDir(join(root, 'instances', name));
      report.instances.push(name);
    } catch (err) {
      report.failed.push(`instance ${name}: ${errorCode(err) ?? String(err)}`);
    }
  }
  for (const probe of listProbes(root)) {
    const pid = Number(probe.group.slice(GROUP_PREFIX.length));
    if (!probe.group.startsWith(GROUP_PREFIX) || !Number.isInteger(pid) || alivePids.has(pid)) continue;
    try {
      removeProbe(root, probe.group, probe.event);
      report.probes.push(`${probe.group}/${probe.event}`);
    } catch (err) {
      report.failed.push(`probe ${probe.group}/${probe.event}: ${errorCode(err) ?? String(err)}`);
    }
  }
  return report;
}

function listProbes(root: string): { group: string; event: string }[] {
  const text = tryRead(join(root, 'dynamic_events')) ?? '';
  return text.split('\n').map(parseDynamicEvent).filter((p): p is NonNullable<typeof p> => p !== null && p.group.startsWith(GROUP_PREFIX));
}

function removeProbe(root: string, group: string, event: string): void {
  writeControl(join(root, 'dynamic_events'), `-:${group}/${event}\n`, true);
}

/** rmdir of an instance: tracefs frees its buffer and disables its events. Retries EBUSY briefly (a reader closing). */
function removeInstanceDir(path: string): void {
  for (let attempt = 0; ; attempt++) {
    try {
      rmdirSync(path);
      return;
    } catch (err) {
      if (errorCode(err) === 'ENOENT') return;
      if (errorCode(err) !== 'EBUSY' || attempt >= 20) throw err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 25);
    }
  }
}

/** Lost-event counters of one CPU's buffer (per_cpu/cpuN/stats). */
export interface CpuLoss {
  cpu: number;
  /** Events overwritten before they were read (overwrite mode). */
  overrun: number;
  /** Events refused because the buffer was full (no-overwrite mode). */
  dropped: number;
  /** Events still in the buffer, not read yet. */
  entries: number;
}

/** Parses per_cpu/cpuN/stats (`overrun: 0`, `dropped events: 0`, ...). */
export function parseCpuStats(text: string): { overrun: number; dropped: number; entries: number } {
  const value = (key: string): number => {
    const m = new RegExp(`^${key}:\\s*(\\d+)`, 'm').exec(text);
    return m ? Number(m[1]) : 0;
  };
  return { overrun: value('overrun') + value('commit overrun'), dropped: value('dropped events'), entries: value('entries') };
}

export interface InstanceOptions {
  /** Per-CPU ring buffer size. */
  bufferKb: number;
  /** Tracepoints to enable (`system/event`). */
  tracepoints: readonly TracepointName[];
  /** Dynamic probes, created under this run's group and enabled in the instance only. */
  probes: readonly ProbeSpec[];
  /** Kernel-side filters (events/SYSTEM/EVENT/filter); one the kernel refuses is left out (userspace filters anyway). */
  filters?: Partial<Record<TracepointName, string>>;
}

/**
 * rdmactl's own tracefs instance and probe group, created together and removed together. Keeps an
 * fd on free_buffer with disable_on_free set: if rdmactl is killed, the kernel closes that fd,
 * which stops tracing and frees the buffer; the empty instance is removed by the next run or by
 * `rdmactl trace --cleanup`.
 */
export class TraceInstance {
  readonly root: string;
  readonly name: string;
  readonly dir: string;
  readonly group: string;
  private pipeFd: number | null = null;
  /** Reused between reads (a fresh megabyte each poll would be zeroed and collected for nothing). */
  private readBuffer: Buffer | null = null;
  private freeBufferFd: number | null = null;
  private readonly probeEvents: string[] = [];
  private removed = false;

  private constructor(root: string, name: string, group: string) {
    this.root = root;
    this.name = name;
    this.dir = join(root, 'instances', name);
    this.group = group;
  }

  /** Creates, configures and starts the instance; on any failure removes what it made, then throws. */
  static create(root: string, options: InstanceOptions): TraceInstance {
    const start = processStartTime('self');
    const name = `${INSTANCE_PREFIX}${process.pid}-${start ?? 0}`;
    const instance = new TraceInstance(root, name, `${GROUP_PREFIX}${process.pid}`);
    mkdirSync(instance.dir);
    try {
      instance.configure(options);
      return instance;
    } catch (err) {
      instance.remove();
      throw err;
    }
  }

  private control(file: string, value: string, append = false): void {
    writeControl(join(this.dir, file), value, append);
  }

  private configure(options: InstanceOptions): void {
    this.control('tracing_on', '0');
    this.control('buffer_size_kb', String(options.bufferKb));
    this.control('trace_clock', 'mono');
    this.control('options/record-tgid', '1');
    if (existsSync(join(this.dir, 'options/disable_on_free'))) this.control('options/disable_on_free', '1');
    this.freeBufferFd = openSync(join(this.dir, 'free_buffer'), constants.O_WRONLY | constants.O_NOFOLLOW);
    for (const probe of options.probes) {
      const prefix = { uprobe: 'p', uretprobe: 'r', kprobe: 'p', kretprobe: 'r' }[probe.kind];
      writeControl(join(this.root, 'dynamic_events'), `${prefix}:${this.group}/${probe.event} ${probe.target}\n`, true);
      this.probeEvents.push(probe.event);
    }
    for (const [tp, filter] of Object.entries(options.filters ?? {})) {
      if (filter === undefined) continue;
      try {
        this.control(`events/${tp}/filter`, filter);
      } catch {
        // an older kernel without the field: the event is still enabled, unfiltered
      }
    }
    for (const tp of options.tracepoints) this.control(`events/${tp}/enable`, '1');
    for (const event of this.probeEvents) this.control(`events/${this.group}/${event}/enable`, '1');
    this.pipeFd = openSync(join(this.dir, 'trace_pipe'), constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
    this.control('tracing_on', '1');
  }

  /**
   * What trace_pipe has now, up to `maxBytes`; empty when it has nothing (EAGAIN). Consumes what
   * it returns; a line (or a character) may be split between two reads, which the parser joins.
   */
  read(): Buffer {
    const maxBytes = READ_BYTES;
    if (this.pipeFd === null) return Buffer.alloc(0);
    const buffer = (this.readBuffer ??= Buffer.allocUnsafe(READ_BYTES));
    let total = 0;
    while (total < maxBytes) {
      let n: number;
      try {
        n = readSync(this.pipeFd, buffer, total, maxBytes - total, null);
      } catch (err) {
        const code = errorCode(err);
        if (code === 'EAGAIN') break;
        if (code === 'EINTR') continue;
        throw err;
      }
      if (n === 0) break;
      total += n;
    }
    return Buffer.from(buffer.subarray(0, total));
  }

  /**
   * Stops recording. trace_pipe then reads as at its end once anything was read from it, even with
   * events left in the buffer: drain it before stopping, and count what remains (losses().entries).
   */
  stop(): void {
    this.control('tracing_on', '0');
  }

  /** Events the kernel lost so far, per CPU (the instance is new, so these count only this run). */
  losses(): CpuLoss[] {
    let cpus: string[] = [];
    try {
      cpus = readdirSync(join(this.dir, 'per_cpu')).filter((d) => /^cpu\d+$/.test(d));
    } catch {
      return [];
    }
    return cpus.map((d) => {
      const text = tryRead(join(this.dir, 'per_cpu', d, 'stats')) ?? '';
      return { cpu: Number(d.slice(3)), ...parseCpuStats(text) };
    });
  }

  /** Stops tracing, closes the pipe, removes the instance and this run's probes. Idempotent; collects failures. */
  remove(): string[] {
    if (this.removed) return [];
    this.removed = true;
    const failed: string[] = [];
    const attempt = (what: string, op: () => void): void => {
      try {
        op();
      } catch (err) {
        failed.push(`${what}: ${errorCode(err) ?? String(err)}`);
      }
    };
    attempt('tracing_on', () => { if (existsSync(this.dir)) this.control('tracing_on', '0'); });
    if (this.pipeFd !== null) attempt('close trace_pipe', () => closeSync(this.pipeFd!));
    this.pipeFd = null;
    if (this.freeBufferFd !== null) attempt('close free_buffer', () => closeSync(this.freeBufferFd!));
    this.freeBufferFd = null;
    // rmdir disables the instance's events, after which its probes are no longer busy.
    attempt(`remove instance ${this.name}`, () => removeInstanceDir(this.dir));
    for (const event of this.probeEvents) attempt(`remove probe ${this.group}/${event}`, () => removeProbe(this.root, this.group, event));
    return failed;
  }
}
