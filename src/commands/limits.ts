// rdmactl limits [PID]: RLIMIT_MEMLOCK against what a process has pinned and locked; --set changes it.

import { Argument, Command } from 'commander';
import { completes, dynamic } from '../lib/completionHints.js';
import { SyscallError } from '../lib/errno.js';
import { RLIMIT_MEMLOCK, getpid, prlimit, type RLimit } from '../ffi/libc.js';
import { PermissionError, RdmactlError, UsageError } from '../lib/errors.js';
import { note, type Context } from '../lib/context.js';
import type { Field } from '../lib/fields.js';
import { addOutputOptions, outputView, type OutputFlags } from '../lib/output.js';
import { SIZE_HELP, parseSize } from '../lib/size.js';
import { targetPids } from '../observe/targets.js';
import { parseLimits } from '../proc/limits.js';
import { parseStatus, statusHasIpcLock } from '../proc/status.js';
import { procPath, readProcText } from '../proc/procfs.js';

export interface LimitsRecord {
  pid: number;
  comm: string;
  uid: number;
  softBytes: number | null;
  hardBytes: number | null;
  lockedBytes: number;
  pinnedBytes: number;
  capIpcLock: boolean;
}

function headroom(limit: number | null, used: number): number | null {
  return limit === null ? null : limit - used;
}

export const LIMITS_FIELDS: readonly Field<LimitsRecord>[] = [
  { key: 'pid', label: 'PID', title: 'pid', description: 'process id', get: (r) => r.pid },
  { key: 'comm', label: 'COMM', title: 'comm', description: 'command name (/proc/PID/status Name)', get: (r) => r.comm },
  { key: 'uid', label: 'UID', title: 'uid', description: 'real uid', get: (r) => r.uid },
  { key: 'memlockSoftBytes', label: 'MEMLOCK-SOFT', title: 'RLIMIT_MEMLOCK soft', description: 'soft RLIMIT_MEMLOCK from /proc/PID/limits (null: unlimited)', kind: 'bytes', nullText: 'unlimited', get: (r) => r.softBytes },
  { key: 'memlockHardBytes', label: 'MEMLOCK-HARD', title: 'RLIMIT_MEMLOCK hard', description: 'hard RLIMIT_MEMLOCK (null: unlimited)', kind: 'bytes', nullText: 'unlimited', get: (r) => r.hardBytes },
  { key: 'lockedBytes', label: 'LOCKED', title: 'locked (VmLck)', description: 'VmLck: mlocked memory', kind: 'bytes', get: (r) => r.lockedBytes },
  { key: 'pinnedBytes', label: 'PINNED', title: 'pinned (VmPin)', description: 'VmPin: pinned memory (RDMA MRs, io_uring buffers)', kind: 'bytes', get: (r) => r.pinnedBytes },
  { key: 'lockHeadroomBytes', label: 'LOCK-HEADROOM', title: 'headroom for mlock', description: 'soft limit minus VmLck (null: unlimited)', kind: 'bytes', nullText: 'unlimited', get: (r) => headroom(r.softBytes, r.lockedBytes) },
  { key: 'pinHeadroomBytes', label: 'PIN-HEADROOM', title: 'headroom for verbs MRs', description: 'soft limit minus VmPin (null: unlimited)', kind: 'bytes', nullText: 'unlimited', get: (r) => headroom(r.softBytes, r.pinnedBytes) },
  { key: 'capIpcLock', label: 'CAP_IPC_LOCK', title: 'CAP_IPC_LOCK (limit not enforced)', description: 'the process has CAP_IPC_LOCK in CapEff: the limit is counted but not enforced', kind: 'bool', get: (r) => r.capIpcLock },
];

const LIMITS_OUTPUT = { name: 'limits', fields: LIMITS_FIELDS };

export function readLimitsRecord(pid: number): LimitsRecord {
  // null: the process is gone; ProcUnreadableError (exit 4) when the kernel refuses.
  const statusText = readProcText(procPath(pid, 'status'));
  const limitsText = statusText === null ? null : readProcText(procPath(pid, 'limits'));
  if (statusText === null || limitsText === null) throw new RdmactlError(`no process with pid ${pid}`);
  const status = parseStatus(statusText);
  const memlock = parseLimits(limitsText).lockedMemory;
  return {
    pid,
    comm: status.name,
    uid: status.uid,
    softBytes: memlock?.softBytes ?? null,
    hardBytes: memlock?.hardBytes ?? null,
    lockedBytes: status.lockedBytes,
    pinnedBytes: status.pinnedBytes,
    capIpcLock: statusHasIpcLock(statusText),
  };
}

function parseLimitValue(text: string, what: string): number | null {
  if (/^(unlimited|infinity|-1)$/i.test(text.trim())) return null;
  return parseSize(text, what);
}

/** Parse `SOFT[:HARD]`; without HARD the hard limit is left as it is. */
export function parseLimitSpec(spec: string, current: RLimit): RLimit {
  const parts = spec.split(':');
  if (parts.length > 2 || parts.some((p) => p.trim() === '')) {
    throw new UsageError(`invalid --set '${spec}': expected SOFT or SOFT:HARD, each ${SIZE_HELP} or 'unlimited'`);
  }
  const soft = parseLimitValue(parts[0]!, '--set soft limit');
  const hard = parts.length === 2 ? parseLimitValue(parts[1]!, '--set hard limit') : current.hard;
  const above = (a: number | null, b: number | null): boolean => b !== null && (a === null || a > b);
  if (above(soft, hard)) throw new UsageError(`invalid --set '${spec}': the soft limit cannot exceed the hard limit (${hard === null ? 'unlimited' : `${hard} bytes`})`);
  return { soft, hard };
}

interface LimitsFlags extends OutputFlags {
  set?: string;
}

export function limitsCommand(ctx: Context): Command {
  const command = new Command('limits')
    .summary('RLIMIT_MEMLOCK vs pinned and locked memory of a process')
    .description(`Show RLIMIT_MEMLOCK (soft and hard) of PID (default: rdmactl itself, which inherited
your shell's limit) next to its VmLck and VmPin, and the headroom left for mlock and for
verbs MRs. io_uring charges the user's locked memory across all processes: see rdmactl stat.
With --set, change the limit through prlimit(2).`)
    .addArgument(completes(new Argument('[pid]', 'process id (default: this process)'), dynamic('pids')))
    .option('--set <soft[:hard]>', `new limit: ${SIZE_HELP}, or 'unlimited'; without :HARD the hard limit stays`)
    .option('--json', 'print JSON')
    .addHelpText('after', `
Examples:
  rdmactl limits                      your shell's limit as inherited by rdmactl
  rdmactl limits 1234 --json          another process
  rdmactl limits 1234 --set 1G        raise its soft limit (within the hard limit; root for more)
  rdmactl limits 1234 --set unlimited:unlimited
  rdmactl limits -rn -b -o memlockSoftBytes   the soft limit in bytes, alone on one line`)
    .action((pidText: string | undefined, flags: LimitsFlags) => {
      const view = outputView(ctx, LIMITS_OUTPUT, flags);
      const pid = pidText === undefined ? getpid() : targetPids([pidText], (line) => note(ctx, line))[0]!;
      let before: LimitsRecord | undefined;
      if (flags.set !== undefined) {
        before = readLimitsRecord(pid);
        const next = parseLimitSpec(flags.set, { soft: before.softBytes, hard: before.hardBytes });
        try {
          prlimit(pid, RLIMIT_MEMLOCK, next);
        } catch (err) {
          if (err instanceof SyscallError && err.errnoName === 'EPERM') {
            throw new PermissionError(`cannot set RLIMIT_MEMLOCK of pid ${pid}: not permitted`, [
              'raising a hard limit needs CAP_SYS_RESOURCE (root); changing another user\'s process needs the same',
            ], { cause: err });
          }
          if (err instanceof SyscallError && err.errnoName === 'ESRCH') throw new RdmactlError(`no process with pid ${pid}`);
          throw err;
        }
      }
      const record = readLimitsRecord(pid);
      if (view.json) {
        view.printDocument(before ? { ...view.record(record), previous: view.record(before) } : view.record(record));
        return;
      }
      view.printRecord(record);
      if (record.capIpcLock) view.prose('This process has CAP_IPC_LOCK: the kernel counts its pins and locks but does not enforce the limit.');
    });
  return addOutputOptions(command, ctx, LIMITS_OUTPUT);
}
