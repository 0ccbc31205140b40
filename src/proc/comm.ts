// /proc/PID/comm: the command name (at most 15 bytes, raw: unlike status's Name it is not escaped)
// and a newline. The cheapest file that names a process: completion lists every pid with it.

import { procPath, readProcText, type ProcPid } from './procfs.js';

/** The name in /proc/PID/comm text (only the final newline is the kernel's; a name may hold one). */
export function parseComm(text: string): string {
  return text.endsWith('\n') ? text.slice(0, -1) : text;
}

/** Reads /proc/PID/comm. null if the process is gone. */
export function readComm(pid: ProcPid): string | null {
  const text = readProcText(procPath(pid, 'comm'));
  return text === null ? null : parseComm(text);
}
