// rdmactl stat [PID…]: pinned and locked memory against limits, per process, per user, system-wide.

import { Command, Option } from 'commander';
import { collectStat, type ProcessRow, type StatReport, type SystemRow, type UserRow } from '../observe/stat.js';
import { UsageError } from '../lib/errors.js';
import { printJson, type Context } from '../lib/context.js';
import { renderRecord, renderTable, toJson, type Field } from '../lib/fields.js';
import { parsePidList } from '../lib/pids.js';
import { packageVersion } from '../program.js';

export const PROCESS_FIELDS: readonly Field<ProcessRow>[] = [
  { key: 'pid', label: 'PID', get: (p) => p.pid },
  { key: 'user', label: 'USER', get: (p) => p.user },
  { key: 'uid', label: 'UID', get: (p) => p.uid, jsonOnly: true },
  { key: 'comm', label: 'COMM', get: (p) => p.comm },
  { key: 'pinnedBytes', label: 'PINNED', kind: 'bytes', get: (p) => p.pinnedBytes },
  { key: 'lockedBytes', label: 'LOCKED', kind: 'bytes', get: (p) => p.lockedBytes },
  { key: 'memlockLimitBytes', label: 'MEMLOCK', kind: 'bytes', nullText: 'unlimited', get: (p) => p.memlockLimitBytes },
  { key: 'headroomBytes', label: 'HEADROOM', kind: 'bytes', nullText: '-', get: (p) => p.headroomBytes },
  { key: 'uringBytes', label: 'IO_URING', kind: 'bytes', get: (p) => p.uringBytes, jsonOnly: true },
  { key: 'dontforkBytes', label: 'DONTFORK', kind: 'bytes', get: (p) => p.dontforkBytes, jsonOnly: true },
  { key: 'doubleCountedBytes', label: 'COUNTED TWICE', kind: 'bytes', get: (p) => p.doubleCountedBytes, jsonOnly: true },
  { key: 'flags', label: 'FLAGS', get: (p) => p.flags },
];

export const USER_FIELDS: readonly Field<UserRow>[] = [
  { key: 'uid', label: 'UID', get: (u) => u.uid },
  { key: 'user', label: 'USER', get: (u) => u.user },
  { key: 'processes', label: 'PROCS', kind: 'count', get: (u) => u.processes },
  { key: 'pinnedBytes', label: 'PINNED', kind: 'bytes', get: (u) => u.pinnedBytes },
  { key: 'lockedBytes', label: 'LOCKED', kind: 'bytes', get: (u) => u.lockedBytes },
  { key: 'uringBytes', label: 'IO_URING (charged to user)', kind: 'bytes', get: (u) => u.uringBytes },
];

export const SYSTEM_FIELDS: readonly Field<SystemRow>[] = [
  { key: 'pinnedBytes', label: 'pinned (sum of VmPin)', kind: 'bytes', get: (s) => s.pinnedBytes },
  { key: 'lockedBytes', label: 'locked (sum of VmLck)', kind: 'bytes', get: (s) => s.lockedBytes },
  { key: 'mlockedBytes', label: 'Mlocked (meminfo)', kind: 'bytes', get: (s) => s.mlockedBytes },
  { key: 'unevictableBytes', label: 'Unevictable (meminfo)', kind: 'bytes', get: (s) => s.unevictableBytes },
  { key: 'memTotalBytes', label: 'MemTotal', kind: 'bytes', get: (s) => s.memTotalBytes },
  { key: 'pinnedPercent', label: 'pinned share of MemTotal', kind: 'percent', get: (s) => Math.round(s.pinnedPercent * 1000) / 1000 },
  { key: 'processesHolding', label: 'processes pinning or locking', kind: 'count', get: (s) => s.processesHolding },
];

export const SORT_KEYS = ['pinned', 'locked', 'headroom', 'pid', 'comm', 'user'] as const;
export type SortKey = (typeof SORT_KEYS)[number];

export function sortProcesses(rows: ProcessRow[], key: SortKey): ProcessRow[] {
  const byNumberDesc = (get: (p: ProcessRow) => number) => (a: ProcessRow, b: ProcessRow) => get(b) - get(a) || a.pid - b.pid;
  const compare: Record<SortKey, (a: ProcessRow, b: ProcessRow) => number> = {
    pinned: (a, b) => b.pinnedBytes - a.pinnedBytes || b.lockedBytes - a.lockedBytes || a.pid - b.pid,
    locked: byNumberDesc((p) => p.lockedBytes),
    // Least headroom first: the processes closest to failing their next registration. Unlimited last.
    headroom: (a, b) => (a.headroomBytes ?? Infinity) - (b.headroomBytes ?? Infinity) || a.pid - b.pid,
    pid: (a, b) => a.pid - b.pid,
    comm: (a, b) => a.comm.localeCompare(b.comm) || a.pid - b.pid,
    user: (a, b) => a.user.localeCompare(b.user) || a.pid - b.pid,
  };
  return [...rows].sort(compare[key]);
}

export function statJson(report: StatReport): Record<string, unknown> {
  return {
    processes: report.processes.map((p) => toJson(PROCESS_FIELDS, p)),
    users: report.users.map((u) => toJson(USER_FIELDS, u)),
    system: toJson(SYSTEM_FIELDS, report.system),
    scannedProcesses: report.scannedProcesses,
    unreadableProcesses: report.unreadableProcesses,
    scannedAt: new Date(report.scannedAt).toISOString(),
  };
}

export function statCommand(ctx: Context): Command {
  return new Command('stat')
    .summary('pinned and locked memory against limits: per process, user, system')
    .description(`Scan every process and show who has pinned (VmPin: RDMA MRs, io_uring buffers) or
locked (VmLck: mlock) memory, against its RLIMIT_MEMLOCK, with per-user totals (io_uring charges
the user, across processes) and system totals (sum of VmPin, Mlocked, Unevictable vs MemTotal).

Flags: over-limit (possible with CAP_IPC_LOCK), dontfork / partial-dontfork (MADV_DONTFORK
coverage of its io_uring buffers), wipeonfork, overlap (pinned ranges registered twice: counted
twice), io_uring, unreadable (run as root to see everything).`)
    .argument('[pid...]', 'only these processes')
    .option('-u, --user <name|uid>', 'only processes of this user')
    .addOption(new Option('-s, --sort <key>', 'sort processes by').choices([...SORT_KEYS]).default('pinned'))
    .option('-a, --all', 'include processes with nothing pinned or locked')
    .option('--json', 'print JSON (see rdmactl(1) for the keys)')
    .addOption(new Option('--format <format>', 'text, json (= --json), or prometheus: the exporter\'s metrics for the whole machine, once').choices(['text', 'json', 'prometheus']))
    .addHelpText('after', `
Examples:
  rdmactl stat                       every process that pins or locks memory
  rdmactl stat --sort headroom       closest to RLIMIT_MEMLOCK first
  rdmactl stat --json | jq '.system.pinnedBytes'
  rdmactl stat --format prometheus   one scrape of \`rdmactl exporter\`, e.g. for cron`)
    .action(async (pidArgs: string[], flags: { user?: string; sort: SortKey; all?: boolean; json?: boolean; format?: string }) => {
      if (flags.format === 'prometheus') {
        if (pidArgs.length > 0 || flags.user !== undefined || flags.json) throw new UsageError('--format prometheus covers the whole machine: leave out PIDs, --user and --json');
        const { exposeOnce } = await import('../exporter/run.js');
        const { DEFAULT_MAX_PROCESSES } = await import('../exporter/metrics.js');
        ctx.stdout.write(await exposeOnce({ version: packageVersion(), maxProcesses: DEFAULT_MAX_PROCESSES }));
        return;
      }
      const pids = pidArgs.length > 0 ? parsePidList(pidArgs) : undefined;
      const report = collectStat({ ...(pids ? { pids, all: true } : { all: flags.all ?? false }) });
      if (flags.user !== undefined) {
        const wanted = flags.user;
        if (wanted.trim() === '') throw new UsageError('invalid --user \'\': give a user name or uid');
        report.processes = report.processes.filter((p) => p.user === wanted || String(p.uid) === wanted);
        report.users = report.users.filter((u) => u.user === wanted || String(u.uid) === wanted);
      }
      report.processes = sortProcesses(report.processes, flags.sort);
      if (flags.json || flags.format === 'json') {
        printJson(ctx, statJson(report));
        return;
      }
      if (report.processes.length === 0) ctx.stdout.write('No process has pinned or locked memory.\n');
      else ctx.stdout.write(`${renderTable(PROCESS_FIELDS, report.processes)}\n`);
      if (report.users.length > 0) ctx.stdout.write(`${renderTable(USER_FIELDS, report.users)}\n`);
      ctx.stdout.write(`${renderRecord(SYSTEM_FIELDS, report.system)}\n`);
      if (report.unreadableProcesses > 0) {
        ctx.stdout.write(process.geteuid?.() === 0
          ? `${report.unreadableProcesses} processes only partly readable (the kernel refused smaps or fds even to root).\n`
          : `${report.unreadableProcesses} processes not readable; run as root for all.\n`);
      }
    });
}
