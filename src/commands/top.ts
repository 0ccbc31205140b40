// rdmactl top: a live dashboard of pinned and locked memory (ink + React), or with --json an NDJSON
// stream of `stat --json` snapshots. ink and React are loaded only here, only for the dashboard, by a
// dynamic import (of dist/ui/dashboard.bundle.js when the build made one: it loads several times
// faster than ink's many modules), so `--json`, `stat` and the rest never pay for them.

import { existsSync } from 'node:fs';
import { Command, Option } from 'commander';
import { collectStat, type StatReport } from '../observe/stat.js';
import { collectGroupedStat, groupProcesses, type GroupRow } from '../observe/cgroups.js';
import { GROUP_BY_CHOICES, groupsJson, type GroupByChoice } from '../observe/groupFields.js';
import { collectRegistrations, readKernelMrs, type RegistrationSource } from '../observe/registrations.js';
import { heldSource } from '../observe/held.js';
import { scanProcesses } from '../proc/scan.js';
import { IncrementalScanner } from '../proc/incremental.js';
import { isDontFork, isLocked } from '../proc/smaps.js';
import { readRdmaDeviceNames } from '../proc/sysfs.js';
import { UsageError } from '../lib/errors.js';
import { printJson, type Context } from '../lib/context.js';
import { jsonDocument } from '../lib/output.js';
import { DURATION_HELP, parseCount, parseDuration } from '../lib/size.js';
import { SORT_KEYS, sortProcesses, statJson, type SortKey } from '../observe/statFields.js';
import { Sampler } from '../ui/sampler.js';
import type { DashboardActions, DashboardDeregOutcome, DeviceSummary, HeldSummary, ProcessDetailView } from '../ui/types.js';

export const MIN_INTERVAL_MS = 100;
/** The dashboard reads every process at least this often, even when the pin counters stood still. */
export const FULL_SCAN_EVERY_MS = 10_000;
/** A holder's smaps kept across full reads (while its maps is unchanged) is read again after this long. */
export const SMAPS_MAX_AGE_MS = 60_000;

interface TopFlags {
  interval: string;
  count?: string;
  sort: SortKey;
  json?: boolean;
  by?: GroupByChoice;
}

/** MR count per device, counted straight from the kernel MR table. */
export function deviceSummary(): DeviceSummary {
  const names = readRdmaDeviceNames();
  if (names.length === 0) return { available: false, reason: 'no RDMA device', mrsByDevice: {} };
  const { mrs, status } = readKernelMrs();
  if (!status.available) return { available: false, reason: status.reason, mrsByDevice: {} };
  const mrsByDevice: Record<string, number> = Object.fromEntries(names.map((name) => [name, 0]));
  for (const mr of mrs) {
    const device = mr.device ?? '?';
    mrsByDevice[device] = (mrsByDevice[device] ?? 0) + 1;
  }
  return { available: true, reason: null, mrsByDevice };
}

// Held registrations (`reg --detach`, `dereg`): src/held/, loaded with the dashboard only.
type HeldApi = Pick<typeof import('../held/index.js'), 'listHeld' | 'deregister' | 'findHolderProcesses' | 'HOLDER_PROCESS_NAME'>;

/** `holderPids()`: holders among the processes of the latest refresh (found by name, no extra /proc pass). */
function heldSummary(api: HeldApi, holderPids: () => readonly number[]): () => HeldSummary {
  return () => {
    const live = api.listHeld({}, { holders: api.findHolderProcesses(holderPids()) }).filter((entry) => entry.state === 'live');
    const idsByPid: Record<number, string[]> = {};
    for (const entry of live) if (entry.problem === null) (idsByPid[entry.pid] ??= []).push(entry.id);
    return { available: true, reason: null, count: live.length, idsByPid };
  };
}

/** Everything the detail view shows about one process. */
export function processDetail(pid: number, euid: number): ProcessDetailView {
  const scan = scanProcesses({ pids: [pid] });
  const snapshot = scan.processes[0];
  if (!snapshot) {
    return {
      pid, comm: '?', user: '?', gone: true, pinnedBytes: 0, lockedBytes: 0, memlockSoftBytes: null, memlockHardBytes: null,
      registrations: [], lockedRanges: [], dontforkRanges: [], notes: ['the process has exited'],
    };
  }
  const hasDevice = readRdmaDeviceNames().length > 0;
  const sources: RegistrationSource[] = ['io_uring', 'mlock', 'held', ...(hasDevice ? ['rdma' as const] : [])];
  const report = collectRegistrations({
    pids: [pid],
    scan,
    sources,
    held: (scanned) => heldSource({ cleanStale: false }, scanned),
    ...(hasDevice ? {} : { kernelMrs: () => ({ mrs: [], status: { available: false, reason: 'no RDMA device' } }) }),
  });
  const vmas = snapshot.detail?.vmas ?? [];
  const ranges = (keep: (vma: (typeof vmas)[number]) => boolean) =>
    vmas.filter(keep).map((vma) => ({ start: vma.start, end: vma.end, what: vma.pathname || '[anon]' }));
  const notes: string[] = [];
  if (snapshot.unreadable.length > 0) {
    notes.push(`not readable: ${snapshot.unreadable.join(', ')} (${euid === 0 ? 'the kernel refused even root' : 'run as root to see everything'})`);
  }
  if (hasDevice && !report.sources.rdma.available) notes.push(`kernel MR table: ${report.sources.rdma.reason}`);
  return {
    pid,
    comm: snapshot.name,
    user: snapshot.user,
    gone: false,
    pinnedBytes: snapshot.pinnedBytes,
    lockedBytes: snapshot.lockedBytes,
    memlockSoftBytes: snapshot.detail?.memlock?.softBytes ?? null,
    memlockHardBytes: snapshot.detail?.memlock?.hardBytes ?? null,
    registrations: report.registrations,
    lockedRanges: ranges(isLocked),
    dontforkRanges: ranges(isDontFork),
    notes,
  };
}

function dashboardActions(api: HeldApi, euid: number): DashboardActions {
  return {
    loadDetail: (pid) => processDetail(pid, euid),
    groups: (by, processes) => groupProcesses(processes, by),
    async deregister(ids: string[]): Promise<DashboardDeregOutcome> {
      try {
        const results = await api.deregister(ids);
        return { ok: results.every((r) => r.exitCode === 0), message: results.map((r) => r.message).join('; ') };
      } catch (err) {
        return { ok: false, message: `dereg ${ids.join(', ')} failed: ${err instanceof Error ? err.message : String(err)}` };
      }
    },
  };
}

interface DashboardModule {
  runDashboard(options: { source: Sampler; actions: DashboardActions; count?: number; initialSort?: SortKey }): Promise<void>;
}

/** The bundled dashboard when the build made one (RDMACTL_TOP_UNBUNDLED=1 forces the plain modules). */
async function loadDashboard(ctx: Context): Promise<DashboardModule> {
  // ink's colour library reads FORCE_COLOR (not NO_COLOR) when it loads: translate the convention.
  const noColor = ctx.env['NO_COLOR'];
  if (noColor !== undefined && noColor !== '') process.env['FORCE_COLOR'] = '0';
  const bundle = new URL('../ui/dashboard.bundle.js', import.meta.url);
  const unbundled = ctx.env['RDMACTL_TOP_UNBUNDLED'];
  const useBundle = existsSync(bundle) && (unbundled === undefined || unbundled === '' || unbundled === '0');
  // With CI or CONTINUOUS_INTEGRATION set, ink decides (once, when it loads) to print only the last
  // frame at exit: a dashboard in a real terminal of a CI job would stay blank. We only get here
  // with a TTY on stdout, so hide those variables while ink loads and put them back afterwards.
  const ciVariables = ['CI', 'CONTINUOUS_INTEGRATION'] as const;
  const saved = ciVariables.map((name) => [name, process.env[name]] as const);
  for (const name of ciVariables) delete process.env[name];
  try {
    return useBundle ? ((await import(bundle.href)) as DashboardModule) : await import('../ui/dashboard/run.js');
  } finally {
    for (const [name, value] of saved) if (value !== undefined) process.env[name] = value;
  }
}

function streamJson(ctx: Context, sampler: Sampler, count: number | undefined, render: (report: StatReport) => unknown = statJson): Promise<void> {
  return new Promise((resolve) => {
    let printed = 0;
    const finish = (): void => {
      sampler.stop();
      process.stdout.off('error', onError);
      resolve();
    };
    // A closed pipe (`| head -1`) ends the stream quietly.
    const onError = (err: NodeJS.ErrnoException): void => {
      if (err.code === 'EPIPE') finish();
    };
    process.stdout.on('error', onError);
    sampler.subscribe(() => {
      const snapshot = sampler.getSnapshot();
      if (!snapshot || snapshot.error) return;
      printJson(ctx, jsonDocument('stat', render(snapshot.report) as Record<string, unknown>));
      printed++;
      if (count !== undefined && printed >= count) finish();
    });
    sampler.start();
  });
}

export function topCommand(ctx: Context): Command {
  return new Command('top')
    .summary('live dashboard of pinned and locked memory (or an NDJSON stream with --json)')
    .description(`A full-screen view refreshed every interval: system totals (sum of VmPin, Mlocked,
Unevictable against MemTotal) with a history sparkline, MRs per RDMA device, held registrations,
processes sorted by pinned memory with their RLIMIT_MEMLOCK, and per-user totals (io_uring charges
the user). New, growing and exiting rows are highlighted for one refresh.

Keys: q quit, s sort, / filter (comm, user or pid), g group (by unit, container, cgroup, then
processes again), p pause, arrows select, Enter detail,
d deregister a held registration, ? help, Esc back.

To stay cheap, a refresh reads every process only when the kernel's pin counters (/proc/vmstat
nr_foll_pin_*) moved, and at least every ${FULL_SCAN_EVERY_MS / 1000} s; otherwise it reads the processes that already
pin or lock and new ones. So a pin shows at the next refresh, but an mlock by a process that was
idle at the last full read (no counter tracks VmLck) can take up to ${FULL_SCAN_EVERY_MS / 1000} s. A holder's
smaps (its DONTFORK/WIPEONFORK flags) is re-read when its VmPin or VmLck changes, at full reads when
its /proc/PID/maps changed, and at least every ${SMAPS_MAX_AGE_MS / 1000} s.

Needs a terminal; for scripts use --json: one \`stat --json\` document per line, per interval
(every one a full scan).`)
    .option('-i, --interval <duration>', `time between refreshes, at least ${MIN_INTERVAL_MS}ms (${DURATION_HELP})`, '1s')
    .option('-n, --count <n>', 'stop after N refreshes (N snapshots with --json)')
    .addOption(new Option('-s, --sort <key>', 'initial sort').choices([...SORT_KEYS]).default('pinned'))
    .option('--json', 'stream NDJSON: one stat --json snapshot per interval (schema rdmactl.stat/1)')
    .addOption(new Option('--by <group>', 'with --json: each snapshot also carries the groups of stat --by').choices([...GROUP_BY_CHOICES]))
    .addHelpText('after', `
Examples:
  rdmactl top                                  the dashboard
  rdmactl top --interval 250ms --sort headroom
  rdmactl top --json --count 10 | jq -c '.system.pinnedBytes'`)
    .action(async (flags: TopFlags) => {
      const intervalMs = parseDuration(flags.interval, '--interval');
      if (intervalMs < MIN_INTERVAL_MS) throw new UsageError(`invalid --interval '${flags.interval}': at least ${MIN_INTERVAL_MS}ms`);
      const count = flags.count === undefined ? undefined : parseCount(flags.count, '--count');
      if (flags.by !== undefined && !flags.json) throw new UsageError('--by needs --json (the dashboard shows processes and users)');
      if (flags.json) {
        // Every snapshot a full scan, sorted like `stat --json`; with --by, grouped from the same scan.
        const by = flags.by === 'user' ? undefined : flags.by;
        const groupsOf = new WeakMap<StatReport, GroupRow[]>();
        const collect = () => {
          let report: StatReport;
          if (by) {
            const grouped = collectGroupedStat(by);
            report = grouped.report;
            groupsOf.set(report, grouped.groups);
          } else report = collectStat();
          report.processes = sortProcesses(report.processes, flags.sort);
          return report;
        };
        const render = (report: StatReport) => (by ? { ...statJson(report), by, groups: groupsJson(groupsOf.get(report) ?? []) } : statJson(report));
        await streamJson(ctx, new Sampler({ intervalMs, collect }), count, render);
        return;
      }
      if (!ctx.stdoutIsTty) {
        throw new UsageError("top needs a terminal (stdout is not a TTY); for pipelines use 'rdmactl top --json'");
      }
      // The dashboard re-reads idle processes only when the kernel's pin counters moved (or every 10 s).
      const scanner = new IncrementalScanner({ fullScanEveryMs: FULL_SCAN_EVERY_MS, smapsMaxAgeMs: SMAPS_MAX_AGE_MS });
      // The first full read runs on a worker thread while ink loads here.
      const firstScan = scanner.prefetch();
      const held: HeldApi = await import('../held/index.js');
      const dashboard = await loadDashboard(ctx);
      await firstScan;
      // Unsorted: the dashboard sorts its rows by the key the user picks.
      let holderPids: number[] = [];
      const collect = () => {
        const scan = scanner.scan();
        holderPids = scan.processes.filter((p) => p.name === held.HOLDER_PROCESS_NAME).map((p) => p.pid);
        return collectStat({}, scan);
      };
      const sampler = new Sampler({ intervalMs, collect, devices: deviceSummary, held: heldSummary(held, () => holderPids) });
      try {
        sampler.start();
        await dashboard.runDashboard({ source: sampler, actions: dashboardActions(held, ctx.euid), ...(count !== undefined ? { count } : {}), initialSort: flags.sort });
      } finally {
        sampler.stop();
      }
    });
}
