// /proc/loadavg's last two fields: the number of threads on the machine and the most recently
// allocated pid (in the reader's pid namespace). While both stand still no process was created and
// none was reaped, so the list of /proc's pid directories is what it was — a 2,000-entry readdir of
// /proc saved on a quiet refresh.

import { readProcText, PROC_ROOT } from './procfs.js';

export interface TaskCounters {
  threads: number;
  lastPid: number;
}

/** "0.20 0.18 0.12 1/80 11206" → { threads: 80, lastPid: 11206 }; null if the line does not look like that. */
export function parseTaskCounters(loadavgText: string): TaskCounters | null {
  const match = /^\S+ \S+ \S+ \d+\/(\d+) (\d+)\s*$/.exec(loadavgText);
  return match ? { threads: Number(match[1]), lastPid: Number(match[2]) } : null;
}

export function readTaskCounters(): TaskCounters | null {
  const text = readProcText(`${PROC_ROOT}/loadavg`);
  return text === null ? null : parseTaskCounters(text);
}
