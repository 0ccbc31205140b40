// The events pane (key e): the latest traced registrations, deregistrations, mlocks and failures
// (failures in red), with each process's registration rate; one line saying why when there is no tracing.

import { Box, Text } from 'ink';
import type { EventRow, EventsSnapshot } from '../types.js';
import { chooseColumns, fit, type Column } from '../format.js';
import { EVENT_COLUMNS, eventsTitle, noTracingLine, ratesLine } from '../eventsFormat.js';

/** Lines the pane takes besides its event rows: title, rates, column header. */
export const EVENTS_PANE_FIXED_LINES = 3;

export function eventLine(columns: readonly Column<EventRow>[], row: EventRow): string {
  return columns.map((c) => fit(c.text(row), c.width, c.align)).join(' ');
}

export function EventsPane({ events, width, height }: { events: EventsSnapshot; width: number; height: number }) {
  if (events.state !== 'tracing') {
    return <Text color={events.state === 'starting' ? undefined : 'yellow'} dimColor={events.state === 'starting'} wrap="truncate">{fit(noTracingLine(events), width)}</Text>;
  }
  const columns = chooseColumns(EVENT_COLUMNS, width - 2);
  const rows = Math.max(0, height - EVENTS_PANE_FIXED_LINES);
  // Newest last, as `rdmactl trace` prints them: the last `rows` events.
  const shown = rows > 0 ? events.events.slice(-rows) : [];
  return (
    <Box flexDirection="column">
      <Text bold wrap="truncate" {...(events.lost > 0 ? { color: 'yellow' } : {})}>{fit(eventsTitle(events), width)}</Text>
      <Text wrap="truncate">{fit(ratesLine(events), width)}</Text>
      <Text bold inverse wrap="truncate">{fit(`  ${columns.map((c) => fit(c.label, c.width, c.align)).join(' ')}`, width)}</Text>
      {shown.length === 0 ? <Text dimColor wrap="truncate">{fit('  no registration, deregistration or mlock seen yet', width)}</Text> : null}
      {shown.map((row, i) => (
        <Text key={`${events.total - shown.length + i}`} wrap="truncate" {...(row.op === 'failed' ? { color: 'red', bold: true } : {})}>
          {fit(`${row.op === 'failed' ? '!' : ' '} ${eventLine(columns, row)}`, width)}
        </Text>
      ))}
    </Box>
  );
}
