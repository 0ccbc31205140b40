// The sampler: timer, history, mark-and-sweep, pause/resume, stop — with fake timers and reports.
import { describe, expect, it, vi } from 'vitest';
import { Sampler, markRows } from '../../src/ui/sampler.js';
import { proc, report } from './fixtures.js';
import type { StatReport } from '../../src/observe/stat.js';

describe('markRows (mark and sweep)', () => {
  it('first sample: no marks', () => {
    expect(markRows(null, [proc(1, 'a', 1)]).map((r) => r.mark)).toEqual([null]);
  });
  it('new, growing, unchanged, shrinking, exiting once, then gone; pid reuse counts as new', () => {
    const first = markRows(null, [proc(1, 'a', 1), proc(2, 'b', 4), proc(3, 'c', 2), proc(4, 'd', 1)]);
    const second = markRows(first, [proc(1, 'a', 1), proc(2, 'b', 2), proc(3, 'c', 2, 1), proc(5, 'e', 1), proc(4, 'other', 1)]);
    expect(second.map((r) => [r.pid, r.mark])).toEqual([[1, null], [2, null], [3, 'growing'], [5, 'new'], [4, 'new']]);
    const third = markRows(second, [proc(3, 'c', 2, 1)]);
    expect(third.map((r) => [r.pid, r.mark])).toEqual([[3, null], [1, 'exiting'], [2, 'exiting'], [5, 'exiting'], [4, 'exiting']]);
    // The exiting row keeps its last values for the one extra refresh.
    expect(third.find((r) => r.pid === 2)!.pinnedBytes).toBe(2 * 1024 * 1024);
    const fourth = markRows(third, [proc(3, 'c', 2, 1)]);
    expect(fourth.map((r) => [r.pid, r.mark])).toEqual([[3, null]]);
    // A pid that comes back after being swept is new again.
    expect(markRows(fourth, [proc(3, 'c', 2, 1), proc(1, 'a', 1)]).map((r) => r.mark)).toEqual([null, 'new']);
  });
});

function fakeTimers() {
  const pending: Array<{ fn: () => void; ms: number; id: number }> = [];
  let next = 1;
  return {
    pending,
    setTimer: (fn: () => void, ms: number) => { const id = next++; pending.push({ fn, ms, id }); return id; },
    clearTimer: (id: unknown) => { const i = pending.findIndex((p) => p.id === id); if (i >= 0) pending.splice(i, 1); },
    fire() { const p = pending.shift(); if (!p) throw new Error('no timer pending'); p.fn(); },
  };
}

describe('Sampler', () => {
  it('samples at start, then once per interval, keeping a bounded history; subscribers hear each snapshot', () => {
    const timers = fakeTimers();
    let pinned = 0;
    const collect = vi.fn((): StatReport => report([proc(1, 'a', ++pinned)]));
    const sampler = new Sampler({ intervalMs: 250, collect, historyLength: 3, setTimer: timers.setTimer, clearTimer: timers.clearTimer });
    const heard: number[] = [];
    sampler.subscribe(() => heard.push(sampler.getSnapshot()!.seq));
    expect(sampler.getSnapshot()).toBeNull();
    const first = sampler.start();
    expect(first.seq).toBe(1);
    expect(sampler.start()).toBe(first); // idempotent
    expect(timers.pending).toHaveLength(1);
    expect(timers.pending[0]!.ms).toBe(250);
    for (let i = 0; i < 4; i++) timers.fire();
    const snap = sampler.getSnapshot()!;
    expect(snap.seq).toBe(5);
    expect(heard).toEqual([1, 2, 3, 4, 5]);
    expect(snap.history).toEqual([3, 4, 5].map((m) => m * 1024 * 1024));
    expect(snap.rows[0]!.mark).toBe('growing');
    expect(snap.devices.available).toBe(false);
    expect(snap.held.available).toBe(false);
    expect(collect).toHaveBeenCalledTimes(5);
  });

  it('pause stops the timer and marks the snapshot; resume samples at once and restarts it', () => {
    const timers = fakeTimers();
    const collect = vi.fn(() => report([proc(1, 'a', 1)]));
    const sampler = new Sampler({ intervalMs: 1000, collect, setTimer: timers.setTimer, clearTimer: timers.clearTimer });
    sampler.start();
    sampler.pause();
    expect(sampler.isPaused()).toBe(true);
    expect(sampler.getSnapshot()!.paused).toBe(true);
    expect(timers.pending).toHaveLength(0);
    sampler.resume();
    expect(sampler.getSnapshot()!.paused).toBe(false);
    expect(sampler.getSnapshot()!.seq).toBe(2);
    expect(timers.pending).toHaveLength(1);
  });

  it('stop is idempotent, cancels the timer and drops subscribers', () => {
    const timers = fakeTimers();
    const sampler = new Sampler({ intervalMs: 1000, collect: () => report([]), setTimer: timers.setTimer, clearTimer: timers.clearTimer });
    const listener = vi.fn();
    sampler.subscribe(listener);
    sampler.start();
    sampler.stop();
    sampler.stop();
    expect(timers.pending).toHaveLength(0);
    expect(sampler.isStopped).toBe(true);
    sampler.pause();
    sampler.resume();
    expect(listener).toHaveBeenCalledTimes(1);
  });

  it('a failing refresh keeps the last data and reports the error; failing side collectors become reasons', () => {
    const timers = fakeTimers();
    let fail = false;
    const sampler = new Sampler({
      intervalMs: 1000,
      collect: () => { if (fail) throw new Error('boom'); return report([proc(1, 'a', 1)]); },
      devices: () => { throw new Error('rdma: netlink refused'); },
      held: () => ({ available: true, reason: null, count: 2, idsByPid: { 1: ['aaaaaaaa', 'bbbbbbbb'] } }),
      setTimer: timers.setTimer,
      clearTimer: timers.clearTimer,
    });
    const first = sampler.start();
    expect(first.devices).toEqual({ available: false, reason: 'rdma: netlink refused', mrsByDevice: {} });
    expect(first.held.count).toBe(2);
    fail = true;
    timers.fire();
    expect(sampler.getSnapshot()!.error).toBe('boom');
    expect(sampler.getSnapshot()!.rows).toHaveLength(1);
    expect(timers.pending).toHaveLength(1); // keeps refreshing
  });

  it('the first sample throws collector errors (the command maps them to an exit code)', () => {
    const sampler = new Sampler({ intervalMs: 1000, collect: () => { throw new Error('no /proc'); } });
    expect(() => sampler.start()).toThrow('no /proc');
    sampler.stop();
  });
});
