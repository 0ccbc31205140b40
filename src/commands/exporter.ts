// rdmactl exporter: pinned/locked memory, limits and registrations as Prometheus metrics, served over
// HTTP (/metrics) or written for node_exporter's textfile collector.

import { Command } from 'commander';
import { note, type Context } from '../lib/context.js';
import { UsageError } from '../lib/errors.js';
import { DURATION_HELP, parseCount, parseDuration } from '../lib/size.js';
import { packageVersion } from '../lib/version.js';
import { DEFAULT_HOST, DEFAULT_PORT, exposureWarning, parseListen, serve, writeTextfiles } from '../exporter/run.js';
import { DEFAULT_SOCKET_MODE, parseSocketMode } from '../exporter/unixSocket.js';
import { DEFAULT_MAX_CGROUPS, DEFAULT_MAX_PROCESSES } from '../exporter/metrics.js';
import { EXPORTER_FULL_SCAN_EVERY_MS, EXPORTER_QUIET_FULL_SCAN_EVERY_MS } from '../exporter/collect.js';
import { MR_TABLE_MAX_AGE_MS, MR_TABLE_TIMEOUT_MS, MR_TABLE_WAIT_MS } from '../exporter/mrTable.js';

interface ExporterFlags {
  listen?: string;
  listenMode?: string;
  textfile?: string;
  interval: string;
  maxProcesses: string;
  maxCgroups: string;
  trace?: boolean;
}

export function exporterCommand(ctx: Context): Command {
  return new Command('exporter')
    .summary('serve pinned/locked memory and registrations as Prometheus metrics')
    .description(`Serve Prometheus metrics at http://${DEFAULT_HOST}:${DEFAULT_PORT}/metrics: per process (pinned, locked,
RLIMIT_MEMLOCK and headroom, io_uring, counted twice; labelled with its systemd unit, container
and Kubernetes pod), per user, per cgroup (pinned, locked, memory limit and headroom, rdma.current
and rdma.max per device), per RDMA device (MRs, max_mr), system totals (sum of VmPin/VmLck, pins
outstanding in the kernel, copy-on-fork), registrations by source, and the scrape itself.
Read-only: no endpoint changes anything on the machine.

Per-process series are bounded: the --max-processes largest holders (pinned, then locked) get
their own series, the rest are summed into one series labelled pid="other"; likewise at most
--max-cgroups cgroups (those holding the most), the rest summed into cgroup="other".

Each scrape reads the processes that pin or lock and any new process; every process is read
when /proc/vmstat's pin counters moved (a new pinner shows at once), after ${EXPORTER_FULL_SCAN_EVERY_MS / 1000} s when
/proc/meminfo's Mlocked moved (a new locker shows within ${EXPORTER_FULL_SCAN_EVERY_MS / 1000} s), and at least every
${EXPORTER_QUIET_FULL_SCAN_EVERY_MS / 60_000} minutes. rdmactl_scrape_full_scan says which a scrape was.

With an RDMA device, the kernel MR table comes from rdma res show mr, run as a child no scrape
waits on for more than ${MR_TABLE_WAIT_MS / 1000} s (killed after ${MR_TABLE_TIMEOUT_MS / 1000} s), read again when a process's VmPin changes or
after ${MR_TABLE_MAX_AGE_MS / 1000} s; rdmactl_rdma_mr_table_last_read_* say when it was read and whether that failed.

Also served: the exporter's own process_* and nodejs_* series (--textfile: nodejs_* only, as
node_exporter has process_* of its own); OpenMetrics 1.0.0 when the Accept header asks for it
(Prometheus does by default); a gzipped body when Accept-Encoding allows gzip.

Runs unprivileged: other users' processes are then partly unreadable, counted in
rdmactl_processes_unreadable. Stops on SIGTERM, SIGINT or SIGHUP after in-flight scrapes or the
write under way (exit 0); SIGUSR1 is ignored (it never opens Node's inspector).

Anyone who can connect reads every holder's name, pid, user and memory, without authentication:
on ${DEFAULT_HOST} every local user, even where /proc hides other users' processes (hidepid);
on 0.0.0.0 or [::] the network too (warned on stderr). --listen unix:PATH lets the socket's mode
decide instead (owner and group by default): curl --unix-socket PATH http://localhost/metrics.

--trace also counts every registration as it happens, from a trace session (as rdmactl trace) that
runs as long as the exporter: rdmactl_registrations_total{source,op,result} (result: ok or the
errno name), rdmactl_registration_bytes_total{source,op}, the latency histogram
rdmactl_registration_duration_seconds{source,op,size} by size class, and
rdmactl_trace_lost_events_total. No per-process labels: rdmactl trace and top show those. It needs
root and a mounted tracefs; without them the exporter does not start (exit 3 or 4, one line saying
why). Its tracefs instance is removed on every exit.

--textfile DIR may be shared with other writers (group-writable, or sticky like /tmp): each write
goes to a new, randomly named temporary file that never follows a link. A DIR that is a symbolic
link or not a directory (exit 2), or that every user may write without the sticky bit (exit 4), is
refused.`)
    .option('--listen <address>', `HOST:PORT, [IPv6]:PORT, :PORT (= ${DEFAULT_HOST}:PORT) or unix:PATH to serve on (default ${DEFAULT_HOST}:${DEFAULT_PORT}; 0.0.0.0:PORT exposes it on purpose)`)
    .option('--listen-mode <mode>', `permission bits of the unix:PATH socket (default ${DEFAULT_SOCKET_MODE.toString(8).padStart(4, '0')}: its owner and group may scrape); its directory must exist and be writable only by root or this user, unless sticky`)
    .option('--textfile <dir>', 'write DIR/rdmactl.prom atomically every --interval for node_exporter\'s textfile collector, instead of serving')
    .option('--interval <duration>', `how often --textfile writes (${DURATION_HELP})`, '15s')
    .option('--trace', 'also count registrations, bytes, failures and their latency as they happen (needs root and tracefs; see above)')
    .option('--max-processes <n>', 'per-process series at most; the rest are folded into pid="other"', String(DEFAULT_MAX_PROCESSES))
    .option('--max-cgroups <n>', 'per-cgroup series at most; the rest are folded into cgroup="other"', String(DEFAULT_MAX_CGROUPS))
    .addHelpText('after', `
Examples:
  rdmactl exporter                                 serve on ${DEFAULT_HOST}:${DEFAULT_PORT}
  rdmactl exporter --listen 0.0.0.0:${DEFAULT_PORT}          serve on every interface
  rdmactl exporter --listen unix:/run/rdmactl/exporter.sock --listen-mode 0600
                                                   serve to root only
  rdmactl exporter --textfile /var/lib/prometheus/node-exporter
  sudo rdmactl exporter --trace                    with the registration counters and latencies
  rdmactl stat --format prometheus                 one exposition on stdout
See rdmactl(1), EXPORTER, for every metric.`)
    .action(async (flags: ExporterFlags) => {
      const maxProcesses = parseCount(flags.maxProcesses, '--max-processes', 100_000);
      const maxCgroups = parseCount(flags.maxCgroups, '--max-cgroups', 100_000);
      const common = {
        version: packageVersion(), maxProcesses, maxCgroups, onError: (err: unknown) => note(ctx, err instanceof Error ? err.message : String(err)),
        ...(flags.trace ? { trace: { onNote: (message: string) => note(ctx, message) } } : {}),
      };
      if (flags.textfile !== undefined) {
        if (flags.listen !== undefined || flags.listenMode !== undefined) throw new UsageError(`${flags.listen !== undefined ? '--listen' : '--listen-mode'} and --textfile exclude each other: the textfile mode serves no port`);
        const intervalMs = parseDuration(flags.interval, '--interval');
        await writeTextfiles({ ...common, dir: flags.textfile, intervalMs });
        return;
      }
      const mode = flags.listenMode === undefined ? undefined : parseSocketMode(flags.listenMode);
      const listen = parseListen(flags.listen ?? `${DEFAULT_HOST}:${DEFAULT_PORT}`, mode);
      if (mode !== undefined && !('path' in listen)) throw new UsageError('--listen-mode applies to a unix socket only: give --listen unix:PATH');
      const warning = exposureWarning(listen);
      if (warning !== null) note(ctx, warning);
      await serve({ ...common, listen, onListening: (url) => note(ctx, `serving ${url}`) });
    });
}
