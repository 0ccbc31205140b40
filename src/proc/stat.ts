// /proc/PID/stat: one line, "pid (comm) state ppid ...". comm is up to 15 bytes of anything,
// including spaces and ')', so the fields after it are found from the LAST ')' in the line.

import { readdirSync } from 'node:fs';
import { PROC_ROOT, procPath, procTry, readProcText, type ProcPid } from './procfs.js';

export interface ProcessStat {
  pid: number;
  comm: string;
  state: string;
  ppid: number;
  /** Per-process flags (PF_*; PF_EXITING 0x4: the process is exiting, its memory may already be gone). */
  flags: number;
  /** User and system CPU time, in clock ticks (sysconf(_SC_CLK_TCK), 100 on Linux). */
  utimeTicks: number;
  stimeTicks: number;
  /** Threads of the process (num_threads); a dead process's unreaped leader counts itself. */
  threads: number;
  /** Start time after boot, in clock ticks: with pid, identifies a process across pid reuse. */
  startTimeTicks: number;
}

/** Parses /proc/PID/stat text; throws on text without "(comm)". */
export function parseStat(text: string): ProcessStat {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open) throw new Error(`malformed /proc/PID/stat: ${text.slice(0, 80)}`);
  // After ") ": field 3 (state) is rest[0]; field N is rest[N - 3].
  const rest = text.slice(close + 2).trim().split(' ');
  const field = (n: number): number => Number(rest[n - 3] ?? Number.NaN);
  return {
    pid: Number.parseInt(text.slice(0, open), 10),
    comm: text.slice(open + 1, close),
    state: rest[0] ?? '?',
    ppid: field(4),
    flags: field(9),
    utimeTicks: field(14),
    stimeTicks: field(15),
    threads: field(20),
    startTimeTicks: field(22),
  };
}

/** Reads /proc/PID/stat (world-readable). null if the process is gone. */
export function readStat(pid: ProcPid): ProcessStat | null {
  const text = readProcText(procPath(pid, 'stat'));
  return text === null ? null : parseStat(text);
}

/**
 * Whether the process behind a pid has ended, from its leader's stat and (when the leader is a
 * zombie) its other threads' stats: gone from /proc; a zombie leader alone; or a zombie leader whose
 * other threads are all gone or exiting (the last of them is on its way out). A zombie leader with a
 * running thread is a live process: its main thread called pthread_exit.
 */
export function processEnded(leader: ProcessStat | null, otherThreads: readonly (ProcessStat | null)[] = []): boolean {
  if (leader === null) return true;
  if (leader.state !== 'Z' && leader.state !== 'X') return false;
  if (leader.threads <= 1) return true;
  return otherThreads.every((thread) => thread === null || (thread.flags & PF_EXITING) !== 0);
}

/** processEnded for a pid, read from /proc (its task directory only when the leader is a zombie). */
export function readProcessEnded(pid: number): boolean {
  const leader = readStat(pid);
  if (leader === null || (leader.state !== 'Z' && leader.state !== 'X') || leader.threads <= 1) return processEnded(leader);
  const tids = procTry(`${PROC_ROOT}/${pid}/task`, () => readdirSync(`${PROC_ROOT}/${pid}/task`)) ?? [];
  const others = tids.filter((tid) => tid !== String(pid)).map((tid) => {
    const text = readProcText(`${PROC_ROOT}/${pid}/task/${tid}/stat`);
    return text === null ? null : parseStat(text);
  });
  return processEnded(leader, others);
}

/** A process that is exiting: PF_EXITING in stat's flags (its memory may already be released, its cmdline empty). */
export const PF_EXITING = 0x4;

/** /proc/stat's btime: when the machine booted, in seconds since the epoch; null when unreadable. */
export function readBootTimeSeconds(): number | null {
  const text = readProcText(`${PROC_ROOT}/stat`);
  const match = text === null ? null : /^btime (\d+)$/m.exec(text);
  return match ? Number(match[1]) : null;
}

/** USER_HZ, the unit of stat's times: 100 on every Linux architecture Node runs on. */
export const CLOCK_TICKS_PER_SECOND = 100;
