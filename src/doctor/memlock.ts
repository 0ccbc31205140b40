// memlock.*: RLIMIT_MEMLOCK against what the target already holds plus the request, and where the
// limit came from (the parent chain, limits.conf as pam_limits would apply it).

import { IBV_ACCESS_ON_DEMAND } from '../ffi/verbs/enums.js';
import { formatBytes } from '../lib/size.js';
import type { JsonValue } from '../lib/fields.js';
import { readProcessLimits } from '../proc/limits.js';
import { readStatus } from '../proc/status.js';
import { ProcUnreadableError } from '../proc/procfs.js';
import { environmentMemlockFixes } from './attribution.js';
import { NSS_SOURCE, resolvePamMemlock, type LimitsConfLine, type PamMemlock, type RootConfig } from './limitsConf.js';
import { kib, limitText, requestChargeBytes } from './request.js';
import { CAP_IPC_LOCK, hasCapability } from './target.js';
import { finding, type DoctorContext, type Evidence, type Finding } from './types.js';

/** How to raise the target's limit, naming the systemd unit or container it runs in when there is one. */
export function raiseMemlockFixes(ctx: DoctorContext, neededBytes: number | null): string[] {
  const { target } = ctx;
  const user = ctx.config.account?.name ?? String(target.status.uid);
  const fixes: string[] = [];
  const hardAllows = target.hardBytes === null || (neededBytes !== null && neededBytes <= target.hardBytes);
  if (target.self) {
    fixes.push(hardAllows
      ? `in this shell: ulimit -l ${target.hardBytes === null ? 'unlimited' : kib(neededBytes ?? target.hardBytes)} (within the hard limit ${limitText(target.hardBytes)})`
      : `the hard limit is ${limitText(target.hardBytes)}: as root, prlimit --pid $$ --memlock=unlimited:unlimited raises this shell's`);
  } else {
    fixes.push(`now, as root: prlimit --pid ${target.pid} --memlock=unlimited:unlimited (or rdmactl limits ${target.pid} --set unlimited:unlimited)`);
  }
  const environment = environmentMemlockFixes(ctx);
  // A service or container never reads limits.conf: its own setting is the fix that lasts.
  if (environment.length > 0) return [...environment, ...fixes];
  fixes.push(`for logins: add "${user} - memlock unlimited" to /etc/security/limits.d/rdma.conf and log in again`);
  fixes.push('a systemd service or a container does not read limits.conf: LimitMEMLOCK=infinity in the unit, docker run --ulimit memlock=-1:-1');
  return fixes;
}

/** The charge the request is checked against for the process-level backends (mlock: VmLck; verbs: VmPin). */
function processCharge(ctx: DoctorContext): { heldBytes: number; counter: string } {
  const { status } = ctx.target;
  return ctx.request.backend === 'mlock'
    ? { heldBytes: status.lockedBytes, counter: 'VmLck' }
    : { heldBytes: status.pinnedBytes, counter: 'VmPin' };
}

export function memlockLimit(ctx: DoctorContext): Finding {
  const { target, request } = ctx;
  const ipcLock = hasCapability(target, CAP_IPC_LOCK);
  const requestBytes = requestChargeBytes(ctx);
  const evidence = {
    softBytes: target.softBytes,
    hardBytes: target.hardBytes,
    pinnedBytes: target.status.pinnedBytes,
    lockedBytes: target.status.lockedBytes,
    capEff: `0x${target.capEff.toString(16).padStart(16, '0')}`,
    capIpcLockEffective: ipcLock,
    requestBytes: request.sizeBytes === null ? null : requestBytes,
    file: `/proc/${target.pid}/limits`,
  };
  const id = 'memlock.limit';
  if (ipcLock) {
    return finding(id, 'ok', `not enforced: CAP_IPC_LOCK is in the effective set (limit ${limitText(target.softBytes)}; pins and locks are counted, never refused)`, evidence);
  }
  if (target.softBytes === null) return finding(id, 'ok', 'RLIMIT_MEMLOCK is unlimited', evidence);
  const soft = target.softBytes;
  if (request.backend === 'verbs' && ((request.access ?? 0) & IBV_ACCESS_ON_DEMAND) !== 0) {
    return finding(id, 'ok', `on-demand (ODP) MRs pin nothing, so RLIMIT_MEMLOCK ${formatBytes(soft)} does not limit them`, evidence);
  }
  if (request.sizeBytes !== null && request.backend !== null) {
    // io_uring is checked against the user's charge (uring.user-charge); here only the request alone.
    const { heldBytes, counter } = request.backend === 'uring' ? { heldBytes: 0, counter: '' } : processCharge(ctx);
    const total = heldBytes + requestBytes;
    if (request.sizeBytes > 0 && (soft === 0 || total > soft)) {
      const held = counter === '' ? '' : ` + ${formatBytes(heldBytes)} already in ${counter}`;
      return finding(id, 'fail',
        `${formatBytes(requestBytes)} requested${held} = ${formatBytes(total)} > RLIMIT_MEMLOCK ${formatBytes(soft)} (soft; hard ${limitText(target.hardBytes)})`,
        { ...evidence, chargedBytes: total }, raiseMemlockFixes(ctx, total));
    }
    const userCharge = request.backend === 'uring' ? '; io_uring also counts what the user already holds: see uring.user-charge' : '';
    return finding(id, 'ok', `${formatBytes(total)} (request${counter ? ` + ${counter}` : ''}) fits RLIMIT_MEMLOCK ${formatBytes(soft)}${userCharge}`, { ...evidence, chargedBytes: total });
  }
  const used = Math.max(target.status.pinnedBytes, target.status.lockedBytes);
  if (used > soft) {
    return finding(id, 'fail', `already over the limit: ${formatBytes(used)} held > RLIMIT_MEMLOCK ${formatBytes(soft)}`, evidence, raiseMemlockFixes(ctx, null));
  }
  if (soft < (target.hardBytes ?? Number.POSITIVE_INFINITY)) {
    return finding(id, 'warn', `RLIMIT_MEMLOCK is ${formatBytes(soft)} (soft), hard ${limitText(target.hardBytes)}: registrations above ${formatBytes(soft - used)} more will fail`, evidence, raiseMemlockFixes(ctx, target.hardBytes));
  }
  return finding(id, 'warn', `RLIMIT_MEMLOCK is ${formatBytes(soft)} (soft and hard): registrations above ${formatBytes(soft - used)} more will fail; RDMA libraries expect unlimited`, evidence, raiseMemlockFixes(ctx, null));
}

interface ChainLink {
  pid: number;
  comm: string;
  softBytes: number | null;
  hardBytes: number | null;
}

/** The target's ancestors with their limits, nearest first, up to pid 1 (or the first one we cannot read). */
export function parentChain(pid: number, maxDepth = 64): ChainLink[] {
  const chain: ChainLink[] = [];
  let current = readStatus(pid);
  for (let depth = 0; current !== null && current.ppid > 0 && depth < maxDepth; depth++) {
    const parentPid = current.ppid;
    let parent;
    let limits;
    try {
      parent = readStatus(parentPid);
      limits = parent === null ? null : readProcessLimits(parentPid);
    } catch (err) {
      if (err instanceof ProcUnreadableError) break;
      throw err;
    }
    if (parent === null || limits === null) break;
    chain.push({ pid: parentPid, comm: parent.name, softBytes: limits.lockedMemory?.softBytes ?? null, hardBytes: limits.lockedMemory?.hardBytes ?? null });
    current = parent;
  }
  return chain;
}

function lineText(line: LimitsConfLine): string {
  return `${line.file}:${line.line} "${line.domain} ${line.type} ${line.item} ${line.value}"`;
}

function lineJson(line: LimitsConfLine | null): JsonValue {
  return line === null ? null : { file: line.file, line: line.line, domain: line.domain, type: line.type, value: line.value };
}

export function memlockOrigin(ctx: DoctorContext): Finding {
  const { target } = ctx;
  const chain = parentChain(target.pid);
  const same = (l: ChainLink): boolean => l.softBytes === target.softBytes && l.hardBytes === target.hardBytes;
  const firstDifferent = chain.findIndex((l) => !same(l));
  const mine = `${limitText(target.softBytes)} soft / ${limitText(target.hardBytes)} hard`;
  let where: string;
  if (firstDifferent === 0) where = `set in pid ${target.pid} itself (its parent ${chain[0]!.pid} ${chain[0]!.comm} has ${limitText(chain[0]!.softBytes)} / ${limitText(chain[0]!.hardBytes)})`;
  else if (firstDifferent > 0) {
    const setter = chain[firstDifferent - 1]!;
    const parent = chain[firstDifferent]!;
    where = `set by pid ${setter.pid} (${setter.comm}): its parent pid ${parent.pid} (${parent.comm}) has ${limitText(parent.softBytes)} / ${limitText(parent.hardBytes)}`;
  } else {
    const top = chain[chain.length - 1];
    where = top ? `inherited unchanged from pid ${top.pid} (${top.comm})${top.pid === 1 ? ': the boot default (the kernel\'s: 8 MiB since Linux 5.16, 64 KiB before; or systemd\'s DefaultLimitMEMLOCK=)' : ''}` : 'no readable parent';
  }

  const files = ctx.config.limitsFiles;
  const found = ctx.config.account;
  const skipped = ctx.config.skipped;
  const pam = found ? resolvePamMemlock(files.map((f) => f.lines), found) : null;
  const evidence = {
    softBytes: target.softBytes,
    hardBytes: target.hardBytes,
    chain: chain.map((l) => ({ pid: l.pid, comm: l.comm, softBytes: l.softBytes, hardBytes: l.hardBytes })),
    setByPid: firstDifferent > 0 ? chain[firstDifferent - 1]!.pid : firstDifferent === 0 ? target.pid : null,
    user: found?.name ?? null,
    groups: found?.groups ?? [],
    accountSource: ctx.config.accountSource,
    limitsFiles: files.map((f) => f.file),
    pamSoftBytes: pam?.softBytes === undefined ? null : pam.softBytes,
    pamHardBytes: pam?.hardBytes === undefined ? null : pam.hardBytes,
    pamSoftLine: lineJson(pam?.softLine ?? null),
    pamHardLine: lineJson(pam?.hardLine ?? null),
    pamNoLimitsLine: lineJson(pam?.noLimitsLine ?? null),
    skippedFiles: skipped.map((f) => ({ file: f.file, reason: f.reason })),
  };
  const result = originVerdict(ctx, mine, where, found, pam, evidence);
  if (skipped.length === 0) return result;
  // What could not be read may hold the line that decides: say so, and which files.
  const names = skipped.map((f) => f.file).join(', ');
  return {
    ...result,
    status: result.status === 'fail' ? 'fail' : 'warn',
    summary: `${result.summary}; ${skipped.length === 1 ? 'a file was' : `${skipped.length} files were`} not read, so this may be incomplete: ${names}`,
    fix: [
      ...result.fix,
      ...(skipped.some((f) => f.file !== NSS_SOURCE) ? ['make each skipped file a regular file the user running doctor can read (limits files at most 1 MiB, passwd and group at most 64 MiB), or remove it'] : []),
      ...(skipped.some((f) => f.file === NSS_SOURCE) ? [`the user lookup through NSS failed: check that the directory service (sssd, LDAP, NIS) answers: getent passwd ${ctx.target.status.uid}`] : []),
    ],
  };
}

function originVerdict(ctx: DoctorContext, mine: string, where: string, found: RootConfig['account'], pam: PamMemlock | null, evidence: Evidence): Finding {
  const { target } = ctx;
  const id = 'memlock.origin';
  if (!found || !pam) {
    const nowhere = ctx.config.accountSource === 'nss' ? 'the user database (looked up through NSS)' : `${ctx.root.replace(/\/$/, '')}/etc/passwd`;
    return finding(id, 'ok', `${mine}: ${where}; uid ${target.status.uid} has no entry in ${nowhere}, so limits.conf does not apply`, evidence);
  }
  if (pam.noLimitsLine) return finding(id, 'ok', `${mine}: ${where}; limits.conf exempts ${found.name} (${lineText(pam.noLimitsLine)})`, evidence);
  const granted = pam.softLine ?? pam.hardLine;
  if (!granted) return finding(id, 'ok', `${mine}: ${where}; no limits.conf memlock entry applies to ${found.name}`, evidence);
  const softDiffers = pam.softBytes !== undefined && pam.softBytes !== target.softBytes;
  const hardDiffers = pam.hardBytes !== undefined && pam.hardBytes !== target.hardBytes;
  if (!softDiffers && !hardDiffers) return finding(id, 'ok', `${mine}: as limits.conf gives ${found.name} (${lineText(granted)}); ${where}`, evidence);
  const grant = `${pam.softBytes === undefined ? '' : `soft ${limitText(pam.softBytes)}`}${pam.softBytes !== undefined && pam.hardBytes !== undefined ? ', ' : ''}${pam.hardBytes === undefined ? '' : `hard ${limitText(pam.hardBytes)}`}`;
  return finding(id, 'warn',
    `limits.conf grants ${grant} to ${granted.domain} (${lineText(granted)}) but this process has ${mine}: it was not started through a PAM login (a service, container or launcher), or its limit was changed after login; ${where}`,
    evidence,
    [
      ...environmentMemlockFixes(ctx),
      'log in again through PAM (ssh, login, su -) to get the limits.conf value',
      'a systemd service: LimitMEMLOCK= in the unit; a container: docker run --ulimit memlock=-1:-1; a batch launcher: its own memlock setting (e.g. slurm PropagateResourceLimits)',
    ]);
}
