// /proc/PID/limits: the process's RLIMIT_MEMLOCK as the kernel sees it, which is what
// mlock/ibv_reg_mr/io_uring registration are checked against (unless CAP_IPC_LOCK).
//
// Format (fs/proc/base.c): a header, then per limit "%-25s %-20s %-20s %-10s" with either a number
// or "unlimited" (RLIM_INFINITY). Limit names contain spaces, so parse by the fixed name column.

import { procPath, readProcText, type ProcPid } from './procfs.js';

export interface LimitValue {
  /** null = unlimited. Numbers above 2^53 lose precision (only absurd non-infinite limits do that). */
  soft: number | null;
  hard: number | null;
  /** "bytes", "seconds", ... ('' for counts such as "Max nice priority"). */
  units: string;
}

export interface ProcessLimits {
  /** "Max locked memory" in bytes, null = unlimited. null record if the line is missing. */
  lockedMemory: { softBytes: number | null; hardBytes: number | null } | null;
  /** Every limit by its name as printed, e.g. "Max open files". */
  all: Map<string, LimitValue>;
}

const NAME_COLUMN = 25;

function limitNumber(word: string | undefined): number | null {
  if (word === undefined || word === 'unlimited') return null;
  const n = Number(word);
  return Number.isFinite(n) ? n : null;
}

export function parseLimits(text: string): ProcessLimits {
  const all = new Map<string, LimitValue>();
  for (const line of text.split('\n')) {
    if (line.length <= NAME_COLUMN || line.startsWith('Limit ')) continue;
    const name = line.slice(0, NAME_COLUMN).trimEnd();
    const [soft, hard, units] = line.slice(NAME_COLUMN).trim().split(/\s+/);
    all.set(name, { soft: limitNumber(soft), hard: limitNumber(hard), units: units ?? '' });
  }
  const memlock = all.get('Max locked memory');
  return {
    lockedMemory: memlock ? { softBytes: memlock.soft, hardBytes: memlock.hard } : null,
    all,
  };
}

/** Reads /proc/PID/limits (mode 0444, readable for any process). null if the process is gone. */
export function readProcessLimits(pid: ProcPid): ProcessLimits | null {
  const text = readProcText(procPath(pid, 'limits'));
  return text === null ? null : parseLimits(text);
}
