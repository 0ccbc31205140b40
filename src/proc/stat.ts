// /proc/PID/stat: one line, "pid (comm) state ppid ...". comm is up to 15 bytes of anything,
// including spaces and ')', so the fields after it are found from the LAST ')' in the line.

import { procPath, readProcText, type ProcPid } from './procfs.js';

export interface ProcessStat {
  pid: number;
  comm: string;
  state: string;
  ppid: number;
  /** User and system CPU time, in clock ticks (sysconf(_SC_CLK_TCK), 100 on Linux). */
  utimeTicks: number;
  stimeTicks: number;
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
    utimeTicks: field(14),
    stimeTicks: field(15),
    startTimeTicks: field(22),
  };
}

/** Reads /proc/PID/stat (world-readable). null if the process is gone. */
export function readStat(pid: ProcPid): ProcessStat | null {
  const text = readProcText(procPath(pid, 'stat'));
  return text === null ? null : parseStat(text);
}
