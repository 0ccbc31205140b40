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
import { OutputError, printJson, type Context } from '../lib/context.js';
import { jsonDocument } from '../lib/output.js';
import { DURATION_HELP, parseCount, parseDuration } from '../lib/size.js';
import { SORT_KEYS, statJson, type SortKey } from '../observe/statFields.js';
import { dashboardSampler, dashboardScanner, statStreamSampler, type Sampler } from '../ui/sampler.js';
import type { DashboardActions } from '../ui/types.js';

export const MIN_INTERVAL_MS = 100;

interface TopFlags {
  interval: string;
  count?: string;
  sort: SortKey;
  json?: boolean;
  by?: GroupByChoice;
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
  return new Promise((resolve, reject) => {
    let printed = 0;
    let done = false;
    const finish = (err?: unknown): void => {
      if (done) return;
      done = true;
      sampler.stop();
      process.stdout.off('error', onError);
      if (err === undefined) resolve();
      else reject(err);
    };
    // A closed pipe (`| head -1`) ends the stream quietly, whether the write or the stream reports it.
    const onError = (err: NodeJS.ErrnoException): void => {
      if (err.code === 'EPIPE') finish();
    };
    process.stdout.on('error', onError);
    sampler.subscribe(() => {
      if (done) return;
      const snapshot = sampler.getSnapshot();
      if (!snapshot || snapshot.error) return;
      // The subscriber runs from the sampler's timer: a write error thrown here would be uncaught.
      try {
        printJson(ctx, jsonDocument('stat', render(snapshot.report) as Record<string, unknown>));
      } catch (err) {
        finish(err instanceof OutputError && err.readerGone ? undefined : err);
        return;
      }
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
nr_foll_pin_*) moved, and at least every ${TOP_FULL_SCAN_EVERY_MS / 1000} s; otherwise it reads the processes that already
pin or lock and new ones. So a pin shows at the next refresh, but an mlock by a process that was
idle at the last full read (no counter tracks VmLck) can take up to ${TOP_FULL_SCAN_EVERY_MS / 1000} s. A holder's
smaps (its DONTFORK/WIPEONFORK flags) is re-read when its VmPin or VmLck changes, at full reads when
its /proc/PID/maps changed, and at least every ${TOP_SMAPS_MAX_AGE_MS / 1000} s.

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
        const { sampler, render } = statStreamSampler({ intervalMs, sort: flags.sort, by: flags.by });
        await streamJson(ctx, sampler, count, render);
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
      await firstScan;
      const sampler = dashboardSampler(intervalMs, scanner, held);
      try {
        sampler.start();
        await dashboard.runDashboard({ source: sampler, actions: dashboardActions(held, ctx.euid), ...(count !== undefined ? { count } : {}), initialSort: flags.sort });
      } finally {
        sampler.stop();
      }
    });
}
