// A collection turned into an exposition, shared: scrapes that arrive while one collection runs (or
// within SHARE_WINDOW_MS after it finished) get its result instead of starting another, so 200 clients
// at once cost one /proc pass, and a scrape never waits behind a queue of others.

import { Collector, type CollectorOptions } from './collect.js';
import { HeapKeeper } from './heap.js';
import { ExporterMetrics, type ExpositionFormat, type RuntimeMetrics } from './metrics.js';

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
  /** The exporter's own process_* / nodejs_* series (default none; see metrics.ts). */
  runtimeMetrics?: RuntimeMetrics;
}

/** One collection, and its expositions, each rendered once, when first asked for. */
interface Collected {
  at: number;
  renders: Map<ExpositionFormat, Promise<Exposition>>;
}

export class Scraper {
  private readonly collector: Collector;
  private readonly metrics: ExporterMetrics;
  private pending: Promise<Collected> | null = null;
  private last: Collected | null = null;
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
      ...(options.runtimeMetrics !== undefined ? { runtimeMetrics: options.runtimeMetrics } : {}),
    });
  }

  /**
   * The current exposition in `format`: of a shared in-flight collection, of one from the last
   * moment, or of a new one.
   */
  async scrape(format: ExpositionFormat = 'text'): Promise<Exposition> {
    return this.render(await this.collection(), format);
  }

  private collection(): Promise<Collected> {
    if (this.pending) return this.pending;
    if (this.last && performance.now() - this.last.at < this.shareWindowMs) return Promise.resolve(this.last);
    const pending = this.collect();
    this.pending = pending;
    const clear = () => {
      if (this.pending === pending) this.pending = null;
    };
    pending.then(clear, clear);
    return pending;
  }

  /** A collection of its own, never shared (the textfile writer and one-shot output), in text format. */
  async collectNow(): Promise<Exposition> {
    return this.render(await this.collect(), 'text');
  }

  private async collect(): Promise<Collected> {
    // Deferred one turn, so requests parsed in the same I/O pass join this collection.
    await new Promise((resolve) => setImmediate(resolve));
    const sample = await this.collector.collect();
    this.metrics.update(sample);
    const collected: Collected = { at: performance.now(), renders: new Map() };
    this.last = collected;
    return collected;
  }

  private render(collected: Collected, format: ExpositionFormat): Promise<Exposition> {
    let rendered = collected.renders.get(format);
    if (!rendered) {
      const first = collected.renders.size === 0;
      rendered = this.metrics.exposition(format).then((text) => {
        // After the collection and its first rendering, nearly all they allocated is garbage (heap.ts).
        if (first) this.heap?.settle();
        return { text, contentType: this.metrics.contentType(format) };
      });
      collected.renders.set(format, rendered);
    }
    return rendered;
  }

  /** The registry the expositions are rendered from: exporter --trace adds its counters to it. */
  get registry(): ExporterMetrics['registry'] {
    return this.metrics.registry;
  }

  /** Whether a collection is running now. */
  get busy(): boolean {
    return this.pending !== null;
  }

  /** Stops work that would outlive the exporter (a running rdma). */
  close(): void {
    this.collector.close();
  }
}
