// The process table: one row per process that pins or locks memory, marked rows highlighted.

import { Box, Text } from 'ink';
import type { DisplayRow, RowMark } from '../types.js';
import { chooseColumns, fit, type Column } from '../format.js';
import { PROCESS_COLUMNS } from './columns.js';

const MARK_CHAR: Record<Exclude<RowMark, null>, string> = { new: '+', growing: '^', exiting: 'x' };
const MARK_COLOR: Record<Exclude<RowMark, null>, string> = { new: 'green', growing: 'yellow', exiting: 'red' };

export function rowText(columns: readonly Column<DisplayRow>[], row: DisplayRow): string {
  return columns.map((c) => fit(c.text(row), c.width, c.align)).join(' ');
}

export function headerText(columns: readonly Column<DisplayRow>[]): string {
  return columns.map((c) => fit(c.label, c.width, c.align)).join(' ');
}

export interface ProcessTableProps {
  rows: readonly DisplayRow[];
  width: number;
  height: number;
  selected: number;
  /** What to say when there are no rows. */
  emptyText?: string;
}

export function ProcessTable({ rows, width, height, selected, emptyText = 'No process has pinned or locked memory.' }: ProcessTableProps) {
  const columns = chooseColumns(PROCESS_COLUMNS, width - 2);
  const visible = Math.max(1, height - 1);
  // Keep the selection on screen: scroll so it sits in the window.
  const top = Math.min(Math.max(0, selected - visible + 1), Math.max(0, rows.length - visible));
  const window = rows.slice(top, top + visible);
  return (
    <Box flexDirection="column">
      <Text bold inverse wrap="truncate">{fit(`  ${headerText(columns)}`, width)}</Text>
      {rows.length === 0 ? <Text dimColor wrap="truncate">{fit(`  ${emptyText}`, width)}</Text> : null}
      {window.map((row, i) => {
        const index = top + i;
        const mark = row.mark;
        const line = `${mark ? MARK_CHAR[mark] : ' '} ${rowText(columns, row)}`;
        return (
          <Text
            key={`${row.pid}-${mark ?? ''}`}
            wrap="truncate"
            inverse={index === selected}
            {...(mark ? { color: MARK_COLOR[mark] } : {})}
            dimColor={mark === 'exiting'}
          >
            {fit(line, width)}
          </Text>
        );
      })}
    </Box>
  );
}

