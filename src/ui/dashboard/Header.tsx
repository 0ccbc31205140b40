// Top of the dashboard: system totals as gauges against MemTotal, RDMA devices, held count, sparkline.

import { Box, Text } from 'ink';
import type { Snapshot } from '../types.js';
import { clockTime, fit, gaugeBar, percentText, sortText, sparkline, type SortOrder } from '../format.js';
import { formatBytes } from '../../lib/size.js';

function Gauge({ label, value, total, width, color }: { label: string; value: number; total: number; width: number; color: string }) {
  const text = `${formatBytes(value)} ${percentText(value, total)}`;
  const barWidth = Math.max(0, Math.min(40, width - 12 - 2 - 18));
  return (
    <Text wrap="truncate">
      {fit(label, 12)}
      {barWidth > 0 ? <Text>[<Text color={color}>{gaugeBar(value, total, barWidth)}</Text>] </Text> : null}
      {text}
    </Text>
  );
}

function devicesText(snapshot: Snapshot): string {
  const { devices } = snapshot;
  if (!devices.available) return devices.reason ?? 'no RDMA device';
  const names = Object.keys(devices.mrsByDevice).sort();
  if (names.length === 0) return 'no MRs';
  return names.map((name) => `${name}: ${devices.mrsByDevice[name]} MR${devices.mrsByDevice[name] === 1 ? '' : 's'}`).join('  ');
}

export function Header({ snapshot, width, sort }: { snapshot: Snapshot; width: number; sort: SortOrder }) {
  const { system } = snapshot.report;
  const interval = snapshot.intervalMs >= 1000 ? `${snapshot.intervalMs / 1000}s` : `${snapshot.intervalMs}ms`;
  const title = `rdmactl top  ${clockTime(snapshot.report.scannedAt)}  every ${interval}  ${snapshot.report.scannedProcesses} processes, ${system.processesHolding} pinning/locking  sort: ${sortText(sort)}`;
  const held = snapshot.held.available ? `held: ${snapshot.held.count}` : 'held: -';
  const sparkLabel = 'pinned history ';
  const minutes = (snapshot.history.length * snapshot.intervalMs) / 60_000;
  const span = minutes >= 1 ? ` (${minutes.toFixed(minutes < 10 ? 1 : 0)} min)` : ` (${Math.round(minutes * 60)} s)`;
  const sparkWidth = Math.max(0, width - sparkLabel.length - span.length - 1);
  return (
    <Box flexDirection="column">
      <Text wrap="truncate" bold>
        {fit(title, Math.max(0, width - (snapshot.paused ? 9 : 0)))}
        {snapshot.paused ? <Text color="yellow" inverse>{' PAUSED '}</Text> : null}
      </Text>
      <Gauge label="pinned" value={system.pinnedBytes} total={system.memTotalBytes} width={width} color="red" />
      <Gauge label="Mlocked" value={system.mlockedBytes} total={system.memTotalBytes} width={width} color="yellow" />
      <Gauge label="Unevictable" value={system.unevictableBytes} total={system.memTotalBytes} width={width} color="magenta" />
      <Text wrap="truncate">{fit(`MemTotal ${formatBytes(system.memTotalBytes)}   RDMA: ${devicesText(snapshot)}   ${held}`, width)}</Text>
      <Text wrap="truncate">
        {sparkLabel}
        <Text color="cyan">{sparkline(snapshot.history, sparkWidth)}</Text>
        {span}
      </Text>
      {snapshot.error ? <Text color="red" wrap="truncate">{fit(`refresh failed: ${snapshot.error}`, width)}</Text> : null}
    </Box>
  );
}

export const HEADER_LINES = 6;
