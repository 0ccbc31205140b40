// rdmactl stat [PID…]: pinned and locked memory against limits, per process, per user, system-wide.

import { Argument, Command, Option } from 'commander';
import { completes, dynamic, users } from '../lib/completionHints.js';
import { collectStat, type StatReport } from '../observe/stat.js';
import { PROCESS_FIELDS, SORT_KEYS, SYSTEM_FIELDS, USER_FIELDS, sortProcesses, statJson, type SortKey } from '../observe/statFields.js';
import { UsageError } from '../lib/errors.js';
import { note, type Context } from '../lib/context.js';
import { addOutputOptions, outputView, type OutputFlags } from '../lib/output.js';
import { targetPids } from '../observe/targets.js';
import { resolveUser } from '../proc/passwd.js';
import { collectGroupedStat, type GroupRow } from '../observe/cgroups.js';
import { GROUP_BY_CHOICES, GROUP_TEXT_FIELDS, groupsJson, type GroupByChoice } from '../observe/groupFields.js';
import { packageVersion } from '../lib/version.js';

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
        view.warn(ctx.euid === 0
          ? `${report.unreadableProcesses} processes only partly readable (the kernel refused smaps or fds even to root).`
          : `${report.unreadableProcesses} processes not readable; run as root for all.`);
      }
    });
  return addOutputOptions(command, ctx, STAT_OUTPUT);
}
