// Reading the process being diagnosed, once, with the errors a user can act on: a pid that is gone is
// exit 1, one the kernel will not show is exit 4.

import { getpid } from '../ffi/libc.js';
import { PermissionError, RdmactlError } from '../lib/errors.js';
import { parseLimits } from '../proc/limits.js';
import { procFieldText, procPath, readProcText, ProcUnreadableError } from '../proc/procfs.js';
import { CAP_DAC_OVERRIDE, CAP_IPC_LOCK, CAP_SYS_ADMIN, hasCapabilityBit, parseCapMask, parseStatus } from '../proc/status.js';
import type { Target } from './types.js';

function vanished(pid: number): RdmactlError {
  return new RdmactlError(`no process with pid ${pid} (it exited, or never existed)`);
}

/** Status Groups: line → supplementary gids. */
export function parseStatusGroups(statusText: string): number[] {
  const text = procFieldText(statusText, 'Groups') ?? '';
  return text.split(/\s+/).filter((w) => w !== '').map(Number).filter(Number.isInteger);
}

/** The target: PID, or rdmactl itself (which inherited the shell's limits and credentials). */
export function readTarget(pid: number | null): Target {
  const self = pid === null;
  const targetPid = pid ?? getpid();
  let statusText: string | null;
  let limitsText: string | null;
  try {
    statusText = readProcText(procPath(targetPid, 'status'));
    limitsText = statusText === null ? null : readProcText(procPath(targetPid, 'limits'));
  } catch (err) {
    if (err instanceof ProcUnreadableError) {
      throw new PermissionError(`cannot read ${err.path}: permission denied (run as root or as the process's user)`, [], { cause: err });
    }
    throw err;
  }
  if (statusText === null || limitsText === null) throw vanished(targetPid);
  const status = parseStatus(statusText);
  if (!status.hasMm) {
    throw new RdmactlError(status.state === 'Z' ? `pid ${targetPid} is a zombie: it has exited and holds no memory` : `pid ${targetPid} is a kernel thread: it has no user memory to register`);
  }
  const memlock = parseLimits(limitsText).lockedMemory;
  return {
    pid: targetPid,
    self,
    status,
    statusText,
    softBytes: memlock?.softBytes ?? null,
    hardBytes: memlock?.hardBytes ?? null,
    capEff: parseCapMask(statusText, 'CapEff') ?? 0n,
    groups: parseStatusGroups(statusText),
  };
}

/** Whether the capability bit `cap` is in the target's effective set. */
export function hasCapability(target: Target, cap: number): boolean {
  return hasCapabilityBit(target.capEff, cap);
}

export { CAP_DAC_OVERRIDE, CAP_IPC_LOCK, CAP_SYS_ADMIN };
