// The repeat loop's pure parts: where the next tick falls, how --interval/--count are read, and the
// time line, checked against date(1) itself in zones with odd offsets.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { MIN_INTERVAL_MS, localIsoSeconds, nextTickIndex, watchPlan } from '../../src/lib/watch.js';
import { UsageError } from '../../src/lib/errors.js';

describe('nextTickIndex: a fixed grid, missed ticks skipped', () => {
  it('a quick sample waits for the next tick of the grid (no drift: the sample time is not added)', () => {
    expect(nextTickIndex(0, 30, 1000)).toBe(1);
    expect(nextTickIndex(5, 5_040, 1000)).toBe(6);
  });

  it('a sample that overran two ticks goes to the first tick still ahead, once (no burst of catch-up samples)', () => {
    expect(nextTickIndex(1, 3_500, 1000)).toBe(4);
    expect(nextTickIndex(4, 4_010, 1000)).toBe(5);
  });

  it('a timer that fired a little early does not sample the same tick again', () => {
    expect(nextTickIndex(3, 2_999, 1000)).toBe(4);
  });
});

describe('watchPlan: --interval and --count', () => {
  it('neither: print once', () => {
    expect(watchPlan({})).toBeNull();
  });

  it('the duration syntax, with or without --count', () => {
    expect(watchPlan({ interval: '2' })).toEqual({ intervalMs: 2000, count: null });
    expect(watchPlan({ interval: '500ms', count: '3' })).toEqual({ intervalMs: 500, count: 3 });
    expect(watchPlan({ interval: '1m' })).toEqual({ intervalMs: 60_000, count: null });
  });

  it.each([
    [{ count: '3' }, /--count needs --interval: add e\.g\. --interval 1s/],
    [{ interval: '50ms' }, new RegExp(`invalid --interval '50ms': at least ${MIN_INTERVAL_MS}ms`)],
    [{ interval: 'soon' }, /invalid --interval 'soon': expected a number with ms, s, m or h/],
    [{ interval: '1s', count: '0' }, /invalid --count '0': expected a whole number from 1/],
  ])('%o is a usage error naming the fix', (flags, message) => {
    expect(() => watchPlan(flags)).toThrow(UsageError);
    expect(() => watchPlan(flags)).toThrow(message);
  });
});

describe('localIsoSeconds: what `date -Iseconds` prints', () => {
  const savedTz = process.env['TZ'];
  afterEach(() => {
    if (savedTz === undefined) delete process.env['TZ'];
    else process.env['TZ'] = savedTz;
  });

  // Half-hour and quarter-hour offsets, west and east, a zone in summer time, and UTC.
  it.for(['UTC', 'Asia/Kolkata', 'America/St_Johns', 'Asia/Kathmandu', 'Europe/Berlin', 'Pacific/Chatham'])('%s, in winter and in summer', (zone, ctx) => {
    // Without the zone's tzdata file date(1) falls back to UTC, while Node has its own copy of the zones.
    if (zone !== 'UTC' && !existsSync(`/usr/share/zoneinfo/${zone}`)) {
      const reason = `no /usr/share/zoneinfo/${zone} for date(1) (install tzdata)`;
      console.warn(`SKIPPING: ${reason}`);
      ctx.skip(reason);
    }
    for (const epoch of [1_767_225_600, 1_782_864_000 + 3_723]) { // 2026-01-01 00:00 UTC, 2026-07-01 01:02:03 UTC
      const date = spawnSync('date', ['-Iseconds', '-d', `@${epoch}`], { encoding: 'utf8', env: { ...process.env, TZ: zone } });
      if (date.error || date.status !== 0) {
        const reason = `date(1) cannot print ${zone}: ${date.error?.message ?? date.stderr}`;
        console.warn(`SKIPPING: ${reason}`);
        ctx.skip(reason);
      }
      process.env['TZ'] = zone; // Node re-reads TZ when it is set
      expect(localIsoSeconds(new Date(epoch * 1000))).toBe(date.stdout.trim());
    }
  });
});
