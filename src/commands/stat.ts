// rdmactl stat [PID…] [--pid LIST]: pinned and locked memory against limits, per process, per user, system-wide.

import { Argument, Command, Option } from 'commander';
import { commaListOf, completes, dynamic, users } from '../lib/completionHints.js';
import { collectStat, type ProcessRow, type StatReport } from '../observe/stat.js';
import { PROCESS_FIELDS, SYSTEM_FIELDS, USER_FIELDS, statJson } from '../observe/statFields.js';
import { RdmactlError, UsageError } from '../lib/errors.js';
import { SyscallError } from '../lib/errno.js';
import { note, type Context } from '../lib/context.js';
import type { Field } from '../lib/fields.js';
import { addOutputOptions, outputView, type OutputFlags, type OutputView } from '../lib/output.js';
import { parseSortKeys, sortRecords } from '../lib/sort.js';
import { targetPids } from '../observe/targets.js';
import { resolveUser } from '../proc/accounts.js';
import { collectGroupedStat, type GroupRow } from '../observe/cgroups.js';
import { GROUP_BY_CHOICES, GROUP_FIELDS, GROUP_TEXT_FIELDS, groupsJson, type GroupByChoice } from '../observe/groupFields.js';
import { packageVersion } from '../lib/version.js';
import { counted } from '../lib/plural.js';
import { addWatchOptions, eachSample, watchPlan, type WatchFlags } from '../lib/watch.js';

/** --user: a comma list of user names (looked up through NSS) or uids; anything else is a usage error. */
function userList(text: string): Set<number> {
  const names = text.split(',').map((name) => name.trim());
  if (names.every((name) => name === '')) throw new UsageError(`invalid --user '${text}': give a user name or uid (or a comma list)`);
  const uids = new Set<number>();
  for (const name of names) {
    if (name === '') continue;
    let uid: number | null;
    try {
      uid = resolveUser(name);
    } catch (err) {
      if (!(err instanceof SyscallError)) throw err;
      throw new RdmactlError(`cannot look up --user '${name}': ${err.message} (the user database, through NSS, failed: is sssd or the directory service reachable?)`);
    }
    if (uid === null) {
      throw new UsageError(/^\d+$/.test(name)
        ? `invalid --user '${name}': uids go from 0 to 4294967294`
        : `invalid --user '${name}': no such user (looked up through NSS: /etc/passwd, LDAP, sssd…); give a user name or a numeric uid`);
    }
    uids.add(uid);
  }
  return uids;
}

const STAT_OUTPUT = { name: 'stat', fields: PROCESS_FIELDS };

/** Without --sort: most pinned first, then most locked; equal rows by pid (groups by name, users by uid). */
const DEFAULT_SORT = '-pinnedBytes,-lockedBytes';
/** Completion offers every table's keys: the shell cannot tell which table --by will choose. */
const SORT_KEY_WORDS = [...new Set([PROCESS_FIELDS, GROUP_FIELDS, USER_FIELDS].flatMap((fields) => fields.map((f) => f.key)))];

interface StatFlags extends OutputFlags, WatchFlags {
  pid?: string;
  user?: string;
  sort?: string;
  reverse?: boolean;
  all?: boolean;
  by?: GroupByChoice;
  summary?: boolean;
  format?: 'text' | 'json' | 'prometheus';
}

/** Positional pids and --pid lists, merged; each source named in its own errors. */
function requestedPids(ctx: Context, pidArgs: readonly string[], pidOption: string | undefined): number[] | undefined {
  if (pidArgs.length === 0 && pidOption === undefined) return undefined;
  const notify = (line: string): void => note(ctx, line);
  const given = [...(pidArgs.length > 0 ? targetPids(pidArgs, notify) : []), ...(pidOption !== undefined ? targetPids([pidOption], notify, '--pid') : [])];
  return [...new Set(given)];
}

export function statCommand(ctx: Context): Command {
  const command = new Command('stat')
    .summary('pinned and locked memory against limits: per process, user, system')
    .description(`Scan every process and show who has pinned (VmPin: RDMA MRs, io_uring buffers) or
locked (VmLck: mlock) memory, against its RLIMIT_MEMLOCK, with per-user totals (io_uring charges
the user, across processes) and system totals (sum of VmPin, Mlocked, Unevictable vs MemTotal).

On a terminal: the process table, then the user and the system totals, each under a title: with
PIDs the user totals count only the listed processes ("users (only the listed processes)"), while
the system totals are always the whole machine's (--json: usersCover). Anywhere else (a pipe, a
file) only the one table a script reads, like ps: the processes, or the groups with --by (--by user:
the user totals); --summary prints the user and system totals alone, anywhere. Notes go to stderr
there. --json always has all of it.

--by cgroup|unit|container also shows the groups none of whose processes pins or locks but that hold
rdma objects (an on-demand-paging MR, a PD) or are near their own memory or rdma limit, with 0
processes; not when PIDs or --user select the processes.

A PID that names no process is reported on stderr ("no such process: PID") and the exit status is 1,
as with ps -p; the processes that do exist are still printed.

Flags: over-limit (possible with CAP_IPC_LOCK), dontfork / partial-dontfork (MADV_DONTFORK
coverage of its io_uring buffers), wipeonfork, overlap (pinned ranges registered twice: counted
twice), io_uring, unreadable (run as root to see everything).`)
    .addArgument(completes(new Argument('[pid...]', 'only these processes (as --pid)'), dynamic('pids')))
    .addOption(completes(new Option('-p, --pid <pids>', 'only these processes (comma list; merged with PID arguments)'), dynamic('pids', true)))
    .addOption(completes(new Option('-u, --user <list>', 'only processes of these users (names known to NSS, or uids; comma list); the user and group totals count only theirs'), users(true)))
    .addOption(completes(new Option('-s, --sort <keys>', 'sort the processes (with --by: the groups) by these columns (keys or labels, see -H), comma list, -KEY descending; default -pinnedBytes,-lockedBytes'), commaListOf(SORT_KEY_WORDS)))
    .option('--reverse', 'reverse the sort: every --sort key (or the default order) the other way round')
    .option('-a, --all', 'include processes with nothing pinned or locked')
    .addOption(new Option('--by <group>', 'one row per cgroup, systemd unit, container (or pod, Slurm job), or user, with the group\'s memory and rdma limits').choices([...GROUP_BY_CHOICES]))
    .option('--summary', 'print the user and system totals instead of the process table')
    .option('--json', 'print JSON (see rdmactl(1) for the keys)')
    .addOption(new Option('--format <format>', 'text, json (= --json), or prometheus: the exporter\'s metrics for the whole machine, once').choices(['text', 'json', 'prometheus']))
    .addHelpText('after', `
Examples:
  rdmactl stat                       every process that pins or locks memory
  rdmactl stat --by unit             per systemd unit, against its memory.max and rdma.max
  rdmactl stat --sort headroom       closest to RLIMIT_MEMLOCK first (unlimited last)
  rdmactl stat --sort user,-pinned   by user, then most pinned first
  rdmactl stat --by unit --sort -procs   the units with the most pinning processes first
  rdmactl stat | awk '{print $1}'    the pids (and the PID header): one table in a pipe
  rdmactl stat --summary             the per-user and system totals only
  rdmactl stat --json | jq '.system.pinnedBytes'
  rdmactl stat -o pid,pinnedBytes --json   only these keys of each process
  rdmactl stat -rn -b -o pid,comm,pinned   bare lines for awk: 1234 ib_write_bw 67108864
  rdmactl stat --format prometheus   one scrape of \`rdmactl exporter\`, e.g. for cron
  rdmactl stat --interval 2          again every 2 s, each sample after a time line, until Ctrl-C
  rdmactl stat --json -i 1s --count 60 > pins.ndjson   a minute of samples, one line each, with "time"

-o applies to the process table (and the processes of --json); --sort too, or with --by to the
groups (their columns: GROUP, PROCS, PINNED, MEM-LIMIT...; --by user: USER, UID...). -r and -n print the one
table's records only: the processes, the groups of --by, or with --summary the system totals as one line.

--interval repeats on a fixed clock (a slow scan skips a tick rather than drifting); text samples
are separated by a blank line, JSON samples are one line each. Ctrl-C or SIGTERM ends it between
samples, and so does a reader that goes away (| head): exit 0.`)
    .action(async (pidArgs: string[], flags: StatFlags) => {
      if (flags.format === 'prometheus') {
        if (pidArgs.length > 0 || flags.pid !== undefined || flags.user !== undefined || flags.json || flags.by !== undefined || flags.summary || flags.interval !== undefined) {
          throw new UsageError('--format prometheus covers the whole machine, once: leave out PIDs, --pid, --user, --by, --summary, --json and --interval');
        }
        const { exposeOnce } = await import('../exporter/run.js');
        const { DEFAULT_MAX_PROCESSES } = await import('../exporter/metrics.js');
        ctx.stdout.write(await exposeOnce({ version: packageVersion(), maxProcesses: DEFAULT_MAX_PROCESSES }));
        return;
      }
      if (flags.summary && flags.by !== undefined) throw new UsageError('choose one of --summary and --by: --by user shows the user totals as a table');
      if (flags.format === 'json') flags.json = true;
      const view = outputView(ctx, STAT_OUTPUT, flags);
      // --sort and --reverse order the table printed: the processes, or with --by the groups (--by user:
      // the users); the processes of --json under --by keep the default order. Ties by each row's id.
      const sortOptions = { reverse: flags.reverse ?? false, option: flags.by !== undefined ? `--sort (with --by ${flags.by})` : '--sort' };
      const sortBy = <R>(fields: readonly Field<R>[], tie: string, asked: boolean) => [
        ...parseSortKeys(asked ? flags.sort ?? DEFAULT_SORT : DEFAULT_SORT, fields, asked ? sortOptions : {}),
        ...parseSortKeys(tie, fields),
      ];
      const sortKeys = sortBy(PROCESS_FIELDS, 'pid', flags.by === undefined);
      const groupKeys = flags.by === undefined || flags.by === 'user' ? null : sortBy(GROUP_FIELDS, 'group', true);
      const userKeys = flags.by === 'user' ? sortBy(USER_FIELDS, 'uid', true) : null;
      const plan = watchPlan(flags);
      const pids = requestedPids(ctx, pidArgs, flags.pid);
      const uids = flags.user !== undefined ? userList(flags.user) : undefined;
      const options = { ...(pids ? { pids, all: true } : { all: flags.all ?? false }), ...(uids ? { uids } : {}) };
      let missing: number[] = [];
      await eachSample(ctx, plan, view.json, (stamp) => {
        let groups: GroupRow[] | null = null;
        let report: StatReport;
        if (flags.by !== undefined && flags.by !== 'user') ({ report, groups } = collectGroupedStat(flags.by, options));
        else report = collectStat(options);
        // As ps -p: nothing found is an error and prints nothing; some found prints those, still exit 1.
        missing = report.missingPids;
        if (pids !== undefined && missing.length === pids.length) throw new RdmactlError(noSuchProcess(missing));
        report.processes = sortRecords(report.processes, sortKeys);
        if (groups !== null && groupKeys !== null) groups = sortRecords(groups, groupKeys);
        if (userKeys !== null) report.users = sortRecords(report.users, userKeys);
        if (view.json) {
          const document = { ...stamp.json, ...statJson(report, view.fields) };
          // A repeated sample is one line of a stream, even on a terminal.
          view.printDocument(groups === null ? document : { ...document, by: flags.by ?? null, groups: groupsJson(groups) }, plan !== null ? 'line' : undefined);
        } else {
          printStatText(ctx, view, flags, report, groups);
        }
      });
      if (missing.length > 0) throw new RdmactlError(noSuchProcess(missing));
    });
  return addOutputOptions(addWatchOptions(command), ctx, STAT_OUTPUT);
}

function noSuchProcess(pids: readonly number[]): string {
  return `no such process: ${pids.join(', ')}`;
}

/**
 * The text views. On a terminal: the main table, then the totals that belong with it. Elsewhere (a
 * pipe or a file) and with -r/-n: the main table only, header and records, even when it has no rows.
 */
function printStatText(ctx: Context, view: OutputView<ProcessRow>, flags: StatFlags, report: StatReport, groups: GroupRow[] | null): void {
  const oneTable = view.recordsOnly || !ctx.stdoutIsTty;
  const listed = report.usersCover === 'listed-processes';
  const selected = listed || flags.user !== undefined;
  /**
   * Which totals are which: the user totals may sum only the listed processes, the system totals
   * never do. A title on a terminal; in a pipe (--summary) a note on stderr, and only when they differ.
   */
  const title = (which: 'users' | 'system'): void => {
    if (view.recordsOnly) return;
    if (ctx.stdoutIsTty) ctx.stdout.write(which === 'system' ? 'system (whole machine)\n' : `users (${listed ? 'only the listed processes' : 'all processes'})\n`);
    else if (listed && which === 'users') view.prose('the user totals count only the listed processes; the system totals are the whole machine\'s');
  };
  /** A table that is the records of this view: -r and -n apply to it (view.printOther would drop it). */
  const mainTable = <T>(fields: readonly Field<T>[], records: readonly T[], empty: string): void => {
    if (records.length === 0 && !oneTable) view.prose(empty);
    else outputView(ctx, { name: 'stat', fields }, { noheadings: flags.noheadings, raw: flags.raw, bytes: flags.bytes }).printTable(records);
  };
  if (flags.summary) {
    if (view.recordsOnly) view.printOtherRecord(SYSTEM_FIELDS, report.system, 'bare');
    else {
      title('users');
      if (report.users.length > 0) view.printOther(USER_FIELDS, report.users);
      else view.prose('No user has pinned or locked memory.');
      title('system');
      view.printOtherRecord(SYSTEM_FIELDS, report.system);
    }
  } else if (flags.by !== undefined) {
    if (groups !== null) mainTable(GROUP_TEXT_FIELDS, groups, selected ? 'No group has pinned or locked memory.' : 'No group has pinned or locked memory, holds rdma objects or is near its limit.');
    else {
      title('users');
      mainTable(USER_FIELDS, report.users, 'No user has pinned or locked memory.');
    }
    if (!oneTable) {
      title('system');
      view.printOtherRecord(SYSTEM_FIELDS, report.system);
    }
  } else {
    if (report.processes.length === 0 && !oneTable) view.prose('No process has pinned or locked memory.');
    else view.printTable(report.processes);
    if (!oneTable) {
      if (report.users.length > 0) {
        title('users');
        view.printOther(USER_FIELDS, report.users);
      }
      title('system');
      view.printOtherRecord(SYSTEM_FIELDS, report.system);
    }
  }
  if (report.unreadableProcesses > 0) {
    view.warn(ctx.euid === 0
      ? `${counted(report.unreadableProcesses, 'process', 'processes')} only partly readable (the kernel refused smaps or fds even to root).`
      : `${counted(report.unreadableProcesses, 'process', 'processes')} not readable; run as root for all.`);
  }
}
