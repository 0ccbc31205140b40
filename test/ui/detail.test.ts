// The detail view's pure parts: its lines, the exited view that follows a live one, the scrolled window.
import { describe, expect, it } from 'vitest';
import { agoText, bodyWindow, detailLines, followDetail, windowText } from '../../src/ui/detail.js';
import type { ExitedProcessDetail, LiveProcessDetail } from '../../src/ui/types.js';
import { MiB, fakeActions } from './fixtures.js';

const live = fakeActions().loadDetail(101) as LiveProcessDetail;
const seenAt = live.readAt;
const goneAtFirstRead: ExitedProcessDetail = { state: 'exited', pid: 101, comm: null, user: null, lastSeenAt: null, zombie: false };

function texts(lines: { text: string }[]): string[] {
  return lines.map((l) => l.text);
}

describe('detail lines', () => {
  it('a live process: who, totals and limit in the head; registrations, ranges and notes in the body', () => {
    const { head, body } = detailLines(live, ['0badc0de'], seenAt);
    expect(texts(head)).toEqual([
      'pid 101  trainer  user alice',
      'pinned 8 MiB   locked 0   RLIMIT_MEMLOCK soft 64 MiB, hard 128 MiB',
      'held by rdmactl: 0badc0de   (d: deregister)',
    ]);
    expect(texts(body)).toContain('Registrations (1)');
    expect(texts(body)).toContain('Locked ranges (1)');
    expect(texts(body)).toContain('MADV_DONTFORK ranges (1)');
  });

  it('an unreadable limit is unknown, never unlimited; a null soft or hard limit is unlimited', () => {
    const unknown = detailLines({ ...live, memlock: null }, [], seenAt);
    expect(unknown.head[1]!.text).toBe('pinned 8 MiB   locked 0   RLIMIT_MEMLOCK unknown (limits not readable)');
    const unlimited = detailLines({ ...live, memlock: { softBytes: 8 * MiB, hardBytes: null } }, [], seenAt);
    expect(unlimited.head[1]!.text).toContain('RLIMIT_MEMLOCK soft 8 MiB, hard unlimited');
  });

  it('an exited process: who it was and when it was last seen, and nothing it no longer has', () => {
    const exited = followDetail(live, goneAtFirstRead);
    const { head, body } = detailLines(exited, [], seenAt + 5_000);
    const d = new Date(seenAt);
    const clock = [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, '0')).join(':');
    expect(texts(head)).toEqual(['process 101 (trainer, user alice) has exited', `last seen ${clock}, 5 s ago`]);
    expect(body).toEqual([]);
    const all = texts(head).join('\n');
    for (const stale of ['unlimited', 'RLIMIT_MEMLOCK', 'pinned', 'Registrations']) expect(all).not.toContain(stale);
    expect(texts(detailLines(goneAtFirstRead, [], seenAt).head)).toEqual(['process 101 has exited', 'it was gone before it could be read']);
    expect(detailLines({ ...goneAtFirstRead, zombie: true, comm: 'trainer', user: 'alice' }, [], seenAt).head[0]!.text)
      .toBe('process 101 (trainer, user alice) has exited (a zombie: its parent has not reaped it yet)');
  });

  it('agoText: seconds, minutes, hours', () => {
    expect(agoText(0, 999)).toBe('1 s ago');
    expect(agoText(0, 59_000)).toBe('59 s ago');
    expect(agoText(0, 125_000)).toBe('2 min ago');
    expect(agoText(0, 7_300_000)).toBe('2 h ago');
  });
});

describe('followDetail', () => {
  it('keeps who the process was and when it was last read once it has exited, and stays exited', () => {
    const exited = followDetail(live, goneAtFirstRead);
    expect(exited).toEqual({ state: 'exited', pid: 101, comm: 'trainer', user: 'alice', lastSeenAt: seenAt, zombie: false });
    // The pid used again by a new process: still the exited view of the one that was opened.
    expect(followDetail(exited, { ...live, comm: 'newcomer', readAt: seenAt + 9_000 })).toBe(exited);
    // A live read replaces a live read; another pid starts afresh.
    const later = { ...live, readAt: seenAt + 1_000 };
    expect(followDetail(live, later)).toBe(later);
    expect(followDetail(live, { ...goneAtFirstRead, pid: 202 })).toEqual({ ...goneAtFirstRead, pid: 202 });
  });
});

describe('bodyWindow', () => {
  it('a body that fits is shown whole, without an indicator', () => {
    expect(bodyWindow(10, 10, 5)).toEqual({ offset: 0, shown: 10, total: 10, scrolls: false });
  });

  it('a taller body shows room-1 lines (one line says which) and clamps the offset to both ends', () => {
    expect(bodyWindow(140, 21, 0)).toEqual({ offset: 0, shown: 20, total: 140, scrolls: true });
    expect(bodyWindow(140, 21, -3).offset).toBe(0);
    expect(bodyWindow(140, 21, 500).offset).toBe(120);
    expect(windowText(bodyWindow(140, 21, 0))).toBe('lines 1–20 of 140   ↑↓ PgUp PgDn Home End scroll');
    expect(windowText(bodyWindow(140, 21, 500))).toMatch(/^lines 121–140 of 140/);
  });
});
