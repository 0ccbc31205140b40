// The exporter runs for months and may be scraped back to back: its heap should stay near what it
// keeps alive (about 10 MiB with 2,000 processes and 20 holders), not grow towards what V8 allows.
// Two things grew it (RSS +25 MiB from 100 to 3,000 back-to-back scrapes; bench/exporter.mjs):
//   - The young generation. V8 doubles it, up to 32 MiB, each time the bytes that survived scavenges
//     since it last grew exceed its size; an exporter that keeps state across collections reaches
//     that sooner or later, and the pages it touched stay resident. A scavenge right after each
//     collection, when nearly everything the collection allocated is garbage, keeps the touched part
//     to about one collection's allocations, whatever the capacity. It costs about a millisecond.
//   - The old generation. Each collection's kept state (series, the scanner's maps) replaces the
//     last one's, so old space fills with garbage until V8's own limit (several times the live size)
//     starts a major GC. A major GC once old space has grown by OLD_SPACE_SLACK_BYTES since the last
//     one keeps it near the live size: ~25 ms of CPU every ~30 back-to-back scrapes; at a 15 s
//     interval, one every several minutes.
// The collector is exposed only to this module (V8's gc extension, enabled for one new context).

import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** Old space may grow this much beyond its size after the last major GC before the next one. */
export const OLD_SPACE_SLACK_BYTES = 4 * 1024 * 1024;

/** gc() is a full, precise major GC; gc({ type: 'minor' }) a scavenge. (Node 20's { type: 'major' } frees nothing.) */
type GcFunction = (options?: { type: 'minor' }) => void;

/** V8's gc() for this isolate, without --expose-gc on the command line; null if V8 offers none. */
function exposeGc(): GcFunction | null {
  try {
    setFlagsFromString('--expose-gc');
    const gc: unknown = runInNewContext('typeof gc === "function" ? gc : null');
    return typeof gc === 'function' ? (gc as GcFunction) : null;
  } catch {
    return null;
  } finally {
    // Only the context made above has it; contexts made later should not.
    setFlagsFromString('--no-expose-gc');
  }
}

function oldSpaceUsedBytes(): number {
  return getHeapSpaceStatistics().find((space) => space.space_name === 'old_space')?.space_used_size ?? 0;
}

export class HeapKeeper {
  private readonly gc: GcFunction | null = exposeGc();
  private oldSpaceAfterMajor = oldSpaceUsedBytes();
  /** Major GCs this keeper started (for tests and benchmarks). */
  majorCollections = 0;

  /** Whether V8 gave us its collector (else settle() does nothing). */
  get active(): boolean {
    return this.gc !== null;
  }

  /** After a collection: scavenge its garbage, and collect old space if it grew past the slack. */
  settle(): void {
    if (this.gc === null) return;
    this.gc({ type: 'minor' });
    const used = oldSpaceUsedBytes();
    // Lower than after our last one: V8 collected old space itself meanwhile.
    if (used < this.oldSpaceAfterMajor) this.oldSpaceAfterMajor = used;
    if (used - this.oldSpaceAfterMajor < OLD_SPACE_SLACK_BYTES) return;
    this.gc();
    this.majorCollections++;
    this.oldSpaceAfterMajor = oldSpaceUsedBytes();
  }
}
