// rdmactl top: a live dashboard of pinned and locked memory (ink + React), or with --json an NDJSON
// stream of `stat --json` snapshots. ink and React are loaded only here, only for the dashboard, by a
// dynamic import (of dist/ui/dashboard.bundle.js when the build made one: it loads several times
// faster than ink's many modules), so `--json`, `stat` and the rest never pay for them.

import { existsSync } from 'node:fs';
import { Command, Option } from 'commander';
import type { StatReport } from '../observe/stat.js';
import { dashboardActions, TOP_FULL_SCAN_EVERY_MS, TOP_SMAPS_MAX_AGE_MS, type HeldApi } from '../ui/collectors.js';
import { GROUP_BY_CHOICES, type GroupByChoice } from '../observe/groupFields.js';
import { UsageError } from '../lib/errors.js';
import { printJsonLine, type Context } from '../lib/context.js';
import { jsonDocument } from '../lib/output.js';
import { DURATION_HELP } from '../lib/size.js';
import { eachSample, MIN_INTERVAL_MS, watchPlan, type WatchPlan } from '../lib/watch.js';
import { PROCESS_FIELDS } from '../observe/statFields.js';
import { commaListOf, completes } from '../lib/completionHints.js';
import { DEFAULT_SORT_TEXT, parseSortOrder, type SortOrder } from '../ui/format.js';
import { dashboardSampler, dashboardScanner, statStreamSampler, type Sampler } from '../ui/sampler.js';
import type { DashboardActions, EventsSource } from '../ui/types.js';
import { untilSignal } from '../lib/hold.js';

interface TopFlags {
  interval: string;
  count?: string;
  sort: string;
  reverse?: boolean;
  json?: boolean;
  by?: GroupByChoice;
}

interface DashboardModule {
  runDashboard(options: { source: Sampler; actions: DashboardActions; count?: number; initialSort?: SortOrder; events?: EventsSource }): Promise<void>;
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

/** `--json`: one stat document per tick, through the loop `stat --interval` uses (time key, quiet ends). */
async function streamJson(ctx: Context, plan: WatchPlan, sampler: Sampler, render: (report: StatReport) => Record<string, unknown>): Promise<void> {
  let first = true;
  await eachSample(ctx, plan, true, (stamp) => {
    // The first scan's errors end the command; a later failed scan is left out of the stream.
    const snapshot = sampler.sample(first);
    first = false;
    if (!snapshot.error) printJsonLine(ctx, jsonDocument('stat', { ...stamp.json, ...render(snapshot.report) }));
  });
}

export function topCommand(ctx: Context): Command {
  return new Command('top')
    .summary('live dashboard of pinned and locked memory (or an NDJSON stream with --json)')
    .description(`A full-screen view refreshed every interval: system totals (sum of VmPin, Mlocked,
Unevictable against MemTotal) with a history sparkline, MRs per RDMA device, held registrations,
processes sorted by pinned memory with their RLIMIT_MEMLOCK, and per-user totals (io_uring charges
the user). New, growing and exiting rows are highlighted for one refresh.

Keys: q quit, s sort (next key), I invert the sort, / filter (comm, user or pid), g group (by
unit, container, cgroup, then processes again), e events pane, p pause, arrows select, Enter detail,
d deregister a held registration, ? help, Esc back. In the detail: arrows or j/k, PgUp/PgDn
(Space), Home/End scroll a list taller than the terminal ("lines 1–20 of 140" says where you
are). A process that exits while its detail is open is shown as exited, with when it was last
seen; nothing of it (limits, sizes) is shown any more.

--sort takes what stat --sort takes: any column of stat's process table (key or label), KEY
ascending and -KEY descending, a comma list, --reverse; as ls --sort and ps --sort do. The default
is -pinned,-locked (most pinned first, then most locked). In the dashboard, s moves to the next of
pinned, locked, headroom, pid, comm, user, in its usual order (pinned and locked: largest first;
headroom: least first; pid, comm, user: ascending).

The events pane (e hides and shows it) traces as \`rdmactl trace\` does, all processes, while the
dashboard runs: the latest registrations, deregistrations, mlocks and failures (marked !, red) with
time, pid, command, source, bytes, latency and result, and each process's registrations per second
over the last 10 s. Tracing needs root and a mounted tracefs; without them the pane is one line
saying why. Its tracefs instance is removed whenever top ends (q, Ctrl-C, SIGTERM, SIGHUP, a closed
terminal).

To stay cheap, a refresh reads every process only when the kernel's pin counters (/proc/vmstat
nr_foll_pin_*) moved, and at least every ${TOP_FULL_SCAN_EVERY_MS / 1000} s; otherwise it reads the processes that already
pin or lock and new ones. So a pin shows at the next refresh, but an mlock by a process that was
idle at the last full read (no counter tracks VmLck) can take up to ${TOP_FULL_SCAN_EVERY_MS / 1000} s. A holder's
smaps (its DONTFORK/WIPEONFORK flags) is re-read when its VmPin or VmLck changes, at full reads when
its /proc/PID/maps changed, and at least every ${TOP_SMAPS_MAX_AGE_MS / 1000} s.

Needs a terminal; for scripts use --json: one \`stat --json\` document per line, per interval
(every one a full scan, with a "time" key: the same stream as \`stat --json --interval\`). Ctrl-C,
SIGTERM or a reader that goes away (| head) end the stream between lines, with exit 0.`)
    .option('-i, --interval <duration>', `time between refreshes, at least ${MIN_INTERVAL_MS}ms (${DURATION_HELP})`, '1s')
    .option('-n, --count <n>', 'stop after N refreshes (N snapshots with --json)')
    .addOption(completes(new Option('-s, --sort <keys>', 'initial sort, as stat --sort: columns (keys or labels, see stat -H), comma list, KEY ascending, -KEY descending').default(DEFAULT_SORT_TEXT), commaListOf(PROCESS_FIELDS.map((f) => f.key))))
    .option('--reverse', 'reverse the sort: every --sort key the other way round')
    .option('--json', 'stream NDJSON: one stat --json snapshot per interval (schema rdmactl.stat/1)')
    .addOption(new Option('--by <group>', 'with --json: each snapshot also carries the groups of stat --by').choices([...GROUP_BY_CHOICES]))
    .addHelpText('after', `
Examples:
  rdmactl top                                  the dashboard
  rdmactl top --interval 250ms --sort headroom
  rdmactl top --sort=-pid                      newest processes first
  rdmactl top --json --count 10 | jq -c '.system.pinnedBytes'`)
    .action(async (flags: TopFlags) => {
      const plan = watchPlan(flags)!; // --interval has a default
      const { intervalMs } = plan;
      const count = plan.count ?? undefined;
      const sort = parseSortOrder(flags.sort, { reverse: flags.reverse ?? false });
      if (flags.by !== undefined && !flags.json) throw new UsageError('--by needs --json (the dashboard shows processes and users)');
      if (flags.json) {
        const { sampler, render } = statStreamSampler({ intervalMs, sort, by: flags.by });
        await streamJson(ctx, plan, sampler, render);
        return;
      }
      if (!ctx.stdoutIsTty) {
        throw new UsageError("top needs a terminal (stdout is not a TTY); for pipelines use 'rdmactl top --json'");
      }
      const scanner = dashboardScanner();
      // The first full read runs on a worker thread while ink loads here.
      const firstScan = scanner.prefetch();
      const held: HeldApi = await import('../held/index.js');
      const dashboard = await loadDashboard(ctx);
      const { EventsFeed } = await import('../ui/eventsFeed.js');
      await firstScan;
      const sampler = dashboardSampler(intervalMs, scanner, held);
      // The events pane's trace runs beside the dashboard. Signals are caught from before its tracefs
      // instance exists (the dashboard's own handlers end the dashboard; these only keep the default
      // action from killing rdmactl before the instance is removed), and released after.
      const signals = untilSignal();
      const events = new EventsFeed();
      try {
        events.start();
        sampler.start();
        await dashboard.runDashboard({ source: sampler, actions: dashboardActions(held, ctx.euid), ...(count !== undefined ? { count } : {}), initialSort: sort, events });
      } finally {
        sampler.stop();
        await events.stop();
        signals.dispose();
      }
    });
}
