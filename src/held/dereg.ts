// Releasing held registrations: find each record, verify its holder (pid + start time + token + uid),
// SIGTERM it, and wait until the holder process is gone.
//
// What "released" means here: the holder process has exited (or is a zombie, which has no memory
// map left). Pins (VmPin) and locks (VmLck) belong to the process's mm, so a process without an mm
// holds none: the holder's VmPin/VmLck at the moment it was signalled are reported, and the exit is
// what is verified. The holder removes its own record after releasing (recordRemovedByHolder); if it
// died without doing so, dereg removes the record.
//
// The signal goes through a pidfd (pidfd_open + pidfd_send_signal) opened before the final identity
// check, so the pid cannot be reused between checking and signalling; kernels without pidfds fall
// back to kill(2).

import { closeSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { SIGTERM, pidfdOpen, pidfdSendSignal } from '../ffi/libc.js';
import { SyscallError } from '../lib/errno.js';
import { EXIT, type ExitCode } from '../lib/errors.js';
import { readStat } from '../proc/stat.js';
import { readStatus } from '../proc/status.js';
import {
  existingRuntimeDir, findHolderProcesses, identifyHolder, isHeldId, listHeld, lockHeld, lockRuntimeDir, readHeld, readReleased, recordFromHolder, removeHeld,
  verifyHolder, wasReleased,
  type HeldRecord, type HolderCheck, type HolderProcess, type StoreOptions,
} from './store.js';

/**
 *   released       the holder was signalled and exited; nothing it pinned or locked remains
 *   stale-removed  the holder had already exited (or its pid belongs to another process now): record removed, nothing signalled
 *   already-released  no record and no holder, but a release of this id finished in the last ten minutes
 *                  (another dereg, or --for, got there first): what was asked is done
 *   not-found      no record and no running holder with this id (or the pid is not a holder)
 *   not-holder     the pid is alive but is not an rdmactl holder with the record's token: not signalled, record removed
 *   other-user     the holder belongs to another user: not signalled, record kept
 *   timeout        signalled, but still running when the timeout passed: record kept
 *   failed         the signal could not be sent
 */
export type DeregStatus = 'released' | 'stale-removed' | 'already-released' | 'not-found' | 'not-holder' | 'other-user' | 'timeout' | 'failed';

export interface DeregResult {
  id: string;
  /** The holder's pid from the record; null when there is no record. */
  pid: number | null;
  status: DeregStatus;
  /** 0 when the registration is verified gone; else the exit code this result calls for. */
  exitCode: ExitCode;
  /** One line for people. */
  message: string;
  signalled: boolean;
  /** The holder's VmPin and VmLck just before it was signalled (null when not signalled). */
  pinnedBytesHeld: number | null;
  lockedBytesHeld: number | null;
  /** The holder process was seen gone (exited, or a zombie with no memory). */
  holderExited: boolean;
  /** True when the holder removed its own record (it ran its release path); false when dereg removed it; null when not applicable. */
  recordRemovedByHolder: boolean | null;
  /** Milliseconds from the signal to the holder's exit. */
  releaseMillis: number | null;
}

export interface DeregOptions extends StoreOptions {
  /** How long to wait for each holder to exit after SIGTERM (default 10 s). */
  timeoutMillis?: number;
  /** Poll interval while waiting (default 20 ms). */
  pollMillis?: number;
}

export const DEFAULT_DEREG_TIMEOUT_MILLIS = 10_000;


function result(id: string, pid: number | null, status: DeregStatus, exitCode: ExitCode, message: string): DeregResult {
  return {
    id, pid, status, exitCode, message, signalled: false, pinnedBytesHeld: null, lockedBytesHeld: null,
    holderExited: false, recordRemovedByHolder: null, releaseMillis: null,
  };
}

/** The result for a record whose holder is not a live holder of ours (no signal is sent). Says only what this dereg did. */
function refusal(record: HeldRecord, check: HolderCheck, options: StoreOptions): DeregResult {
  switch (check.problem) {
    case 'exited':
    case 'pid-reused': {
      if (!removeHeld(record.id, options, { tombstone: true })) {
        // No record (anymore): its holder released it, or another dereg removed it first.
        const r = result(record.id, record.pid, 'already-released', EXIT.OK, `${record.id}: already released: ${check.reason}; nothing signalled, nothing to remove`);
        return { ...r, holderExited: true };
      }
      const r = result(record.id, record.pid, 'stale-removed', EXIT.OK, `${record.id}: stale record removed, nothing signalled: ${check.reason}`);
      return { ...r, holderExited: true, recordRemovedByHolder: false };
    }
    case 'not-holder': {
      const removed = removeHeld(record.id, options);
      return result(record.id, record.pid, 'not-holder', EXIT.FAILURE, `${record.id}: not signalled: ${check.reason}${removed ? '; stale record removed' : ''}`);
    }
    case 'other-user':
    default:
      return result(record.id, record.pid, 'other-user', EXIT.PERMISSION, `${record.id}: permission denied: ${check.reason ?? 'not your holder'}`);
  }
}

function openPidfd(pid: number): number | null {
  try {
    return pidfdOpen(pid);
  } catch (err) {
    if (err instanceof SyscallError && (err.errnoName === 'ENOSYS' || err.errnoName === 'EINVAL')) return null; // no pidfds: use kill(2)
    throw err; // ESRCH: gone, handled by the caller's re-check
  }
}

/**
 * Re-verifies the holder with the process pinned by a pidfd, then sends SIGTERM.
 * Returns null when signalled, else the check that failed.
 */
function signalHolder(record: HeldRecord): HolderCheck | null {
  let pidfd: number | null;
  try {
    pidfd = openPidfd(record.pid);
  } catch (err) {
    if (err instanceof SyscallError && err.errnoName === 'ESRCH') return { state: 'stale', problem: 'exited', reason: `holder pid ${record.pid} has exited` };
    throw err;
  }
  try {
    const check = verifyHolder(record);
    if (check.state !== 'live' || check.problem !== null) return check;
    try {
      if (pidfd !== null) pidfdSendSignal(pidfd, SIGTERM);
      else process.kill(record.pid, 'SIGTERM');
    } catch (err) {
      // It exited (and was reaped) between the check and the signal.
      if ((err instanceof SyscallError ? err.errnoName : (err as { code?: string }).code) === 'ESRCH') return { state: 'stale', problem: 'exited', reason: `holder pid ${record.pid} has exited` };
      throw err;
    }
    return null;
  } finally {
    if (pidfd !== null) closeSync(pidfd);
  }
}

/** Gone: no such process, a zombie (no mm: nothing pinned or locked), or the pid belongs to a newer process. */
function holderGone(record: HeldRecord): boolean {
  const stat = readStat(record.pid);
  return stat === null || stat.state === 'Z' || stat.state === 'X' || stat.startTimeTicks !== record.startTime;
}

interface Pending {
  record: HeldRecord;
  result: DeregResult;
  signalledAt: number;
}

/** A target another rdmactl is releasing (it holds the lock, or the holder already removed its record): wait for the holder to go. */
interface Watched {
  record: HeldRecord;
  result: DeregResult;
  since: number;
}

/**
 * What each target names: a record (read from the store), a running holder without a readable record
 * (found by its process name and the id in its token), or a result saying why there is nothing to release.
 * A target is an id (8 hex digits) or a holder's pid (decimal; pids have at most 7 digits).
 */
function resolveTargets(targets: readonly string[], options: StoreOptions): Array<HeldRecord | { missing: DeregResult }> {
  let holders: HolderProcess[] | null = null;
  const running = (): HolderProcess[] => (holders ??= findHolderProcesses());
  return targets.map((target) => {
    if (isHeldId(target)) {
      const record = readHeld(target, options) ?? running().map(recordFromHolder).find((r) => r.id === target);
      if (record) return record;
      // (A holder that is releasing has renamed its record to the tombstone: the lock step below sees it.)
      if (wasReleased(target, options)) {
        const r = result(target, null, 'already-released', EXIT.OK, `${target}: already released (by another dereg, or its --for deadline)`);
        return { missing: { ...r, holderExited: true } };
      }
      return { missing: result(target, null, 'not-found', EXIT.USAGE, `${target}: no held registration with this id`) };
    }
    if (/^\d{1,7}$/.test(target) && Number(target) > 0) {
      const pid = Number(target);
      const holder = identifyHolder(pid);
      if (holder === null) return { missing: result(target, pid, 'not-found', EXIT.USAGE, `pid ${pid} is not an rdmactl holder (see holders with \`rdmactl ls --source held\`)`) };
      const record = readHeld(holder.id, options);
      return record !== null && record.pid === pid ? record : recordFromHolder(holder);
    }
    return { missing: result(target, null, 'not-found', EXIT.USAGE, `${target}: not a held-registration id (8 hex digits) or a holder's pid`) };
  });
}

/**
 * Releases the registrations with these ids or holder pids (or every one, with 'all'): one result per target,
 * in order. Throws only when the store directory is unsafe or unusable (PermissionError, RdmactlError).
 *
 * Of several deregs racing for one registration exactly one signals its holder and says `released`; each
 * takes the registration's lock first (lockHeld), and one that finds it taken, or finds the record
 * already renamed to its tombstone by a holder that is releasing, waits for the holder to exit and says
 * `already-released` (it takes over if the lock comes free while the holder still runs).
 */
export async function deregister(ids: readonly string[] | 'all', options: DeregOptions = {}): Promise<DeregResult[]> {
  const timeoutMillis = options.timeoutMillis ?? DEFAULT_DEREG_TIMEOUT_MILLIS;
  const pollMillis = options.pollMillis ?? 20;
  existingRuntimeDir(options); // refuse an unsafe directory before doing anything
  const records = ids === 'all' ? listHeld(options) : resolveTargets([...new Set(ids)], options);
  const results: DeregResult[] = [];
  const pending: Pending[] = [];
  let watched: Watched[] = [];
  const locks: Array<() => void> = [];
  let dirLock: 'held' | 'busy' | null = null;

  /** Takes the right to release `record`: 'mine', 'busy' (another dereg has it), or 'released' (the holder is releasing or gone). */
  const claim = (record: HeldRecord): 'mine' | 'busy' | 'released' => {
    const lock = lockHeld(record.id, options);
    if (lock.state === 'held') {
      locks.push(lock.release);
      return 'mine';
    }
    if (lock.state === 'busy') return 'busy';
    const tombstone = readReleased(record.id, options);
    if (tombstone !== null && tombstone.pid === record.pid && tombstone.startTime === record.startTime) return 'released';
    // A holder without a record: the runtime directory is the lock (held once for this whole call).
    if (dirLock === null || dirLock === 'busy') {
      const lock = lockRuntimeDir(options);
      if (lock.state === 'held') locks.push(lock.release);
      dirLock = lock.state === 'held' ? 'held' : 'busy';
    }
    return dirLock === 'held' ? 'mine' : 'busy';
  };

  /** With the right to release it: check the holder again and signal it (or say why not). */
  const release = (record: HeldRecord, r: DeregResult): void => {
    const check = verifyHolder(record);
    if (check.state !== 'live' || check.problem !== null) {
      Object.assign(r, refusal(record, check, options));
      return;
    }
    const status = readStatus(record.pid);
    let failed: HolderCheck | null;
    try {
      failed = signalHolder(record);
    } catch (err) {
      const code = err instanceof SyscallError ? err.errnoName : (err as { code?: string }).code ?? String(err);
      const exitCode = code === 'EPERM' || code === 'EACCES' ? EXIT.PERMISSION : EXIT.FAILURE;
      Object.assign(r, result(record.id, record.pid, 'failed', exitCode, `${record.id}: cannot signal holder pid ${record.pid}: ${code}`));
      return;
    }
    if (failed !== null) {
      Object.assign(r, refusal(record, failed, options));
      return;
    }
    Object.assign(r, { signalled: true, pinnedBytesHeld: status?.pinnedBytes ?? null, lockedBytesHeld: status?.lockedBytes ?? null });
    pending.push({ record, result: r, signalledAt: Date.now() });
  };

  try {
    for (const record of records) {
      if ('missing' in record) {
        results.push(record.missing);
        continue;
      }
      const r = result(record.id, record.pid, 'timeout', EXIT.FAILURE, '');
      results.push(r);
      const claimed = claim(record);
      if (claimed === 'mine') release(record, r);
      else watched.push({ record, result: r, since: Date.now() });
    }
    let waiting = pending.splice(0);
    while (waiting.length > 0 || watched.length > 0) {
      const still: Pending[] = [];
      for (const p of waiting) {
        if (holderGone(p.record)) {
          const removedByUs = removeHeld(p.record.id, options, { tombstone: true });
          Object.assign(p.result, {
            status: 'released',
            exitCode: EXIT.OK,
            holderExited: true,
            recordRemovedByHolder: !removedByUs,
            releaseMillis: Date.now() - p.signalledAt,
            message: `${p.record.id}: released: holder pid ${p.record.pid} exited after SIGTERM${removedByUs ? ' without removing its record (removed now)' : ''}`,
          } satisfies Partial<DeregResult>);
        } else if (Date.now() - p.signalledAt >= timeoutMillis) {
          p.result.message = `${p.record.id}: holder pid ${p.record.pid} was sent SIGTERM but is still running after ${timeoutMillis / 1000} s; record kept (try again, or kill -KILL ${p.record.pid})`;
        } else {
          still.push(p);
        }
      }
      const stillWatched: Watched[] = [];
      for (const w of watched) {
        if (holderGone(w.record)) {
          Object.assign(w.result, {
            ...result(w.record.id, w.record.pid, 'already-released', EXIT.OK, `${w.record.id}: already released: another dereg (or the holder's own --for deadline or a signal) released it; holder pid ${w.record.pid} exited`),
            holderExited: true,
          } satisfies DeregResult);
        } else if (claim(w.record) === 'mine') {
          release(w.record, w.result); // the dereg that had it gave up (or died): ours now
        } else if (Date.now() - w.since >= timeoutMillis) {
          w.result.message = `${w.record.id}: another rdmactl is releasing it, but holder pid ${w.record.pid} is still running after ${timeoutMillis / 1000} s (try again, or kill -KILL ${w.record.pid})`;
        } else {
          stillWatched.push(w);
        }
      }
      watched = stillWatched;
      waiting = [...still, ...pending.splice(0)];
      if (waiting.length > 0 || watched.length > 0) await sleep(pollMillis);
    }
  } finally {
    for (const unlock of locks) unlock();
  }
  return results;
}

/** The exit code for a set of results: 0 when all succeeded, else the highest code among the failures. */
export function deregExitCode(results: readonly DeregResult[]): ExitCode {
  return results.reduce<ExitCode>((worst, r) => (r.exitCode > worst ? r.exitCode : worst), EXIT.OK);
}
