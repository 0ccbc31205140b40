// RLIMIT_MEMLOCK and CAP_IPC_LOCK: what decides whether a pin or lock is allowed, and the
// explanation a user needs when it is not.

import { SyscallError } from '../lib/errno.js';
import { RLIMIT_MEMLOCK, getrlimit, type RLimit } from '../ffi/libc.js';
import { PermissionError, RdmactlError, UnsupportedError } from '../lib/errors.js';
import { shellWord } from '../lib/escape.js';
import { formatBytes } from '../lib/size.js';
import { procPath, readProcText } from '../proc/procfs.js';
import { parseStatus, statusHasIpcLock } from '../proc/status.js';
import { findTightestRdmaLimit } from '../proc/cgroupLimits.js';
import { RefusedRegistration, type BackendName } from './types.js';

/**
 * The shell command that lifts one rdma.max entry: the cgroup directory is named by whoever created
 * the group, so both words are shell-quoted (reg's refusal and doctor's cgroup.rdma print this one).
 */
export function raiseRdmaMaxCommand(device: string, key: string, cgroupDirectory: string): string {
  return `echo ${shellWord(`${device} ${key}=max`)} > ${shellWord(`${cgroupDirectory}/rdma.max`)}`;
}

export function readMemlockRlimit(): RLimit {
  return getrlimit(RLIMIT_MEMLOCK);
}

export const RAISE_MEMLOCK_HINTS: readonly string[] = [
  'this shell: ulimit -l unlimited (or a size in KiB; above the hard limit needs root)',
  'a running process: rdmactl limits PID --set SOFT[:HARD] (root, or within the hard limit)',
  'logins: add "USER - memlock unlimited" to /etc/security/limits.conf and log in again',
  'systemd services: LimitMEMLOCK=infinity in the unit (limits.conf does not apply to services)',
  'containers: docker run --ulimit memlock=-1 (or the equivalent in your runtime)',
];

/**
 * Turn a failed registration into the error a user can act on. ENOMEM/EPERM under RLIMIT_MEMLOCK
 * becomes an explanation naming the request, the limit, and what is already pinned and locked.
 */
export function explainRegistrationFailure(thrown: unknown, backend: BackendName, requestBytes: number): unknown {
  const hidden = thrown instanceof RefusedRegistration ? thrown : null;
  const err = hidden ? hidden.refusal : thrown;
  if (!(err instanceof SyscallError)) return err;
  const what = `cannot register ${formatBytes(requestBytes)} with ${backend} (${err.message})`;
  if (err.errnoName === 'ENOMEM' || (err.errnoName === 'EPERM' && backend === 'mlock')) {
    const limit = readMemlockRlimit();
    // One read of our status: CAP_IPC_LOCK (then the limit is not what refused) and VmPin/VmLck.
    const statusText = limit.soft === null ? null : readProcText(procPath('self', 'status'));
    if (limit.soft !== null && statusText !== null && !statusHasIpcLock(statusText)) {
      const status = parseStatus(statusText);
      const already = `this process already has ${formatBytes(status.pinnedBytes)} pinned (VmPin) and ${formatBytes(status.lockedBytes)} locked (VmLck)`
        + (hidden && hidden.hiddenChargeBytes > 0 ? `, plus ${hidden.hiddenChargeWhat}` : '');
      const charged =
        backend === 'uring'
          ? '; io_uring charges the user\'s locked memory across all of its processes, not just this one'
          : backend === 'verbs'
            ? '; verbs MRs are charged to the process\'s pinned memory'
            : '';
      return new RdmactlError(
        `${what}: RLIMIT_MEMLOCK is ${formatBytes(limit.soft)} and ${already}${charged}`,
        1,
        ['raise the limit:', ...RAISE_MEMLOCK_HINTS.map((h) => `  ${h}`)],
        { cause: err },
      );
    }
    return new RdmactlError(`${what}: the kernel is out of memory for this request`, 1, [], { cause: err });
  }
  // The rdma cgroup controller refuses a device context (hca_handle) or object (PD, MR, …: hca_object)
  // over rdma.max with EAGAIN (kernel/cgroup/rdma.c rdmacg_try_charge).
  if (backend === 'verbs' && err.errnoName === 'EAGAIN') {
    // By now the failed attempt has released its own context and PD, so use can read below the limit.
    const reached = findTightestRdmaLimit('self');
    if (reached) {
      return new RdmactlError(
        `${what}: the rdma cgroup ${reached.path} limits ${reached.device} ${reached.key} to ${reached.max} (rdma.max; ${reached.current} in use after this attempt released its own), not RLIMIT_MEMLOCK`,
        1,
        [
          `raise it (root, or the cgroup's delegate): ${raiseRdmaMaxCommand(reached.device, reached.key, reached.directory)}`,
          'containers: the runtime sets rdma.max from the OCI spec (linux.resources.rdma); raise it where the container is defined',
          'or release device contexts and objects (PDs, MRs, QPs, CQs) this group no longer needs',
        ],
        { cause: err },
      );
    }
  }
  if (backend === 'uring' && err.call === 'io_uring_setup') {
    if (err.errnoName === 'ENOSYS') return new UnsupportedError(`${what}: this kernel has no io_uring (CONFIG_IO_URING)`, [], { cause: err });
    if (err.errnoName === 'EPERM' || err.errnoName === 'EACCES') {
      return new PermissionError(`${what}: io_uring is disabled or not permitted for this user`, [
        'check: sysctl kernel.io_uring_disabled (0 = allowed, 1 = only members of kernel.io_uring_group, 2 = disabled)',
        'and seccomp/container policies, which often block io_uring',
      ], { cause: err });
    }
  }
  if (err.errnoName === 'EFAULT' || err.errnoName === 'EACCES' || err.errnoName === 'EOPNOTSUPP') {
    return new RdmactlError(`${what}: the kernel refused to pin this mapping`, 1, [
      backend === 'uring'
        ? 'io_uring pins for writing (FOLL_WRITE | FOLL_LONGTERM): read-only mappings and some file-backed mappings cannot be registered'
        : 'a writable registration (e.g. local-write) of a read-only mapping is refused; long-term pins of some file-backed mappings are refused too',
    ], { cause: err });
  }
  if (err.errnoName === 'EPERM') return new PermissionError(what, [], { cause: err });
  return new RdmactlError(what, 1, [], { cause: err });
}
