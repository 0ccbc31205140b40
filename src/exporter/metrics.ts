// The metric families and how a collection becomes series. prom-client keeps the registry and writes
// the exposition format; every family is reset and refilled from one collection, so a process that
// stopped pinning (or exited) leaves no stale series behind.
//
// Naming: rdmactl_ prefix, base units (bytes, seconds), gauges only (every value is a level the kernel
// reports now, not something rdmactl counts), _info for the constant build series.
//
// HELP texts carry no double quote: OpenMetrics wants it escaped there, and prom-client does not.
//
// Label values that other users choose (comm, user, cgroup, unit, container) go through escapeText
// as all text output does: the exposition format escapes only backslash, quote and newline, and
// `curl /metrics` or `stat --format prometheus` on root's terminal must not carry an ESC.

import { collectDefaultMetrics, Gauge, Registry, type RegistryContentType } from 'prom-client';
import { escapeText } from '../lib/escape.js';
import type { ProcessRow } from '../observe/stat.js';
import type { MetricsSample } from './collect.js';
import type { CgroupRow } from './attribution.js';

/** Per-process series beyond this many are folded into one pid="other" series. */
export const DEFAULT_MAX_PROCESSES = 100;
/** The label value of the series that folds the processes beyond --max-processes. */
export const OTHER = 'other';
/** Per-cgroup series beyond this many are folded into one cgroup="other" series. */
export const DEFAULT_MAX_CGROUPS = 100;

export interface MetricsOptions {
  version: string;
  maxProcesses: number;
  /** Default DEFAULT_MAX_CGROUPS. */
  maxCgroups?: number;
  /** Extra per-process (and per-cgroup) label names: see attribution.ts. */
  processLabelNames: readonly string[];
  /** The exporter's own series (default none): see RuntimeMetrics. */
  runtimeMetrics?: RuntimeMetrics;
}

/**
 * The exporter's own process_* and nodejs_* series (prom-client's default collectors): 'all' for the
 * HTTP exporter; 'nodejs' for --textfile, whose file node_exporter serves beside its own process_*
 * series (the same names: node_exporter would refuse ours); 'none' for one-shot output, whose
 * process ends with the command.
 */
export type RuntimeMetrics = 'all' | 'nodejs' | 'none';

/** The two exposition formats: Prometheus text 0.0.4, and OpenMetrics 1.0.0 for clients that ask. */
export type ExpositionFormat = 'text' | 'openmetrics';

const CONTENT_TYPES: Record<ExpositionFormat, string> = {
  text: Registry.PROMETHEUS_CONTENT_TYPE,
  openmetrics: Registry.OPENMETRICS_CONTENT_TYPE,
};

/** The fields of prom-client's metric objects read (and, after OpenMetrics, repaired) here. */
interface RenamedMetric {
  name: string;
  type?: string;
}

/**
 * prom-client's defaults, with process_cpu_*_total counting from the process start as the kernel
 * does (/proc/PID/stat utime and stime), not from this call: prom-client counts only the CPU time
 * after it; the start-up before it (loading Node and rdmactl) is added here.
 */
function addRuntimeMetrics(registry: Registry<RegistryContentType>, which: RuntimeMetrics): void {
  if (which === 'none') return;
  const before = process.cpuUsage();
  collectDefaultMetrics({ register: registry });
  const add = (name: string, micros: number) => {
    const counter = registry.getSingleMetric(name) as { inc(value: number): void } | undefined;
    counter?.inc(micros / 1e6);
  };
  add('process_cpu_user_seconds_total', before.user);
  add('process_cpu_system_seconds_total', before.system);
  add('process_cpu_seconds_total', before.user + before.system);
  for (const metric of registry.getMetricsAsArray() as unknown as RenamedMetric[]) {
    // nodejs_active_{handles,requests,resources}_total are gauges named like counters (promtool
    // check metrics refuses them) and only sum the labelled nodejs_active_* series beside them.
    const countedTwice = /^nodejs_active_\w+_total$/.test(metric.name);
    if (countedTwice || (which === 'nodejs' && metric.name.startsWith('process_'))) registry.removeSingleMetric(metric.name);
  }
}

type Labels = Record<string, string>;

/** Largest first: pinned, then locked, then pid (stable across scrapes). */
function byHolding(a: ProcessRow, b: ProcessRow): number {
  return b.pinnedBytes - a.pinnedBytes || b.lockedBytes - a.lockedBytes || a.pid - b.pid;
}

/** No sample at all: reset() alone leaves a gauge without labels at 0. */
function unset(gauge: Gauge<string>): void {
  gauge.reset();
  gauge.remove();
}

export class ExporterMetrics {
  readonly registry = new Registry<RegistryContentType>();
  private readonly options: MetricsOptions;
  private readonly extraNames: string[];

  private gauge(name: string, help: string, labelNames: readonly string[] = []): Gauge<string> {
    return new Gauge({ name, help, labelNames: [...labelNames], registers: [this.registry] });
  }

  private readonly processLabelNames: string[];
  private readonly process;
  private readonly user;
  private readonly cgroup;
  private readonly device;
  private readonly system;
  private readonly registrations;
  private readonly mrTable;
  private readonly meta;
  /** Renders one at a time: an OpenMetrics rendering switches the registry's format while it runs. */
  private rendering: Promise<unknown> = Promise.resolve();

  constructor(options: MetricsOptions) {
    this.options = options;
    // First, so the exposition keeps ending with rdmactl_build_info as before.
    addRuntimeMetrics(this.registry, options.runtimeMetrics ?? 'none');
    this.extraNames = options.processLabelNames.filter((name) => !['pid', 'comm', 'user', 'cgroup'].includes(name));
    this.processLabelNames = ['pid', 'comm', 'user', ...this.extraNames];
    const p = this.processLabelNames;
    const u = ['user', 'uid'];
    const c = ['cgroup', ...this.extraNames];
    this.process = {
      pinned: this.gauge('rdmactl_process_pinned_bytes', 'Memory the process has pinned long-term (VmPin: RDMA MRs, io_uring fixed buffers).', p),
      locked: this.gauge('rdmactl_process_locked_bytes', 'Memory the process has locked (VmLck: mlock, mlockall).', p),
      limit: this.gauge('rdmactl_process_memlock_limit_bytes', 'RLIMIT_MEMLOCK soft limit of the process (+Inf: unlimited).', p),
      headroom: this.gauge('rdmactl_process_memlock_headroom_bytes', 'RLIMIT_MEMLOCK minus the larger of pinned and locked; negative: over the limit (possible with CAP_IPC_LOCK); +Inf: unlimited. The other series has the smallest headroom of the processes it folds.', p),
      uring: this.gauge('rdmactl_process_io_uring_bytes', 'Bytes registered as io_uring fixed buffers by the process (charged to its user\'s locked memory).', p),
      doubleCounted: this.gauge('rdmactl_process_double_counted_bytes', 'Bytes of pinned ranges another pinned range of the same process also covers: counted twice in VmPin.', p),
      folded: this.gauge('rdmactl_processes_folded', 'Processes pinning or locking memory that are folded into the pid=other series (beyond --max-processes).'),
    };
    this.user = {
      pinned: this.gauge('rdmactl_user_pinned_bytes', 'Sum of VmPin over the user\'s processes.', u),
      locked: this.gauge('rdmactl_user_locked_bytes', 'Sum of VmLck over the user\'s processes.', u),
      uring: this.gauge('rdmactl_user_io_uring_bytes', 'io_uring fixed buffers of the user\'s processes: charged against RLIMIT_MEMLOCK of the user as a whole.', u),
      processes: this.gauge('rdmactl_user_processes', 'Processes of the user that pin or lock memory.', u),
    };
    this.cgroup = {
      processes: this.gauge('rdmactl_cgroup_processes', 'Processes of the cgroup that pin or lock memory.', c),
      pinned: this.gauge('rdmactl_cgroup_pinned_bytes', 'Sum of VmPin over the processes of the cgroup.', c),
      locked: this.gauge('rdmactl_cgroup_locked_bytes', 'Sum of VmLck over the processes of the cgroup.', c),
      memoryCurrent: this.gauge('rdmactl_cgroup_memory_current_bytes', 'Memory charged to the cgroup (memory.current, v1 memory.usage_in_bytes).', c),
      memoryMax: this.gauge('rdmactl_cgroup_memory_max_bytes', 'The cgroup\'s memory limit (memory.max, v1 memory.limit_in_bytes; +Inf: none).', c),
      memoryHeadroom: this.gauge('rdmactl_cgroup_memory_headroom_bytes', 'memory.max minus pinned and locked bytes: what the cgroup can still pin or lock before unreclaimable memory fills its limit (+Inf: no limit).', c),
      unevictable: this.gauge('rdmactl_cgroup_memory_unevictable_bytes', 'Unevictable memory charged to the cgroup (memory.stat unevictable, v1 total_unevictable): mlocked pages.', c),
      rdmaCurrent: this.gauge('rdmactl_cgroup_rdma_current', 'rdma.current of the cgroup, per device and resource (hca_handle, hca_object).', [...c, 'device', 'resource']),
      rdmaMax: this.gauge('rdmactl_cgroup_rdma_max', 'rdma.max of the cgroup, per device and resource (+Inf: max).', [...c, 'device', 'resource']),
      folded: this.gauge('rdmactl_cgroups_folded', 'Cgroups folded into the cgroup=other series (beyond --max-cgroups).'),
    };
    this.device = {
      mrs: this.gauge('rdmactl_device_mrs', 'Memory regions registered on the device (the kernel MR table).', ['device']),
      mrBytes: this.gauge('rdmactl_device_mr_bytes', 'Bytes covered by the device\'s memory regions (the kernel MR table).', ['device']),
      maxMrs: this.gauge('rdmactl_device_max_mrs', 'The device\'s max_mr (ibv_query_device).', ['device']),
    };
    this.system = {
      pinned: this.gauge('rdmactl_pinned_bytes', 'Sum of VmPin over all processes.'),
      locked: this.gauge('rdmactl_locked_bytes', 'Sum of VmLck over all processes.'),
      mlocked: this.gauge('rdmactl_mlocked_bytes', 'Mlocked from /proc/meminfo (each locked page once).'),
      memTotal: this.gauge('rdmactl_memory_total_bytes', 'MemTotal from /proc/meminfo.'),
      kernelPinned: this.gauge('rdmactl_kernel_pinned_bytes', 'Pages pinned in the kernel and not yet released, from /proc/vmstat (nr_foll_pin_acquired - nr_foll_pin_released) times the page size; includes short-term pins such as O_DIRECT.'),
      holding: this.gauge('rdmactl_processes_holding', 'Processes that pin or lock memory.'),
      copyOnFork: this.gauge('rdmactl_copy_on_fork', 'Whether the kernel copies pinned pages for the child at fork (1) or not (0).'),
    };
    this.registrations = {
      count: this.gauge('rdmactl_registrations', 'Registrations by source: rdma (kernel MR table), io_uring (fixed buffers), mlock (locked VMAs), held (rdmactl holders).', ['source']),
      bytes: this.gauge('rdmactl_registration_bytes', 'Bytes registered, by source.', ['source']),
      available: this.gauge('rdmactl_registration_source_available', 'Whether the source could be read (1) or not (0), e.g. no RDMA device.', ['source']),
    };
    this.mrTable = {
      lastRead: this.gauge('rdmactl_rdma_mr_table_last_read_timestamp_seconds', 'When the last read of the kernel MR table (rdma res show mr) ended, in seconds since the epoch; the rdma series come from it. Absent without an RDMA device or before the first read ends.'),
      success: this.gauge('rdmactl_rdma_mr_table_last_read_success', 'Whether that read succeeded (1) or failed (0; the device MR series are then left out).'),
      timedOut: this.gauge('rdmactl_rdma_mr_table_last_read_timed_out', 'Whether that read was killed because rdma did not answer in time (1) or not (0).'),
    };
    this.meta = {
      duration: this.gauge('rdmactl_scrape_duration_seconds', 'How long the collection behind this scrape took.'),
      fullScan: this.gauge('rdmactl_scrape_full_scan', 'Whether the collection read every process (1) or, nothing having been pinned or unpinned since the last one, only holders and new processes (0).'),
      scanned: this.gauge('rdmactl_processes_scanned', 'Processes listed in /proc.'),
      unreadable: this.gauge('rdmactl_processes_unreadable', 'Processes whose details (smaps, fds) the kernel refused to show: run as root to read every process.'),
      build: this.gauge('rdmactl_build_info', 'Constant 1, labelled with the rdmactl and Node.js versions.', ['version', 'nodejs_version']),
    };
    this.meta.build.set({ version: options.version, nodejs_version: process.versions.node }, 1);
  }

  /** Replace every series with what `sample` says. */
  update(sample: MetricsSample): void {
    this.updateProcesses(sample.report.processes, sample.processLabels);
    for (const g of Object.values(this.user)) g.reset();
    for (const u of sample.report.users) {
      const labels = { user: escapeText(u.user), uid: String(u.uid) };
      this.user.pinned.set(labels, u.pinnedBytes);
      this.user.locked.set(labels, u.lockedBytes);
      this.user.uring.set(labels, u.uringBytes);
      this.user.processes.set(labels, u.processes);
    }
    this.updateCgroups(sample);
    for (const g of Object.values(this.device)) g.reset();
    for (const d of sample.devices) {
      if (d.mrs !== null) this.device.mrs.set({ device: d.device }, d.mrs);
      if (d.mrBytes !== null) this.device.mrBytes.set({ device: d.device }, d.mrBytes);
      if (d.maxMrs !== null) this.device.maxMrs.set({ device: d.device }, d.maxMrs);
    }
    for (const g of Object.values(this.mrTable)) unset(g);
    if (sample.mrTable !== null) {
      this.mrTable.lastRead.set(sample.mrTable.endedAt / 1000);
      this.mrTable.success.set(sample.mrTable.status.available ? 1 : 0);
      this.mrTable.timedOut.set(sample.mrTable.timedOut ? 1 : 0);
    }
    const s = sample.report.system;
    this.system.pinned.set(s.pinnedBytes);
    this.system.locked.set(s.lockedBytes);
    this.system.mlocked.set(s.mlockedBytes);
    this.system.memTotal.set(s.memTotalBytes);
    this.system.holding.set(s.processesHolding);
    unset(this.system.kernelPinned);
    if (sample.kernelPinnedBytes !== null) this.system.kernelPinned.set(sample.kernelPinnedBytes);
    // Unknown until rdma sys show answers (a scrape does not wait long for it): left out, not 0.
    unset(this.system.copyOnFork);
    if (sample.copyOnFork !== null) this.system.copyOnFork.set(sample.copyOnFork ? 1 : 0);
    for (const source of sample.sources) {
      this.registrations.count.set({ source: source.source }, source.registrations);
      this.registrations.bytes.set({ source: source.source }, source.bytes);
      this.registrations.available.set({ source: source.source }, source.available ? 1 : 0);
    }
    this.meta.duration.set(sample.durationSeconds);
    this.meta.fullScan.set(sample.fullScan ? 1 : 0);
    this.meta.scanned.set(sample.report.scannedProcesses);
    this.meta.unreadable.set(sample.report.unreadableProcesses);
  }

  private labelsOf(row: ProcessRow, attributed: ReadonlyMap<number, Labels>): Labels {
    const extra = attributed.get(row.pid) ?? {};
    const labels: Labels = { pid: String(row.pid), comm: escapeText(row.comm), user: escapeText(row.user) };
    for (const name of this.extraNames) labels[name] = escapeText(extra[name] ?? '');
    return labels;
  }

  private updateProcesses(rows: readonly ProcessRow[], attributed: ReadonlyMap<number, Labels>): void {
    for (const g of Object.values(this.process)) g.reset();
    const sorted = [...rows].sort(byHolding);
    const shown = sorted.slice(0, this.options.maxProcesses);
    const folded = sorted.slice(this.options.maxProcesses);
    for (const row of shown) {
      const labels = this.labelsOf(row, attributed);
      this.process.pinned.set(labels, row.pinnedBytes);
      this.process.locked.set(labels, row.lockedBytes);
      this.process.limit.set(labels, row.memlockLimitBytes ?? Infinity);
      this.process.headroom.set(labels, row.headroomBytes ?? Infinity);
      this.process.uring.set(labels, row.uringBytes);
      this.process.doubleCounted.set(labels, row.doubleCountedBytes);
    }
    this.process.folded.set(folded.length);
    if (folded.length === 0) return;
    const labels: Labels = { pid: OTHER, comm: OTHER, user: OTHER };
    for (const name of this.extraNames) labels[name] = OTHER;
    const sum = (get: (row: ProcessRow) => number) => folded.reduce((total, row) => total + get(row), 0);
    this.process.pinned.set(labels, sum((r) => r.pinnedBytes));
    this.process.locked.set(labels, sum((r) => r.lockedBytes));
    this.process.uring.set(labels, sum((r) => r.uringBytes));
    this.process.doubleCounted.set(labels, sum((r) => r.doubleCountedBytes));
    // The folded processes' limits differ; the one closest to failing is what an alert needs.
    this.process.headroom.set(labels, Math.min(...folded.map((r) => r.headroomBytes ?? Infinity)));
  }

  private cgroupLabels(cgroup: string, extra: Labels): Labels {
    const labels: Labels = { cgroup: escapeText(cgroup) };
    for (const name of this.extraNames) labels[name] = escapeText(extra[name] ?? '');
    return labels;
  }

  private updateCgroups(sample: MetricsSample): void {
    for (const g of Object.values(this.cgroup)) g.reset();
    const max = this.options.maxCgroups ?? DEFAULT_MAX_CGROUPS;
    // Largest first, like processes: the cgroups that hold the most keep their own series.
    const sorted = [...sample.cgroups].sort((a, b) => b.pinnedBytes - a.pinnedBytes || b.lockedBytes - a.lockedBytes || a.cgroup.localeCompare(b.cgroup));
    for (const row of sorted.slice(0, max)) this.setCgroup(row);
    const folded = sorted.slice(max);
    this.cgroup.folded.set(folded.length);
    if (folded.length === 0) return;
    // Limits of different cgroups do not add up: the other series carries only sums of what they hold.
    const labels = this.cgroupLabels(OTHER, Object.fromEntries(this.extraNames.map((name) => [name, OTHER])));
    this.cgroup.processes.set(labels, folded.reduce((sum, row) => sum + row.processes, 0));
    this.cgroup.pinned.set(labels, folded.reduce((sum, row) => sum + row.pinnedBytes, 0));
    this.cgroup.locked.set(labels, folded.reduce((sum, row) => sum + row.lockedBytes, 0));
  }

  private setCgroup(row: CgroupRow): void {
    const labels = this.cgroupLabels(row.cgroup, row.labels);
    this.cgroup.processes.set(labels, row.processes);
    this.cgroup.pinned.set(labels, row.pinnedBytes);
    this.cgroup.locked.set(labels, row.lockedBytes);
    // Unknown (unreadable, or no memory hierarchy) is left out, never exported as zero.
    if (row.memoryCurrentBytes !== null) this.cgroup.memoryCurrent.set(labels, row.memoryCurrentBytes);
    if (row.memoryMaxBytes !== null) this.cgroup.memoryMax.set(labels, row.memoryMaxBytes);
    if (row.memoryHeadroomBytes !== null) this.cgroup.memoryHeadroom.set(labels, row.memoryHeadroomBytes);
    if (row.memoryUnevictableBytes !== null) this.cgroup.unevictable.set(labels, row.memoryUnevictableBytes);
    for (const r of row.rdma) {
      const rdmaLabels = { ...labels, device: r.device, resource: r.resource };
      this.cgroup.rdmaCurrent.set(rdmaLabels, r.current);
      this.cgroup.rdmaMax.set(rdmaLabels, r.max ?? Infinity);
    }
  }

  /** The exposition in `format` (default Prometheus text format 0.0.4). */
  exposition(format: ExpositionFormat = 'text'): Promise<string> {
    const rendered = this.rendering.then(() => this.render(format));
    this.rendering = rendered.catch(() => undefined);
    return rendered;
  }

  private async render(format: ExpositionFormat): Promise<string> {
    if (format === 'text') return this.registry.metrics();
    this.registry.setContentType(Registry.OPENMETRICS_CONTENT_TYPE);
    try {
      return await this.registry.metrics();
    } finally {
      this.registry.setContentType(Registry.PROMETHEUS_CONTENT_TYPE);
      // prom-client strips _total from each counter's name for OpenMetrics, in place: put it back,
      // or the text format would show process_cpu_seconds from then on.
      for (const metric of this.registry.getMetricsAsArray() as unknown as RenamedMetric[]) {
        if (metric.type === 'counter' && !metric.name.endsWith('_total')) metric.name = `${metric.name}_total`;
      }
    }
  }

  contentType(format: ExpositionFormat = 'text'): string {
    return CONTENT_TYPES[format];
  }
}
