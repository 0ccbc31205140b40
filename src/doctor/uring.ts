// uring.*: whether io_uring may be used at all (kernel.io_uring_disabled / io_uring_group), and the
// per-user charge: io_uring checks RLIMIT_MEMLOCK against the *user's* locked_vm, the sum over every
// process of that uid, so one process's limit can be exhausted by another's buffers.

import { formatBytes, roundUp } from '../lib/size.js';
import { readSysctlInt } from '../proc/sysctl.js';
import { listPids } from '../proc/procfs.js';
import { parseStatus, statusHasIpcLock } from '../proc/status.js';
import { procPath, readProcText } from '../proc/procfs.js';
import { readUringInstances, type UringInstance } from '../proc/uringFdinfo.js';
import { ProcUnreadableError } from '../proc/procfs.js';
import { ringChargeProbe } from '../engine/ringCharge.js';
import { raiseMemlockFixes } from './memlock.js';
import { limitText, requestChargeBytes } from './request.js';
import { CAP_IPC_LOCK, CAP_SYS_ADMIN, hasCapability } from './target.js';
import { finding, type DoctorContext, type Finding } from './types.js';

export function uringDisabled(ctx: DoctorContext): Finding {
  const disabled = readSysctlInt('kernel.io_uring_disabled');
  const group = readSysctlInt('kernel.io_uring_group');
  const evidence = { ioUringDisabled: disabled, ioUringGroup: group, file: '/proc/sys/kernel/io_uring_disabled' };
  const id = 'uring.disabled';
  const asked = ctx.request.backend === 'uring';
  if (disabled === null || disabled === 0) return finding(id, 'ok', disabled === null ? 'this kernel has no kernel.io_uring_disabled (io_uring is allowed)' : 'io_uring is allowed for everyone (kernel.io_uring_disabled = 0)', evidence);
  const { target } = ctx;
  const admin = hasCapability(target, CAP_SYS_ADMIN);
  if (disabled === 1) {
    const inGroup = group !== null && group >= 0 && (target.status.gid === group || target.status.egid === group || target.groups.includes(group));
    if (admin || inGroup) return finding(id, 'ok', `io_uring is limited to ${group !== null && group >= 0 ? `group ${group}` : 'CAP_SYS_ADMIN'} (kernel.io_uring_disabled = 1) and this process qualifies`, evidence);
    return finding(id, asked ? 'fail' : 'warn', `io_uring_setup fails with EPERM for this process: kernel.io_uring_disabled = 1 and it is not in kernel.io_uring_group (${group}) nor CAP_SYS_ADMIN`, evidence, [
      group !== null && group >= 0 ? `add the user to group ${group} and log in again` : 'sysctl -w kernel.io_uring_group=GID, then add the user to that group',
      'or, machine-wide: sysctl -w kernel.io_uring_disabled=0',
    ]);
  }
  return finding(id, asked ? 'fail' : 'warn', `io_uring is disabled machine-wide (kernel.io_uring_disabled = ${disabled}): io_uring_setup fails with EPERM`, evidence, [
    'sysctl -w kernel.io_uring_disabled=0 (persist it in /etc/sysctl.d/), or register with verbs or mlock instead',
  ]);
}

/**
 * Whether the running kernel charges each ring's own pages too (5.10 and 6.15+ do, 6.1 does not):
 * asked of the kernel (engine/ringCharge.ts). When it cannot tell (io_uring refused for another
 * reason, reported by uring.disabled), the pages are counted: a prediction then errs toward refusal.
 */
export function ringsCharged(): boolean {
  return ringChargeProbe().charged ?? true;
}

/** Pages of a ring's memory: the rings (192-byte header, 16-byte CQEs, the SQ index array) and the SQEs. */
export function ringBytes(sqEntries: number, cqEntries: number, pageBytes: number): number {
  return roundUp(192 + cqEntries * 16 + sqEntries * 4, pageBytes) + roundUp(sqEntries * 64, pageBytes);
}

/** Bytes io_uring charged for one ring's buffers: every page each buffer touches, counted per buffer. */
export function bufferChargeBytes(instance: UringInstance, pageBytes: number): number {
  let total = 0;
  const page = BigInt(pageBytes);
  for (const b of instance.fdinfo.buffers) {
    const start = (b.address / page) * page;
    const end = ((b.address + BigInt(b.lengthBytes) + page - 1n) / page) * page;
    total += Number(end - start);
  }
  return total;
}

export interface UringHolder {
  pid: number;
  comm: string;
  rings: number;
  buffers: number;
  bufferBytes: number;
  ringBytes: number;
}

export interface UserUringCharge {
  uid: number;
  holders: UringHolder[];
  /** Processes of the user whose fds we could not read (their charge is unknown). */
  unreadablePids: number[];
  totalBytes: number;
}

/** The user's io_uring charge: every process of uid with io_uring fds, read from fdinfo. */
export function readUserUringCharge(uid: number, pageBytes: number, withRings: boolean): UserUringCharge {
  const holders: UringHolder[] = [];
  const unreadablePids: number[] = [];
  for (const pid of listPids()) {
    let status;
    let instances;
    try {
      const statusText = readProcText(procPath(pid, 'status'));
      status = statusText === null ? null : parseStatus(statusText);
      if (status === null || status.uid !== uid || !status.hasMm) continue;
      // io_uring charges the user only for rings created without CAP_IPC_LOCK (the kernel sets
      // ctx->user only then). The capability at creation is not visible later; the one the process has
      // now is the best evidence, and a holder started with CAP_IPC_LOCK charges nothing.
      if (statusHasIpcLock(statusText!)) continue;
      instances = readUringInstances(pid);
    } catch (err) {
      if (err instanceof ProcUnreadableError) {
        unreadablePids.push(pid);
        continue;
      }
      throw err;
    }
    if (instances === null || instances.length === 0) continue;
    let bufferBytes = 0;
    let rings = 0;
    let buffers = 0;
    for (const instance of instances) {
      bufferBytes += bufferChargeBytes(instance, pageBytes);
      buffers += instance.fdinfo.buffers.length;
      const { sqEntries, cqEntries } = instance.fdinfo;
      if (withRings && sqEntries !== null && cqEntries !== null) rings += ringBytes(sqEntries, cqEntries, pageBytes);
    }
    holders.push({ pid, comm: status.name, rings: instances.length, buffers, bufferBytes, ringBytes: rings });
  }
  const totalBytes = holders.reduce((sum, h) => sum + h.bufferBytes + h.ringBytes, 0);
  return { uid, holders, unreadablePids, totalBytes };
}

/** The ring rdmactl's uring backend (and a typical small application) creates: 8 SQ entries, 16 CQ entries. */
export function newRingChargeBytes(ctx: DoctorContext): number {
  return ringsCharged() ? ringBytes(8, 16, ctx.pageBytes) : 0;
}

export function uringUserCharge(ctx: DoctorContext): Finding {
  const { target, request } = ctx;
  const charge = readUserUringCharge(target.status.uid, ctx.pageBytes, ringsCharged());
  const asked = request.backend === 'uring' && request.sizeBytes !== null;
  const requestBytes = asked ? requestChargeBytes(ctx) + newRingChargeBytes(ctx) : 0;
  const others = charge.holders.filter((h) => h.pid !== target.pid);
  const evidence = {
    uid: target.status.uid,
    userChargeBytes: charge.totalBytes,
    holders: charge.holders.map((h) => ({ pid: h.pid, comm: h.comm, rings: h.rings, buffers: h.buffers, bufferBytes: h.bufferBytes, ringBytes: h.ringBytes })),
    unreadablePids: charge.unreadablePids,
    requestBytes: asked ? requestBytes : null,
    ringsCharged: ringsCharged(),
    ringChargeProbe: ringChargeProbe().evidence,
    softBytes: target.softBytes,
  };
  const id = 'uring.user-charge';
  const holderText = (list: UringHolder[]): string => list.map((h) => `pid ${h.pid} (${h.comm}) ${formatBytes(h.bufferBytes + h.ringBytes)}`).join(', ');
  const heldText = charge.holders.length === 0 ? 'no process of this user holds io_uring buffers' : `uid ${target.status.uid} holds ${formatBytes(charge.totalBytes)}: ${holderText(charge.holders)}`;
  if (hasCapability(target, CAP_IPC_LOCK)) return finding(id, 'ok', `not enforced (CAP_IPC_LOCK); ${heldText}`, evidence);
  if (target.softBytes === null) return finding(id, 'ok', `RLIMIT_MEMLOCK is unlimited; ${heldText}`, evidence);
  const limit = target.softBytes;
  const unknown = charge.unreadablePids.length > 0 ? `; the io_uring fds of ${charge.unreadablePids.length} of the user's processes could not be read (run as root to count them)` : '';
  if (asked) {
    const total = charge.totalBytes + requestBytes;
    if (total > limit) {
      const alone = requestBytes <= limit;
      const fixes = alone && others.length > 0
        ? [`release what the other processes hold (${others.map((h) => `pid ${h.pid}`).join(', ')}) or run as another user`, ...raiseMemlockFixes(ctx, total)]
        : raiseMemlockFixes(ctx, total);
      return finding(id, 'fail',
        `${formatBytes(requestBytes)} requested${newRingChargeBytes(ctx) > 0 ? ' (with the new ring)' : ''} + ${formatBytes(charge.totalBytes)} the user already holds = ${formatBytes(total)} > RLIMIT_MEMLOCK ${formatBytes(limit)}${others.length > 0 ? `; held by ${holderText(others)}` : ''}${unknown}`,
        { ...evidence, chargedBytes: total }, fixes);
    }
    return finding(id, 'ok', `${formatBytes(total)} (request + the user's ${formatBytes(charge.totalBytes)}) fits RLIMIT_MEMLOCK ${formatBytes(limit)}${unknown}`, { ...evidence, chargedBytes: total });
  }
  if (charge.totalBytes > limit / 2 && others.length > 0) {
    return finding(id, 'warn', `other processes of uid ${target.status.uid} hold ${formatBytes(charge.totalBytes)} of this process's ${limitText(limit)} io_uring allowance: ${holderText(others)}`, evidence,
      [`io_uring charges the user, not the process: release buffers in ${others.map((h) => `pid ${h.pid}`).join(', ')} or raise the limit`]);
  }
  return finding(id, 'ok', `${heldText} (limit ${limitText(limit)})${unknown}`, evidence);
}
