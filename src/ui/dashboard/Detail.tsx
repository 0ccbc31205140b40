// Detail of one process: its registrations (every source), locked and MADV_DONTFORK ranges, its limit.

import { Box, Text } from 'ink';
import type { LockedRange, ProcessDetailView } from '../types.js';
import { bytesCell, fit } from '../format.js';
import { escapeText } from '../../lib/escape.js';
import { formatBytes, hex } from '../../lib/size.js';

function rangeLine(range: LockedRange): string {
  return `  ${hex(range.start)}-${hex(range.end)}  ${fit(formatBytes(Number(range.end - range.start)), 10, 'right')}  ${range.what}`;
}

export function Detail({ detail, width, height, heldIds }: { detail: ProcessDetailView; width: number; height: number; heldIds: readonly string[] }) {
  const lines: Array<{ text: string; bold?: boolean; color?: string }> = [];
  const limit = (v: number | null): string => (v === null ? 'unlimited' : formatBytes(v));
  lines.push({ text: `pid ${detail.pid}  ${escapeText(detail.comm)}  user ${escapeText(detail.user)}${detail.gone ? '  (exited)' : ''}`, bold: true });
  lines.push({ text: `pinned ${bytesCell(detail.pinnedBytes)}   locked ${bytesCell(detail.lockedBytes)}   RLIMIT_MEMLOCK soft ${limit(detail.memlockSoftBytes)}, hard ${limit(detail.memlockHardBytes)}` });
  if (heldIds.length > 0) lines.push({ text: `held by rdmactl: ${heldIds.join(', ')}   (d: deregister)`, color: 'cyan' });
  lines.push({ text: '' });
  lines.push({ text: `Registrations (${detail.registrations.length})`, bold: true });
  lines.push({ text: `  ${fit('SOURCE', 9)}${fit('RANGE', 20)}${fit('LENGTH', 11, 'right')}  ${fit('DEVICE/HANDLE', 22)} FORK` });
  for (const r of detail.registrations) {
    const where = [r.device, r.handle].filter(Boolean).join(' ');
    lines.push({ text: `  ${fit(r.source, 9)}${fit(r.addr === null ? '?' : hex(r.addr), 20)}${fit(formatBytes(r.length), 11, 'right')}  ${fit(where, 22)} ${r.forkProtection ?? '?'}${r.overlap ? ' overlap' : ''}` });
  }
  if (detail.registrations.length === 0) lines.push({ text: '  none visible' });
  lines.push({ text: '' });
  lines.push({ text: `Locked ranges (${detail.lockedRanges.length})`, bold: true });
  for (const r of detail.lockedRanges) lines.push({ text: rangeLine(r) });
  if (detail.lockedRanges.length === 0) lines.push({ text: '  none' });
  lines.push({ text: `MADV_DONTFORK ranges (${detail.dontforkRanges.length})`, bold: true });
  for (const r of detail.dontforkRanges) lines.push({ text: rangeLine(r) });
  if (detail.dontforkRanges.length === 0) lines.push({ text: '  none' });
  for (const note of detail.notes) lines.push({ text: `note: ${note}`, color: 'yellow' });
  const room = Math.max(1, height);
  const shown = lines.length > room ? [...lines.slice(0, room - 1), { text: `… ${lines.length - room + 1} more lines (widen or enlarge the terminal)` }] : lines;
  return (
    <Box flexDirection="column">
      {shown.map((line, i) => (
        <Text key={i} wrap="truncate" bold={line.bold ?? false} {...(line.color ? { color: line.color } : {})}>{fit(line.text, width)}</Text>
      ))}
    </Box>
  );
}
