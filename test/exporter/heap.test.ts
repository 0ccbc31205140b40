// The exporter's heap keeper on this process's real V8 heap: it gets V8's collector without
// --expose-gc on the command line (and leaves other contexts without it), scavenges after every
// collection, and starts a major GC once old space has grown past the slack, which brings old space
// back down.
import { getHeapSpaceStatistics } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { HeapKeeper, OLD_SPACE_SLACK_BYTES } from '../../src/exporter/heap.js';

const oldSpaceUsed = (): number => getHeapSpaceStatistics().find((s) => s.space_name === 'old_space')!.space_used_size;

describe('HeapKeeper', () => {
  it('gets the collector, and contexts made afterwards do not see gc', () => {
    const keeper = new HeapKeeper();
    expect(keeper.active).toBe(true);
    expect(runInNewContext('typeof gc')).toBe('undefined');
  });

  it('collects old space once it grew past the slack, and not before', () => {
    const keeper = new HeapKeeper();
    keeper.settle();
    const before = keeper.majorCollections;
    keeper.settle();
    expect(keeper.majorCollections, 'nothing grew: no major GC').toBe(before);

    // Garbage in old space: kept alive across the scavenges V8 makes while it is allocated (so they
    // promote it), then dropped.
    let kept: number[][] | null = [];
    for (let i = 0; i < 3 * OLD_SPACE_SLACK_BYTES / 1024; i++) kept.push(new Array(100).fill(i));
    const grown = oldSpaceUsed();
    expect(grown, 'the allocation was promoted to old space').toBeGreaterThan(OLD_SPACE_SLACK_BYTES * 2);
    kept = null;
    keeper.settle();
    expect(keeper.majorCollections).toBe(before + 1);
    expect(oldSpaceUsed(), `old space ${grown} → ${oldSpaceUsed()} bytes`).toBeLessThan(grown - OLD_SPACE_SLACK_BYTES);
  });
});
