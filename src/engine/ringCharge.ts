// Does this kernel charge an io_uring ring's own pages against RLIMIT_MEMLOCK? It has changed more
// than once (5.10 charges the rings, 6.1 does not, the 6.15 memory regions charge them again), so
// doctor asks the running kernel instead of a version table: with RLIMIT_MEMLOCK's soft limit at 0
// and no CAP_IPC_LOCK in effect, io_uring_setup fails with ENOMEM exactly when the ring is charged.
// Both are put back before returning, whatever happens: the soft limit can always be raised back to
// the hard one, and CAP_IPC_LOCK stays in the permitted set while it is out of the effective one.

import { SyscallError } from '../lib/errno.js';
import { RLIMIT_MEMLOCK, capget, capset, prlimit } from '../ffi/libc.js';
import { IoUring } from '../ffi/io_uring.js';
import { CAP_IPC_LOCK } from '../proc/status.js';

export interface RingChargeProbe {
  /** null when the probe could not tell (io_uring refused for another reason). */
  readonly charged: boolean | null;
  /** One line: what the kernel did. */
  readonly evidence: string;
}

let cached: RingChargeProbe | null = null;

/** The probe's answer, asked once per process (a ring of one entry, closed at once). */
export function ringChargeProbe(): RingChargeProbe {
  return (cached ??= probe());
}

function probe(): RingChargeProbe {
  const ipcLock = 1n << BigInt(CAP_IPC_LOCK);
  let caps;
  try {
    caps = capget();
  } catch (err) {
    return { charged: null, evidence: `capget failed: ${(err as Error).message}` };
  }
  const dropCap = (caps.effective & ipcLock) !== 0n;
  const limit = prlimit(0, RLIMIT_MEMLOCK);
  try {
    if (dropCap) capset({ ...caps, effective: caps.effective & ~ipcLock });
    prlimit(0, RLIMIT_MEMLOCK, { soft: 0, hard: limit.hard });
    try {
      new IoUring(1).close();
      return { charged: false, evidence: 'io_uring_setup with RLIMIT_MEMLOCK 0 and no CAP_IPC_LOCK succeeded: rings are not charged' };
    } catch (err) {
      if (err instanceof SyscallError && err.errnoName === 'ENOMEM') {
        return { charged: true, evidence: 'io_uring_setup with RLIMIT_MEMLOCK 0 and no CAP_IPC_LOCK failed with ENOMEM: each ring\'s pages are charged' };
      }
      return { charged: null, evidence: `io_uring_setup failed: ${(err as Error).message}` };
    }
  } finally {
    prlimit(0, RLIMIT_MEMLOCK, limit);
    if (dropCap) capset(caps);
  }
}
