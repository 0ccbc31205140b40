// The kernel MR table for the exporter: `rdma -j -d res show mr` run as a child the event loop does
// not wait on, read again only when something that registers memory changed, and never longer than a
// scrape can afford to wait.
//
// The change signal costs nothing extra: every MR that pins its pages (all but on-demand-paging ones)
// is charged to its process's VmPin when registered and uncharged when deregistered, so the pids that
// pin and their VmPin, from the same /proc scan, change whenever such an MR comes or goes. What it
// cannot see (ODP MRs, MRs of kernel users such as NFS over RDMA, a deregistration and a registration
// of the same size in one scrape interval) shows after maxAgeMs at the latest.

import { parseKernelMrs, readRdmaJson, type KernelMr } from '../rdma/iproute.js';
import type { SourceStatus } from '../observe/registrations.js';

export interface MrTableOptions {
  /** rdma is killed after this long (default 10 s, as the one-shot reader). */
  timeoutMs?: number;
  /** Output cap of one read (default 64 MiB: about 300,000 MRs). */
  maxBytes?: number;
  /** A table is read again after this long even when nothing changed (default 60 s). */
  maxAgeMs?: number;
  /**
   * How long a scrape waits for a read it started (default 1 s; Infinity: until it ends, for one-shot
   * output). A read still running then goes on; the scrape serves the table read before.
   */
  waitMs?: number;
}

export const MR_TABLE_TIMEOUT_MS = 10_000;
export const MR_TABLE_MAX_BYTES = 64 * 1024 * 1024;
export const MR_TABLE_MAX_AGE_MS = 60_000;
export const MR_TABLE_WAIT_MS = 1_000;

/** One completed read of the MR table. */
export interface MrTableRead {
  mrs: KernelMr[];
  status: SourceStatus;
  /** When the read ended (ms since the epoch). */
  endedAt: number;
  /** Whether rdma was killed at the timeout. */
  timedOut: boolean;
}

/** What a collection gets: the newest completed read (null before the first one ends). */
export interface MrTableView {
  read: MrTableRead | null;
}

/** The rdma source's status while no read has ended yet. */
export const MR_TABLE_NOT_READ: SourceStatus = { available: false, reason: 'the MR table is being read (rdma has not answered yet)' };

export class MrTableCache {
  private readonly timeoutMs: number;
  private readonly maxBytes: number;
  private readonly maxAgeMs: number;
  private readonly waitMs: number;
  private latest: (MrTableRead & { key: string; startedAt: number }) | null = null;
  private running: { key: string; done: Promise<void> } | null = null;
  private readonly abort = new AbortController();

  constructor(options: MrTableOptions = {}) {
    this.timeoutMs = options.timeoutMs ?? MR_TABLE_TIMEOUT_MS;
    this.maxBytes = options.maxBytes ?? MR_TABLE_MAX_BYTES;
    this.maxAgeMs = options.maxAgeMs ?? MR_TABLE_MAX_AGE_MS;
    this.waitMs = options.waitMs ?? MR_TABLE_WAIT_MS;
  }

  /**
   * The table for a collection whose change signal is `key`: the last read when it was made for the
   * same key and is younger than maxAgeMs; else a new read (one at a time), waited for up to waitMs.
   */
  async get(key: string): Promise<MrTableView> {
    const latest = this.latest;
    if (latest && latest.key === key && Date.now() - latest.startedAt < this.maxAgeMs) return { read: latest };
    if (this.abort.signal.aborted) return { read: latest };
    const running = this.running ?? this.start(key);
    let timer: NodeJS.Timeout | undefined;
    const waited = this.waitMs === Infinity ? running.done : Promise.race([running.done, new Promise<void>((resolve) => { timer = setTimeout(resolve, this.waitMs); })]);
    await waited;
    clearTimeout(timer);
    return { read: this.latest };
  }

  /** Kills a running rdma; later calls start none. */
  close(): void {
    this.abort.abort();
  }

  private start(key: string): { key: string; done: Promise<void> } {
    const startedAt = Date.now();
    const done = readRdmaJson(['-d', 'res', 'show', 'mr'], { timeoutMs: this.timeoutMs, maxBytes: this.maxBytes, signal: this.abort.signal }).then((result) => {
      const endedAt = Date.now();
      this.latest = result.ok
        ? { key, startedAt, endedAt, timedOut: false, mrs: parseKernelMrs(result.data), status: { available: true, reason: null } }
        : { key, startedAt, endedAt, timedOut: result.timedOut, mrs: [], status: { available: false, reason: result.reason } };
      this.running = null;
    });
    this.running = { key, done };
    return this.running;
  }
}

/**
 * The change signal of one scan: the device names, and each pinning process with its VmPin (by pid).
 * Equal keys: no MR that pins pages was registered or deregistered between the two scans.
 */
export function mrTableKey(deviceNames: readonly string[], pinners: ReadonlyArray<{ pid: number; pinnedBytes: number }>): string {
  const pins = pinners.filter((p) => p.pinnedBytes > 0).map((p) => `${p.pid}:${p.pinnedBytes}`).sort();
  return `${deviceNames.join(',')}|${pins.join(',')}`;
}
