// Detail of one process: its head (who, totals, limit), then the window of its body (registrations of
// every source, locked and MADV_DONTFORK ranges, notes) that fits, with "lines a–b of n" when scrolled.

import { Box, Text } from 'ink';
import { fit } from '../format.js';
import { windowText, type BodyWindow, type DetailLine, type DetailLines } from '../detail.js';

function Line({ line, width }: { line: DetailLine; width: number }) {
  return <Text wrap="truncate" bold={line.bold ?? false} {...(line.color ? { color: line.color } : {})}>{fit(line.text, width)}</Text>;
}

export function Detail({ lines, window, width }: { lines: DetailLines; window: BodyWindow; width: number }) {
  const shown = lines.body.slice(window.offset, window.offset + window.shown);
  return (
    <Box flexDirection="column">
      {lines.head.map((line, i) => <Line key={`h${i}`} line={line} width={width} />)}
      {shown.map((line, i) => <Line key={`b${window.offset + i}`} line={line} width={width} />)}
      {window.scrolls ? <Text wrap="truncate" dimColor>{fit(windowText(window), width)}</Text> : null}
    </Box>
  );
}
