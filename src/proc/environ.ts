// /proc/PID/environ: the environment a process was started with (NUL-separated NAME=value). It needs
// the ptrace access check (same user, or root), like smaps. Later setenv() calls inside the process
// do not show here: this is what the process was exec'd with, which is what libibverbs reads at start.

import { procPath, readProcText, type ProcPid } from './procfs.js';

/** NAME=value entries separated by NUL; entries without '=' are kept with an empty value. */
export function parseEnviron(text: string): Map<string, string> {
  const env = new Map<string, string>();
  for (const entry of text.split('\0')) {
    if (entry === '') continue;
    const eq = entry.indexOf('=');
    const name = eq < 0 ? entry : entry.slice(0, eq);
    if (!env.has(name)) env.set(name, eq < 0 ? '' : entry.slice(eq + 1));
  }
  return env;
}

/** null if the process is gone; throws ProcUnreadableError when not ours to read. */
export function readEnviron(pid: ProcPid): Map<string, string> | null {
  const text = readProcText(procPath(pid, 'environ'));
  return text === null ? null : parseEnviron(text);
}
