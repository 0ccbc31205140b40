// /proc/PID/status: identity, owner, and the per-mm memory counters that matter here
// (VmLck = mm->locked_vm from mlock, VmPin = mm->pinned_vm from long-term pins such as RDMA MRs
// and io_uring fixed buffers).

import { procFieldText, kbFieldBytes, parseDecimalAt, procPath, readProcText, type ProcPid } from './procfs.js';

export interface ProcessStatus {
  /** Command name (comm, at most 15 bytes), with the kernel's escapes (\n, \t, \\) undone. */
  name: string;
  /** One-letter state: R, S, D, Z, T, t, X, I. '?' when missing. */
  state: string;
  pid: number;
  /** Thread group id: the process this task belongs to (equal to pid for a process, not for a thread). */
  tgid: number;
  ppid: number;
  /** Real and effective uid/gid. */
  uid: number;
  euid: number;
  gid: number;
  egid: number;
  threads: number;
  /**
   * False when the status has no Vm* lines: kernel threads and zombies have no mm. Then the byte
   * counters below are 0. (VmPin exists since Linux 3.2, older than any kernel Node supports, so on
   * a process with an mm a missing counter is also reported as 0.)
   */
  hasMm: boolean;
  /** True for kernel threads: `Kthread: 1` on kernels that print it (6.x), else no mm, not a zombie, and a child of kthreadd (pid 2) or kthreadd itself. */
  isKernelThread: boolean;
  /** VmLck: mlocked bytes. */
  lockedBytes: number;
  /** VmPin: long-term pinned bytes (RDMA MRs, io_uring fixed buffers, ...). */
  pinnedBytes: number;
  /** VmRSS: resident bytes. */
  rssBytes: number;
  /**
   * NSpid: the pid in each pid namespace the process is in, outermost first (so the last one is
   * the pid a container sees). [pid] on kernels before 4.1 or outside any nested namespace.
   */
  nsPids: number[];
}

/** Undoes the escaping the kernel applies to the Name: line (seq_escape_str with "\n\\" and ESCAPE_SPACE). */
export function unescapeProcName(raw: string): string {
  if (!raw.includes('\\')) return raw;
  return raw.replace(/\\(n|t|\\|v|f|r|[0-7]{3})/g, (_, esc: string) => {
    switch (esc) {
      case 'n': return '\n';
      case 't': return '\t';
      case 'v': return '\v';
      case 'f': return '\f';
      case 'r': return '\r';
      case '\\': return '\\';
      default: return String.fromCharCode(parseInt(esc, 8));
    }
  });
}

function idPair(text: string, key: string): [number, number] {
  const value = procFieldText(text, key);
  if (value === null) return [-1, -1];
  const real = parseDecimalAt(value, 0);
  const tab = value.indexOf('\t');
  const effective = tab < 0 ? real : parseDecimalAt(value, tab + 1);
  return [Number.isNaN(real) ? -1 : real, Number.isNaN(effective) ? -1 : effective];
}

function intField(text: string, key: string, missing: number): number {
  const value = procFieldText(text, key);
  if (value === null) return missing;
  const n = parseDecimalAt(value, 0);
  return Number.isNaN(n) ? missing : n;
}

function nsPidList(value: string | null, pid: number): number[] {
  if (value === null) return [pid];
  const pids = value.split(/\s+/).filter(Boolean).map(Number).filter(Number.isInteger);
  return pids.length > 0 ? pids : [pid];
}

/** Parses /proc/PID/status text. Ids are -1 if absent (never seen in practice). */
export function parseStatus(text: string): ProcessStatus {
  const nameRaw = procFieldText(text, 'Name') ?? '';
  const stateText = procFieldText(text, 'State');
  const state = stateText && stateText.length > 0 ? stateText[0]! : '?';
  const pid = intField(text, 'Pid', -1);
  const tgid = intField(text, 'Tgid', pid);
  const ppid = intField(text, 'PPid', -1);
  const [uid, euid] = idPair(text, 'Uid');
  const [gid, egid] = idPair(text, 'Gid');
  const locked = kbFieldBytes(text, 'VmLck');
  const pinned = kbFieldBytes(text, 'VmPin');
  const rss = kbFieldBytes(text, 'VmRSS');
  const hasMm = text.includes('\nVmSize:') || locked !== null || rss !== null;
  const kthreadFlag = procFieldText(text, 'Kthread');
  const isKernelThread =
    kthreadFlag !== null ? kthreadFlag.startsWith('1') : !hasMm && state !== 'Z' && state !== 'X' && (ppid === 2 || pid === 2);
  return {
    name: unescapeProcName(nameRaw),
    state,
    pid,
    tgid,
    ppid,
    uid,
    euid,
    gid,
    egid,
    threads: intField(text, 'Threads', 0),
    hasMm,
    isKernelThread,
    lockedBytes: locked ?? 0,
    pinnedBytes: pinned ?? 0,
    rssBytes: rss ?? 0,
    nsPids: nsPidList(procFieldText(text, 'NSpid'), pid),
  };
}

/** Reads /proc/PID/status. null if the process is gone; throws ProcUnreadableError on EACCES/EPERM. */
export function readStatus(pid: ProcPid): ProcessStatus | null {
  const text = readProcText(procPath(pid, 'status'));
  return text === null ? null : parseStatus(text);
}

// Capability numbers (linux/capability.h) rdmactl asks about.
/** open(2) ignores a file's mode. */
export const CAP_DAC_OVERRIDE = 1;
export const CAP_IPC_LOCK = 14;
export const CAP_SYS_ADMIN = 21;

/** A capability mask of status text (`CapEff:`, `CapBnd:`, … in hex); null when the line is absent. */
export function parseCapMask(statusText: string, key: string): bigint | null {
  const match = new RegExp(`^${key}:\\s*([0-9a-fA-F]+)$`, 'm').exec(statusText);
  return match ? BigInt(`0x${match[1]}`) : null;
}

/** Whether capability `cap` is in `mask`. */
export function hasCapabilityBit(mask: bigint, cap: number): boolean {
  return ((mask >> BigInt(cap)) & 1n) === 1n;
}

/** Whether the process whose /proc/PID/status this is may exceed RLIMIT_MEMLOCK (CAP_IPC_LOCK effective: counted, not checked). */
export function statusHasIpcLock(statusText: string): boolean {
  return hasCapabilityBit(parseCapMask(statusText, 'CapEff') ?? 0n, CAP_IPC_LOCK);
}

/** A task id as the user gave it, resolved to the process it belongs to. */
export interface ResolvedPid {
  pid: number;
  /** The thread id given, when it was a thread of `pid` rather than the process itself. */
  threadId: number | null;
}

/**
 * Maps thread ids to their process (/proc/TID/status exists for threads too, but shows the whole mm's
 * memory, so a thread counted as a process would count that memory twice). A pid that does not exist
 * is kept as given: the caller reports it.
 */
export function resolveProcessIds(pids: readonly number[]): ResolvedPid[] {
  const out: ResolvedPid[] = [];
  for (const given of pids) {
    let tgid = given;
    try {
      const status = readStatus(given);
      if (status !== null && status.tgid > 0) tgid = status.tgid;
    } catch {
      // unreadable: keep as given, the caller's read reports it
    }
    out.push({ pid: tgid, threadId: tgid === given ? null : given });
  }
  return out;
}
