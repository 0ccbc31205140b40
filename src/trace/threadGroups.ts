// Which process a traced thread belongs to. trace_pipe prints a tgid column (record-tgid), but the
// kernel fills the cache behind it only at a context switch after an event: the first events of a
// task can read as `-------` (unknown) or, once the pid space has wrapped, as the tgid of the task
// that had the number before (seen: a new process's first two io_uring registrations printed with
// the tgid of a process long gone, so a --pid filter dropped them). While the thread lives,
// /proc/TID/status says the truth; the column is used only when the thread is gone.

import { readStatus } from '../proc/status.js';
import type { TraceLine } from './types.js';

/** Threads remembered at most; past it the map starts again (each entry costs one /proc read to refill). */
const MAX_THREADS = 65_536;

/** The tgid of a live thread, or null when it is gone or unreadable. */
export type TgidReader = (tid: number) => number | null;

function readTgid(tid: number): number | null {
  try {
    const tgid = readStatus(tid)?.tgid ?? null;
    return tgid !== null && tgid > 0 ? tgid : null;
  } catch {
    return null;
  }
}

export class ThreadGroups {
  private readonly tgidByTid = new Map<number, number>();

  constructor(private readonly read: TgidReader = readTgid) {}

  /**
   * The line with the tgid of its thread. A thread seen before keeps its answer while the kernel's
   * column agrees or says nothing; a new thread, or a column that disagrees, is read from /proc.
   */
  resolve(line: TraceLine): TraceLine {
    const known = this.tgidByTid.get(line.tid);
    if (known !== undefined && (line.tgid === null || line.tgid === known)) return line.tgid === known ? line : { ...line, tgid: known };
    const read = this.read(line.tid);
    if (read === null) return line; // gone: the kernel's column is all there is
    if (this.tgidByTid.size >= MAX_THREADS) this.tgidByTid.clear();
    this.tgidByTid.set(line.tid, read);
    return read === line.tgid ? line : { ...line, tgid: read };
  }

  /** A whole process ended: its threads' numbers may be reused by other tasks. */
  forgetProcess(tgid: number): void {
    for (const [tid, owner] of this.tgidByTid) if (owner === tgid) this.tgidByTid.delete(tid);
  }
}
