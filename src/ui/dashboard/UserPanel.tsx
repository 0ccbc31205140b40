// Per-user totals: io_uring charges RLIMIT_MEMLOCK to the user, across all its processes.

import { Box, Text } from 'ink';
import type { UserRow } from '../../observe/stat.js';
import { escapeText } from '../../lib/escape.js';
import { bytesCell, fit } from '../format.js';

export function UserPanel({ users, width, maxRows }: { users: readonly UserRow[]; width: number; maxRows: number }) {
  if (maxRows <= 0) return null;
  const shown = users.slice(0, maxRows);
  const more = users.length - shown.length;
  const line = (user: string, procs: string, pinned: string, locked: string, uring: string): string =>
    `  ${fit(user, 12)} ${fit(procs, 6, 'right')} ${fit(pinned, 10, 'right')} ${fit(locked, 10, 'right')} ${fit(uring, 12, 'right')}`;
  return (
    <Box flexDirection="column">
      <Text bold wrap="truncate">{fit(line('USER', 'PROCS', 'PINNED', 'LOCKED', 'IO_URING') + '  (io_uring is charged to the user)', width)}</Text>
      {shown.length === 0 ? <Text dimColor wrap="truncate">{fit('  no user pins or locks memory', width)}</Text> : null}
      {shown.map((u) => (
        <Text key={u.uid} wrap="truncate">
          {fit(line(escapeText(u.user), String(u.processes), bytesCell(u.pinnedBytes), bytesCell(u.lockedBytes), bytesCell(u.uringBytes)), width)}
        </Text>
      ))}
      {more > 0 ? <Text dimColor wrap="truncate">{fit(`  … ${more} more`, width)}</Text> : null}
    </Box>
  );
}
