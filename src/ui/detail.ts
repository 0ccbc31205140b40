// The detail view's content, outside React: its lines (a fixed head and a body that scrolls), the
// window of the body a terminal of some height shows, and what an exited process leaves on screen.

import type { LockedRange, ProcessDetailView } from './types.js';
import { bytesCell, clockTime, fit } from './format.js';
import { formatBytes, hex } from '../lib/size.js';

export interface DetailLine {
  text: string;
  bold?: boolean;
  color?: string;
}

export interface DetailLines {
  /** Always shown: who the process is and its totals. */
  head: DetailLine[];
  /** Registrations, ranges and notes: scrolled when taller than the room left. */
  body: DetailLine[];
}

function rangeLine(range: LockedRange): DetailLine {
  return { text: `  ${hex(range.start)}-${hex(range.end)}  ${fit(formatBytes(Number(range.end - range.start)), 10, 'right')}  ${range.what}` };
}

function limitText(bytes: number | null): string {
  return bytes === null ? 'unlimited' : formatBytes(bytes);
}

/** How long ago `thenMs` was, for "last seen": seconds, then minutes, then hours. */
export function agoText(thenMs: number, nowMs: number): string {
  const s = Math.max(0, Math.round((nowMs - thenMs) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  return `${Math.floor(s / 3600)} h ago`;
}

/**
 * The lines of the detail view. Text is raw here (comm, user and file names included); the
 * component writes every line through fit(), which escapes it.
 */
export function detailLines(detail: ProcessDetailView, heldIds: readonly string[], nowMs: number): DetailLines {
  if (detail.state === 'exited') {
    const who = detail.comm === null ? '' : ` (${detail.comm}${detail.user === null ? '' : `, user ${detail.user}`})`;
    const seen = detail.lastSeenAt === null
      ? 'it was gone before it could be read'
      : `last seen ${clockTime(detail.lastSeenAt)}, ${agoText(detail.lastSeenAt, nowMs)}`;
    return {
      head: [
        { text: `process ${detail.pid}${who} has exited${detail.zombie ? ' (a zombie: its parent has not reaped it yet)' : ''}`, bold: true, color: 'red' },
        { text: seen },
      ],
      body: [],
    };
  }
  const limit = detail.memlock === null
    ? 'RLIMIT_MEMLOCK unknown (limits not readable)'
    : `RLIMIT_MEMLOCK soft ${limitText(detail.memlock.softBytes)}, hard ${limitText(detail.memlock.hardBytes)}`;
  const head: DetailLine[] = [
    { text: `pid ${detail.pid}  ${detail.comm}  user ${detail.user}`, bold: true },
    { text: `pinned ${bytesCell(detail.pinnedBytes)}   locked ${bytesCell(detail.lockedBytes)}   ${limit}` },
  ];
  if (heldIds.length > 0) head.push({ text: `held by rdmactl: ${heldIds.join(', ')}   (d: deregister)`, color: 'cyan' });
  const body: DetailLine[] = [{ text: '' }];
  body.push({ text: `Registrations (${detail.registrations.length})`, bold: true });
  body.push({ text: `  ${fit('SOURCE', 9)}${fit('RANGE', 20)}${fit('LENGTH', 11, 'right')}  ${fit('DEVICE/HANDLE', 22)} FORK` });
  for (const r of detail.registrations) {
    const where = [r.device, r.handle].filter(Boolean).join(' ');
    body.push({ text: `  ${fit(r.source, 9)}${fit(r.addr === null ? '?' : hex(r.addr), 20)}${fit(formatBytes(r.length), 11, 'right')}  ${fit(where, 22)} ${r.forkProtection ?? '?'}${r.overlap ? ' overlap' : ''}` });
  }
  if (detail.registrations.length === 0) body.push({ text: '  none visible' });
  body.push({ text: '' });
  body.push({ text: `Locked ranges (${detail.lockedRanges.length})`, bold: true });
  for (const r of detail.lockedRanges) body.push(rangeLine(r));
  if (detail.lockedRanges.length === 0) body.push({ text: '  none' });
  body.push({ text: `MADV_DONTFORK ranges (${detail.dontforkRanges.length})`, bold: true });
  for (const r of detail.dontforkRanges) body.push(rangeLine(r));
  if (detail.dontforkRanges.length === 0) body.push({ text: '  none' });
  for (const note of detail.notes) body.push({ text: `note: ${note}`, color: 'yellow' });
  return { head, body };
}

/**
 * What a refresh of the detail view shows. Once the process has exited the view stays on that
 * (a pid used again by a new process is not the one that was opened), keeping who it was and when
 * it was last seen running.
 */
export function followDetail(previous: ProcessDetailView | null, next: ProcessDetailView): ProcessDetailView {
  if (previous === null || previous.pid !== next.pid) return next;
  if (previous.state === 'exited') return previous;
  if (next.state === 'live') return next;
  return { ...next, comm: previous.comm, user: previous.user, lastSeenAt: previous.readAt };
}

export interface BodyWindow {
  /** Index of the first body line shown. */
  offset: number;
  /** How many body lines are shown. */
  shown: number;
  total: number;
  /** The body is taller than its room: one line of the room says which lines are shown. */
  scrolls: boolean;
}

/** The part of a body of `total` lines that fits in `room` lines, starting near `offset` (clamped). */
export function bodyWindow(total: number, room: number, offset: number): BodyWindow {
  const space = Math.max(1, room);
  if (total <= space) return { offset: 0, shown: total, total, scrolls: false };
  const shown = Math.max(1, space - 1);
  return { offset: Math.min(Math.max(0, offset), total - shown), shown, total, scrolls: true };
}

/** The indicator line of a scrolled body: "lines 21–40 of 140". */
export function windowText(window: BodyWindow): string {
  return `lines ${window.offset + 1}–${window.offset + window.shown} of ${window.total}   ↑↓ PgUp PgDn Home End scroll`;
}
