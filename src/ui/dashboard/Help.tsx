// The `?` screen. It must fit a classic 80x24 terminal under the header (the e key's line took the
// blank line that was before the legend).

import { Box, Text } from 'ink';
import { fit } from '../format.js';

export const KEY_HELP: ReadonlyArray<readonly [string, string]> = [
  ['q, Ctrl-C', 'quit'],
  ['s', 'cycle the sort: pinned, locked, headroom, pid, comm, user (each in its own order)'],
  ['I', 'invert the sort: ascending / descending (shown in the header: sort: pinned desc)'],
  ['/', 'filter by comm, user or pid: type, Enter to apply, Esc to clear'],
  ['g', 'group the table: by systemd unit, container (pod, Slurm job), cgroup, then processes again'],
  ['e', 'show / hide the events pane: the latest registrations, releases, mlocks and failures (red), with registrations/s per process (traced: needs root and tracefs)'],
  ['p', 'pause / resume refreshing'],
  ['↑ ↓ PgUp PgDn', 'select a process (also j k Home End); in the detail: scroll its lists (also Space)'],
  ['Enter', 'detail of the selected process: registrations, locked and DONTFORK ranges, limit'],
  ['d', 'deregister a held registration (rdmactl reg --detach) of the selected process, after y/n'],
  ['?', 'this help'],
  ['Esc, Backspace', 'back (or clear the filter)'],
];

export const LEGEND = 'Rows: + new, ^ growing (pins or locks more), x exiting (shown one more refresh).';

export function Help({ width }: { width: number }) {
  return (
    <Box flexDirection="column">
      <Text bold wrap="truncate">{fit('rdmactl top: keys', width)}</Text>
      {KEY_HELP.map(([keys, what]) => (
        <Text key={keys} wrap="truncate">{fit(`  ${fit(keys, 16)}${what}`, width)}</Text>
      ))}
      <Text wrap="truncate">{fit(LEGEND, width)}</Text>
      <Text wrap="truncate">{fit('PINNED is VmPin (RDMA MRs, io_uring buffers), LOCKED is VmLck (mlock); %LIMIT is the larger against RLIMIT_MEMLOCK.', width)}</Text>
      <Text dimColor wrap="truncate">{fit('Esc or Backspace: back', width)}</Text>
    </Box>
  );
}
