// One collection for the exporter: everything the metrics say, read from the kernel in one pass.
// Built on the collectors `top` uses: the incremental /proc scanner (cheap when no page was pinned or
// unpinned since the last scrape), the stat report, the registration sources, /proc/vmstat's pin
// counters and the kernel MR table.

import { collectStat, type StatReport } from '../observe/stat.js';
import { collectRegistrations, REGISTRATION_SOURCES, type RegistrationSource, type SourceStatus } from '../observe/registrations.js';
import { heldSource } from '../observe/held.js';
import { IncrementalScanner } from '../proc/incremental.js';
import { pageSize } from '../proc/pagemap.js';
import { readRdmaDeviceNames } from '../proc/sysfs.js';
import type { KernelMr } from '../rdma/iproute.js';
import { readCopyOnForkAsync } from '../observe/copyOnFork.js';
import { cgroupAttribution, type Attribution, type CgroupRow } from './attribution.js';
import { MR_TABLE_NOT_READ, MR_TABLE_TIMEOUT_MS, MR_TABLE_WAIT_MS, MrTableCache, mrTableKey, type MrTableOptions, type MrTableRead } from './mrTable.js';

/**
 * Every process is read again after this long if meminfo Mlocked moved since the last full read
 * (VmLck has no counter of its own; a new mlock moves Mlocked), and after EXPORTER_QUIET_FULL_SCAN_EVERY_MS
 * whatever moved. A pin or unpin anywhere reads every process at the next scrape.
 */
export const EXPORTER_FULL_SCAN_EVERY_MS = 60_000;
/** The longest gap between full reads: what Mlocked cannot show (pages another process had mlocked already, MLOCK_ONFAULT). */
export const EXPORTER_QUIET_FULL_SCAN_EVERY_MS = 300_000;
/**
 * A holder's smaps is kept across full reads while its VmPin, VmLck and /proc/PID/maps are unchanged
 * (see incremental.ts), and read again after this long: the delay of a VmFlags change that moves
 * no VMA boundary. 20 Node holders' smaps cost ~50 ms: ~0.02 % of a core at this age.
 */
export const EXPORTER_SMAPS_MAX_AGE_MS = 300_000;

export interface SourceSummary {
  source: RegistrationSource;
  available: boolean;
  registrations: number;
  bytes: number;
}

export interface DeviceRow {
  device: string;
  /** MRs and their bytes in the kernel MR table; null when the table could not be read. */
  mrs: number | null;
  mrBytes: number | null;
  /** The device's max_mr (ibv_query_device); null when it could not be queried. */
  maxMrs: number | null;
}

export interface MetricsSample {
  report: StatReport;
  /** Pages pinned and not yet unpinned anywhere (nr_foll_pin_acquired − released), in bytes; null on kernels < 5.7. */
  kernelPinnedBytes: number | null;
  sources: SourceSummary[];
  /** One row per RDMA device the kernel lists (/sys/class/infiniband). */
  devices: DeviceRow[];
  /** The MR table read the device rows come from; null when there is no device (rdma is not run). */
  mrTable: Pick<MrTableRead, 'endedAt' | 'timedOut' | 'status'> | null;
  /** Whether the kernel copies pinned pages at fork (null: unknown). */
  copyOnFork: boolean | null;
  /** Attribution labels per pid (see attribution.ts). */
  processLabels: Map<number, Record<string, string>>;
  cgroups: CgroupRow[];
  /** Whether this collection read every process (else only holders and new processes). */
  fullScan: boolean;
  durationSeconds: number;
}

export interface CollectorOptions {
  /** Default: cgroup attribution (unit / container / pod labels, per-cgroup series). */
  attribution?: Attribution;
  fullScanEveryMs?: number;
  /** Default EXPORTER_QUIET_FULL_SCAN_EVERY_MS. */
  quietFullScanEveryMs?: number;
  /** Default EXPORTER_SMAPS_MAX_AGE_MS. */
  smapsMaxAgeMs?: number;
  /** The RDMA devices the kernel lists (default: /sys/class/infiniband). */
  deviceNames?: () => string[];
  /** How the kernel MR table is read (see mrTable.ts). */
  mrTable?: MrTableOptions;
}

type MaxMrReader = () => Map<string, number>;

/** max_mr per device through libibverbs, loaded only when the kernel lists a device. */
async function loadMaxMrReader(): Promise<MaxMrReader> {
  try {
    const { listDevices } = await import('../engine/verbs/index.js');
    return () => new Map(listDevices().flatMap((d) => (d.maxMr === null ? [] : [[d.name, d.maxMr] as const])));
  } catch {
    return () => new Map();
  }
}

export class Collector {
  private readonly scanner: IncrementalScanner;
  private readonly attribution: Attribution;
  private readonly deviceNames: () => string[];
  private readonly mrTable: MrTableCache;
  /** `rdma sys show`, asked once: a constant of the running kernel. */
  private copyOnFork: boolean | null = null;
  private copyOnForkRead: Promise<void> | null = null;
  private readonly copyOnForkWaitMs: number;
  private readonly copyOnForkTimeoutMs: number;
  private readonly abort = new AbortController();
  private maxMrReader: MaxMrReader | null = null;
  /** max_mr is a device constant: queried again only when the device list changes. */
  private maxMrs: { names: string; byDevice: Map<string, number> } | null = null;

  constructor(options: CollectorOptions = {}) {
    this.attribution = options.attribution ?? cgroupAttribution();
    this.scanner = new IncrementalScanner({
      fullScanEveryMs: options.fullScanEveryMs ?? EXPORTER_FULL_SCAN_EVERY_MS,
      quietFullScanEveryMs: options.quietFullScanEveryMs ?? EXPORTER_QUIET_FULL_SCAN_EVERY_MS,
      smapsMaxAgeMs: options.smapsMaxAgeMs ?? EXPORTER_SMAPS_MAX_AGE_MS,
      cgroup: this.attribution.readsCgroups ?? false,
    });
    this.deviceNames = options.deviceNames ?? readRdmaDeviceNames;
    this.mrTable = new MrTableCache(options.mrTable);
    this.copyOnForkWaitMs = options.mrTable?.waitMs ?? MR_TABLE_WAIT_MS;
    this.copyOnForkTimeoutMs = options.mrTable?.timeoutMs ?? MR_TABLE_TIMEOUT_MS;
  }

  /** Stops a running rdma: the exporter is shutting down. */
  close(): void {
    this.abort.abort();
    this.mrTable.close();
  }

  /** Copy-on-fork as known now: the one read started at the first collection, waited for as the MR table is. */
  private async readCopyOnFork(): Promise<boolean | null> {
    this.copyOnForkRead ??= readCopyOnForkAsync({ timeoutMs: this.copyOnForkTimeoutMs, maxBytes: 64 * 1024, signal: this.abort.signal })
      .then((answer) => { this.copyOnFork = answer.copyOnFork; });
    let timer: NodeJS.Timeout | undefined;
    const wait = this.copyOnForkWaitMs === Infinity ? this.copyOnForkRead : Promise.race([this.copyOnForkRead, new Promise<void>((resolve) => { timer = setTimeout(resolve, this.copyOnForkWaitMs); })]);
    await wait;
    clearTimeout(timer);
    return this.copyOnFork;
  }

  get processLabelNames(): readonly string[] {
    return this.attribution.processLabelNames;
  }

  async collect(): Promise<MetricsSample> {
    const started = performance.now();
    // Started first: rdma sys show runs while the scan reads /proc.
    const copyOnForkPending = this.readCopyOnFork();
    const names = this.deviceNames();
    if (names.length > 0 && this.maxMrReader === null) this.maxMrReader = await loadMaxMrReader();

    // The pin counters the scanner read before it scanned: a pin during the scan shows next time.
    const scan = this.scanner.scan();
    const pins = scan.counters.pins;
    const report = collectStat({}, scan);

    // rdma runs only when the kernel lists a device; a scrape waits for it a bounded time (mrTable.ts).
    const read = names.length > 0 ? (await this.mrTable.get(mrTableKey(names, report.processes))).read : null;
    const status: SourceStatus = names.length === 0 ? { available: false, reason: 'no RDMA device' } : read?.status ?? MR_TABLE_NOT_READ;
    const kernel = { mrs: read?.mrs ?? [] as KernelMr[], status };
    const registrations = collectRegistrations({
      scan,
      held: (scanned) => heldSource({ cleanStale: false }, scanned),
      kernelMrs: () => kernel,
    });
    const sources = REGISTRATION_SOURCES.map((source) => {
      const rows = registrations.registrations.filter((r) => r.source === source);
      return {
        source,
        available: registrations.sources[source].available,
        registrations: rows.length,
        bytes: rows.reduce((sum, r) => sum + r.length, 0),
      };
    });

    // rdma sys show says it directly; without RDMA netlink, Linux ≥ 5.9 implies it.
    const copyOnFork = await copyOnForkPending;
    // Only the rows of processes that pin or lock: one /proc/PID/cgroup read each (by the scan, beside
    // its status), never per process.
    const scanned = new Map(scan.processes.map((p) => [p.pid, p] as const));
    const attributed = this.attribution.attribute(report.processes, scan.fullScanReason !== null, (pid) => scanned.get(pid));
    return {
      report,
      kernelPinnedBytes: pins === null ? null : Math.max(0, pins.acquired - pins.released) * pageSize(),
      sources,
      devices: this.devices(names, status.available ? kernel.mrs : null),
      mrTable: names.length === 0 ? null : read ? { endedAt: read.endedAt, timedOut: read.timedOut, status: read.status } : null,
      copyOnFork,
      processLabels: attributed.processLabels,
      cgroups: attributed.cgroups,
      fullScan: scan.fullScanReason !== null,
      durationSeconds: (performance.now() - started) / 1000,
    };
  }

  /** `mrs` null: the table could not be read, so the MR counts are unknown (left out, never 0). */
  private devices(names: readonly string[], mrs: readonly KernelMr[] | null): DeviceRow[] {
    const key = names.join('\0');
    if (names.length > 0 && this.maxMrReader && this.maxMrs?.names !== key) {
      let byDevice = new Map<string, number>();
      try {
        byDevice = this.maxMrReader();
      } catch {
        // A device that cannot be opened still gets its MR counts, without max_mr.
      }
      this.maxMrs = { names: key, byDevice };
    }
    return names.map((device) => {
      const own = mrs?.filter((mr) => mr.device === device) ?? null;
      return {
        device,
        mrs: own === null ? null : own.length,
        mrBytes: own === null ? null : own.reduce((sum, mr) => sum + mr.lengthBytes, 0),
        maxMrs: this.maxMrs?.byDevice.get(device) ?? null,
      };
    });
  }
}
