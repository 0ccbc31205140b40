// rdmactl stat [PID…]: pinned and locked memory against limits, per process, per user, system-wide.

import { Argument, Command, Option } from 'commander';
import { completes, dynamic, users } from '../lib/completionHints.js';
import { collectStat, type ProcessRow, type StatReport, type SystemRow, type UserRow } from '../observe/stat.js';
import { UsageError } from '../lib/errors.js';
import { note, type Context } from '../lib/context.js';
import { toJson, type Field } from '../lib/fields.js';
import { addOutputOptions, outputView, type OutputFlags } from '../lib/output.js';
import { targetPids } from '../observe/targets.js';
import { resolveUser } from '../proc/passwd.js';
import { collectGroupedStat, type GroupRow } from '../observe/cgroups.js';
import { GROUP_BY_CHOICES, GROUP_TEXT_FIELDS, groupsJson, type GroupByChoice } from '../observe/groupFields.js';
import { packageVersion } from '../lib/version.js';

export const PROCESS_FIELDS: readonly Field<ProcessRow>[] = [
  { key: 'pid', label: 'PID', description: 'process id', get: (p) => p.pid },
  { key: 'user', label: 'USER', description: 'owner (real uid) by name', get: (p) => p.user },
  { key: 'uid', label: 'UID', description: 'owner (real uid)', get: (p) => p.uid, extra: true },
  { key: 'comm', label: 'COMM', description: 'command name (/proc/PID/status Name)', get: (p) => p.comm },
  { key: 'pinnedBytes', label: 'PINNED', description: 'pinned memory: VmPin (RDMA MRs, io_uring buffers)', kind: 'bytes', get: (p) => p.pinnedBytes },
  { key: 'lockedBytes', label: 'LOCKED', description: 'locked memory: VmLck (mlock)', kind: 'bytes', get: (p) => p.lockedBytes },
  { key: 'memlockLimitBytes', label: 'MEMLOCK', description: 'soft RLIMIT_MEMLOCK (null: unlimited)', kind: 'bytes', nullText: 'unlimited', get: (p) => p.memlockLimitBytes },
  { key: 'headroomBytes', label: 'HEADROOM', description: 'RLIMIT_MEMLOCK minus the larger of VmPin and VmLck (null: unlimited)', kind: 'bytes', nullText: '-', get: (p) => p.headroomBytes },
  { key: 'uringBytes', label: 'IO_URING', description: 'bytes in io_uring fixed buffers (fdinfo UserBufs)', kind: 'bytes', get: (p) => p.uringBytes, extra: true },
  { key: 'dontforkBytes', label: 'DONTFORK', description: 'bytes of the io_uring buffers marked MADV_DONTFORK (smaps VmFlags dc)', kind: 'bytes', get: (p) => p.dontforkBytes, extra: true },
  { key: 'doubleCountedBytes', label: 'COUNTED TWICE', description: 'pinned bytes registered more than once (VmPin counts them again)', kind: 'bytes', get: (p) => p.doubleCountedBytes, extra: true },
  { key: 'flags', label: 'FLAGS', description: 'over-limit, dontfork, partial-dontfork, wipeonfork, overlap, io_uring, unreadable', get: (p) => p.flags },
];

export const USER_FIELDS: readonly Field<UserRow>[] = [
  { key: 'uid', label: 'UID', description: 'user id', get: (u) => u.uid },
  { key: 'user', label: 'USER', description: 'user name', get: (u) => u.user },
  { key: 'processes', label: 'PROCS', description: 'processes of this user that pin or lock', kind: 'count', get: (u) => u.processes },
  { key: 'pinnedBytes', label: 'PINNED', description: 'sum of VmPin of those processes', kind: 'bytes', get: (u) => u.pinnedBytes },
  { key: 'lockedBytes', label: 'LOCKED', description: 'sum of VmLck of those processes', kind: 'bytes', get: (u) => u.lockedBytes },
  { key: 'uringBytes', label: 'IO_URING (charged to user)', description: 'io_uring fixed buffers, charged to the user\'s locked memory across processes', kind: 'bytes', get: (u) => u.uringBytes },
];

export const SYSTEM_FIELDS: readonly Field<SystemRow>[] = [
  { key: 'pinnedBytes', label: 'pinned (sum of VmPin)', description: 'sum of VmPin over all processes', kind: 'bytes', get: (s) => s.pinnedBytes },
  { key: 'lockedBytes', label: 'locked (sum of VmLck)', description: 'sum of VmLck over all processes', kind: 'bytes', get: (s) => s.lockedBytes },
  { key: 'mlockedBytes', label: 'Mlocked (meminfo)', description: 'Mlocked in /proc/meminfo', kind: 'bytes', get: (s) => s.mlockedBytes },
  { key: 'unevictableBytes', label: 'Unevictable (meminfo)', description: 'Unevictable in /proc/meminfo', kind: 'bytes', get: (s) => s.unevictableBytes },
  { key: 'memTotalBytes', label: 'MemTotal', description: 'MemTotal in /proc/meminfo', kind: 'bytes', get: (s) => s.memTotalBytes },
  { key: 'pinnedPercent', label: 'pinned share of MemTotal', description: 'pinnedBytes as a percentage of MemTotal', kind: 'percent', get: (s) => Math.round(s.pinnedPercent * 1000) / 1000 },
  { key: 'processesHolding', label: 'processes pinning or locking', description: 'processes with VmPin or VmLck above zero', kind: 'count', get: (s) => s.processesHolding },
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

/** The body of a `stat --json` document (schema rdmactl.stat/1); `processFields` from -o. */
export function statJson(report: StatReport, processFields: readonly Field<ProcessRow>[] = PROCESS_FIELDS): { [key: string]: unknown } {
  return {
    processes: report.processes.map((p) => toJson(processFields, p)),
    users: report.users.map((u) => toJson(USER_FIELDS, u)),
    system: toJson(SYSTEM_FIELDS, report.system),
    scannedProcesses: report.scannedProcesses,
    unreadableProcesses: report.unreadableProcesses,
    scannedAt: new Date(report.scannedAt).toISOString(),
  };
}

/** --user: a comma list of user names (from /etc/passwd) or uids; anything else is a usage error. */
function userList(text: string): Set<number> {
  const names = text.split(',').map((name) => name.trim());
  if (names.every((name) => name === '')) throw new UsageError(`invalid --user '${text}': give a user name or uid (or a comma list)`);
  const uids = new Set<number>();
  for (const name of names) {
    if (name === '') continue;
    const uid = resolveUser(name);
    if (uid === null) {
      throw new UsageError(/^\d+$/.test(name)
        ? `invalid --user '${name}': uids go from 0 to 4294967294`
        : `invalid --user '${name}': no such user in /etc/passwd; give a user name or a numeric uid`);
    }
    uids.add(uid);
  }
  return uids;
}

const STAT_OUTPUT = { name: 'stat', fields: PROCESS_FIELDS };

interface StatFlags extends OutputFlags {
  user?: string;
  sort: SortKey;
  all?: boolean;
  by?: GroupByChoice;
  format?: 'text' | 'json' | 'prometheus';
}

export function statCommand(ctx: Context): Command {
  const command = new Command('stat')
    .summary('pinned and locked memory against limits: per process, user, system')
    .description(`Scan every process and show who has pinned (VmPin: RDMA MRs, io_uring buffers) or
locked (VmLck: mlock) memory, against its RLIMIT_MEMLOCK, with per-user totals (io_uring charges
the user, across processes) and system totals (sum of VmPin, Mlocked, Unevictable vs MemTotal).

Flags: over-limit (possible with CAP_IPC_LOCK), dontfork / partial-dontfork (MADV_DONTFORK
coverage of its io_uring buffers), wipeonfork, overlap (pinned ranges registered twice: counted
twice), io_uring, unreadable (run as root to see everything).`)
    .addArgument(completes(new Argument('[pid...]', 'only these processes'), dynamic('pids')))
    .addOption(completes(new Option('-u, --user <list>', 'only processes of these users (names or uids, comma list)'), users(true)))
    .addOption(new Option('-s, --sort <key>', 'sort processes by').choices([...SORT_KEYS]).default('pinned'))
    .option('-a, --all', 'include processes with nothing pinned or locked')
    .addOption(new Option('--by <group>', 'one row per cgroup, systemd unit, container (or pod, Slurm job), or user, with the group\'s memory and rdma limits').choices([...GROUP_BY_CHOICES]))
    .option('--json', 'print JSON (see rdmactl(1) for the keys)')
    .addOption(new Option('--format <format>', 'text, json (= --json), or prometheus: the exporter\'s metrics for the whole machine, once').choices(['text', 'json', 'prometheus']))
    .addHelpText('after', `
Examples:
  rdmactl stat                       every process that pins or locks memory
  rdmactl stat --by unit             per systemd unit, against its memory.max and rdma.max
  rdmactl stat --sort headroom       closest to RLIMIT_MEMLOCK first
  rdmactl stat --json | jq '.system.pinnedBytes'
  rdmactl stat -o pid,pinnedBytes --json   only these keys of each process
  rdmactl stat -rn -b -o pid,comm,pinned   bare lines for awk: 1234 ib_write_bw 67108864
  rdmactl stat --format prometheus   one scrape of \`rdmactl exporter\`, e.g. for cron

-o, -r and -n apply to the process table; with -r or -n only that table is printed (the user and
system totals are in the default view and in --json).`)
    .action(async (pidArgs: string[], flags: StatFlags) => {
      if (flags.format === 'prometheus') {
        if (pidArgs.length > 0 || flags.user !== undefined || flags.json || flags.by !== undefined) {
          throw new UsageError('--format prometheus covers the whole machine: leave out PIDs, --user, --by and --json');
        }
        const { exposeOnce } = await import('../exporter/run.js');
        const { DEFAULT_MAX_PROCESSES } = await import('../exporter/metrics.js');
        ctx.stdout.write(await exposeOnce({ version: packageVersion(), maxProcesses: DEFAULT_MAX_PROCESSES }));
        return;
      }
      if (flags.format === 'json') flags.json = true;
      const view = outputView(ctx, STAT_OUTPUT, flags);
      const pids = pidArgs.length > 0 ? targetPids(pidArgs, (line) => note(ctx, line)) : undefined;
      const uids = flags.user !== undefined ? userList(flags.user) : undefined;
      const options = pids ? { pids, all: true } : { all: flags.all ?? false };
      let groups: GroupRow[] | null = null;
      let report: StatReport;
      if (flags.by !== undefined && flags.by !== 'user') ({ report, groups } = collectGroupedStat(flags.by, options));
      else report = collectStat(options);
      if (uids !== undefined) {
        report.processes = report.processes.filter((p) => uids.has(p.uid));
        report.users = report.users.filter((u) => uids.has(u.uid));
      }
      report.processes = sortProcesses(report.processes, flags.sort);
      if (groups !== null && uids !== undefined) {
        const members = new Set(report.processes.map((p) => p.pid));
        groups = groups.filter((g) => g.members.some((m) => members.has(m.pid)));
      }
      if (view.json) {
        const document = statJson(report, view.fields);
        view.printDocument(groups === null ? document : { ...document, by: flags.by ?? null, groups: groupsJson(groups) });
        return;
      }
      if (flags.by !== undefined) {
        if (groups !== null) {
          if (groups.length === 0) view.prose('No group has pinned or locked memory.');
          else view.printOther(GROUP_TEXT_FIELDS, groups);
        } else if (report.users.length > 0) view.printOther(USER_FIELDS, report.users);
        else view.prose('No user has pinned or locked memory.');
        view.printOtherRecord(SYSTEM_FIELDS, report.system);
        return;
      }
      if (report.processes.length === 0) view.prose('No process has pinned or locked memory.');
      else view.printTable(report.processes);
      if (report.users.length > 0) view.printOther(USER_FIELDS, report.users);
      view.printOtherRecord(SYSTEM_FIELDS, report.system);
      if (report.unreadableProcesses > 0) {
        view.warn(process.geteuid?.() === 0
          ? `${report.unreadableProcesses} processes only partly readable (the kernel refused smaps or fds even to root).`
          : `${report.unreadableProcesses} processes not readable; run as root for all.`);
      }
    });
  return addOutputOptions(command, ctx, STAT_OUTPUT);
}
