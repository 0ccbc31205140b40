// A collection turned into an exposition, shared: scrapes that arrive while one collection runs (or
// within SHARE_WINDOW_MS after it finished) get its result instead of starting another, so 200 clients
// at once cost one /proc pass, and a scrape never waits behind a queue of others.

import { Collector, type CollectorOptions } from './collect.js';
import { HeapKeeper } from './heap.js';
import { ExporterMetrics } from './metrics.js';

/** Results this fresh are served as they are (a scrape racing another gets the same numbers). */
export const SHARE_WINDOW_MS = 200;

export interface Exposition {
  text: string;
  contentType: string;
}

export interface ScraperOptions extends CollectorOptions {
  version: string;
  maxProcesses: number;
  /** Per-cgroup series at most (default DEFAULT_MAX_CGROUPS); the rest fold into cgroup="other". */
  maxCgroups?: number;
  /** Default SHARE_WINDOW_MS; 0 makes every scrape that finds no collection running start one (benchmarks). */
  shareWindowMs?: number;
  /** Keep the heap near its live size after each collection (heap.ts): for the long-running exporter. */
  keepHeap?: boolean;
}

export class Scraper {
  private readonly collector: Collector;
  private readonly metrics: ExporterMetrics;
  private pending: Promise<Exposition> | null = null;
  private last: { at: number; exposition: Exposition } | null = null;
  private readonly shareWindowMs: number;
  readonly heap: HeapKeeper | null;

  constructor(options: ScraperOptions) {
    this.shareWindowMs = options.shareWindowMs ?? SHARE_WINDOW_MS;
    this.heap = options.keepHeap ? new HeapKeeper() : null;
    this.collector = new Collector(options);
    this.metrics = new ExporterMetrics({
      version: options.version,
      maxProcesses: options.maxProcesses,
      processLabelNames: this.collector.processLabelNames,
      ...(options.maxCgroups !== undefined ? { maxCgroups: options.maxCgroups } : {}),
    });
  }

  /** The current exposition: a shared in-flight collection, a result from the last moment, or a new one. */
  scrape(): Promise<Exposition> {
    if (this.pending) return this.pending;
    if (this.last && performance.now() - this.last.at < this.shareWindowMs) return Promise.resolve(this.last.exposition);
    const pending = this.collectNow();
    this.pending = pending;
    const clear = () => {
      if (this.pending === pending) this.pending = null;
    };
    pending.then(clear, clear);
    return pending;
  }

  /** A collection of its own, never shared (the textfile writer and one-shot output). */
  async collectNow(): Promise<Exposition> {
    // Deferred one turn, so requests parsed in the same I/O pass join this collection.
    await new Promise((resolve) => setImmediate(resolve));
    const sample = await this.collector.collect();
    this.metrics.update(sample);
    const exposition = { text: await this.metrics.exposition(), contentType: this.metrics.contentType };
    this.last = { at: performance.now(), exposition };
    this.heap?.settle();
    return exposition;
  }

  /** Whether a collection is running now. */
  get busy(): boolean {
    return this.pending !== null;
  }
}
