// The grouped view (key g): one row per cgroup, systemd unit or container that pins or locks, with
// the group's memory limit, headroom and rdma use (the rows of `stat --by`).

import { Box, Text } from 'ink';
import type { GroupBy, GroupRow } from '../../observe/cgroups.js';
import { escapeText } from '../../lib/escape.js';
import { bytesCell, chooseColumns, fit, type Column } from '../format.js';

/** rxe0 2/3: hca_object use against rdma.max, per device (max when unlimited). */
function rdmaCell(row: GroupRow): string {
  if (row.rdma === null) return '-';
  if (row.rdma.length === 0) return 'none';
  return row.rdma.map((d) => `${d.device} ${d.current['hca_object'] ?? 0}/${d.max['hca_object'] ?? 'max'}`).join(' ');
}

export const GROUP_COLUMNS: readonly Column<GroupRow>[] = [
  { key: 'group', label: 'GROUP', width: 24, flex: true, text: (g) => escapeText(g.group) },
  { key: 'processes', label: 'PROCS', width: 5, align: 'right', text: (g) => String(g.processes) },
  { key: 'pinnedBytes', label: 'PINNED', width: 9, align: 'right', text: (g) => bytesCell(g.pinnedBytes) },
  { key: 'lockedBytes', label: 'LOCKED', width: 9, align: 'right', text: (g) => bytesCell(g.lockedBytes) },
  { key: 'memoryLimitBytes', label: 'MEMLIMIT', width: 9, align: 'right', text: (g) => bytesCell(g.memoryLimitBytes, 'max') },
  { key: 'memoryHeadroomBytes', label: 'HEADROOM', width: 9, align: 'right', text: (g) => bytesCell(g.memoryHeadroomBytes) },
  { key: 'unevictableBytes', label: 'UNEVICT', width: 9, align: 'right', text: (g) => bytesCell(g.unevictableBytes), dropOrder: 3 },
  { key: 'rdma', label: 'RDMA-OBJ', width: 12, text: rdmaCell, dropOrder: 2 },
  { key: 'flags', label: 'FLAGS', width: 18, text: (g) => g.flags.join(','), dropOrder: 1 },
];

export function GroupTable({ rows, by, width, height }: { rows: readonly GroupRow[]; by: GroupBy; width: number; height: number }) {
  const columns = chooseColumns(GROUP_COLUMNS, width - 2);
  const visible = rows.slice(0, Math.max(1, height - 1));
  const line = (cells: string[]): string => `  ${cells.join(' ')}`;
  return (
    <Box flexDirection="column">
      <Text bold inverse wrap="truncate">{fit(line(columns.map((c) => fit(c.label === 'GROUP' ? by.toUpperCase() : c.label, c.width, c.align))), width)}</Text>
      {rows.length === 0 ? <Text dimColor wrap="truncate">{fit(`  No ${by} has pinned or locked memory.`, width)}</Text> : null}
      {visible.map((row) => (
        <Text key={`${row.group}\0${row.cgroup ?? ''}`} wrap="truncate" {...(row.flags.some((f) => f.startsWith('near-')) ? { color: 'yellow' } : {})}>
          {fit(line(columns.map((c) => fit(c.text(row), c.width, c.align))), width)}
        </Text>
      ))}
    </Box>
  );
}
