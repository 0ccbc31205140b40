// The dashboard: header, process table, user panel, footer; detail and help views; keys.
// State here is only what the person chose (view, sort, filter, selection); data comes from the sampler.

import { useEffect, useMemo, useRef, useState } from 'react';
import { Box, Text, useApp, useInput, useStdin, type Key } from 'ink';
import type { DashboardActions, DisplayRow, EventsSnapshot, EventsSource, ProcessDetailView, SnapshotSource } from '../types.js';
import { useEvents, useSnapshot, useTerminalSize } from '../hooks.js';
import { fit, followSelection, invertSort, matchesFilter, nextSort, parseSortOrder, sortRows, DEFAULT_SORT_TEXT, type SortOrder } from '../format.js';
import { bodyWindow, detailLines, followDetail } from '../detail.js';
import { Header, HEADER_LINES } from './Header.js';
import { ProcessTable } from './ProcessTable.js';
import { UserPanel } from './UserPanel.js';
import { Detail } from './Detail.js';
import { Help } from './Help.js';
import { GroupTable } from './GroupTable.js';
import { EVENTS_PANE_FIXED_LINES, EventsPane } from './EventsPane.js';
import type { GroupBy, GroupRow } from '../../observe/cgroups.js';

/** Event rows the pane shows at most (it takes at most a third of the body). */
const EVENTS_PANE_ROWS = 8;

/** Lines the events pane takes in a body of `body` lines: one when there is no tracing, none when hidden. */
function eventsPaneLines(events: EventsSnapshot | null, shown: boolean, body: number): number {
  if (events === null || !shown) return 0;
  if (events.state !== 'tracing') return 1;
  return Math.min(EVENTS_PANE_FIXED_LINES + EVENTS_PANE_ROWS, Math.max(EVENTS_PANE_FIXED_LINES + 1, Math.floor(body / 3)));
}

/** Key g cycles the main table: processes, then grouped by unit, container, cgroup, and back. */
const GROUPINGS: readonly (GroupBy | null)[] = [null, 'unit', 'container', 'cgroup'];

export interface AppProps {
  source: SnapshotSource;
  actions: DashboardActions;
  /** Quit after this many refreshes (scripts, tests). */
  count?: number;
  /** Fixed size instead of the terminal's (tests). */
  columns?: number;
  rows?: number;
  /** The sort the table starts with (top --sort); s and I change it. */
  initialSort?: SortOrder;
  /** The traced events (top runs the trace outside React); without it there is no events pane. */
  events?: EventsSource;
  onQuit?: () => void;
}

type View = 'main' | 'detail' | 'help';

/** The Key of one character taken out of a multi-character input. */
function keyOf(key: Key, ch: string): Key {
  return {
    ...key,
    return: ch === '\r' || ch === '\n',
    escape: ch === '\u001B',
    backspace: ch === '\u007F' || ch === '\b',
    delete: false,
    tab: ch === '\t',
  };
}

interface Confirm {
  pid: number;
  ids: string[];
}

const DEFAULT_SORT = parseSortOrder(DEFAULT_SORT_TEXT);

export function App({ source, actions, count, columns, rows: rowsOverride, initialSort = DEFAULT_SORT, events: eventsSource, onQuit }: AppProps) {
  const snapshot = useSnapshot(source);
  const events = useEvents(eventsSource);
  const [showEvents, setShowEvents] = useState(true);
  const { exit } = useApp();
  const { isRawModeSupported } = useStdin();
  const size = useTerminalSize({ ...(columns !== undefined ? { columns } : {}), ...(rowsOverride !== undefined ? { rows: rowsOverride } : {}) });
  const [view, setView] = useState<View>('main');
  const [sort, setSort] = useState<SortOrder>(initialSort);
  const [filter, setFilter] = useState('');
  const [draft, setDraftState] = useState<string | null>(null);
  // Keys can arrive faster than renders (typing, pasting): handlers read and write the ref.
  const draftRef = useRef<string | null>(null);
  const setDraft = (value: string | null): void => {
    draftRef.current = value;
    setDraftState(value);
  };
  const [selectedIndex, setSelectedIndex] = useState(0);
  const [selectedPid, setSelectedPid] = useState<number | null>(null);
  const [detail, setDetail] = useState<ProcessDetailView | null>(null);
  /** First line of the detail body shown (the body scrolls when taller than the terminal). */
  const [detailOffset, setDetailOffset] = useState(0);
  const [confirm, setConfirm] = useState<Confirm | null>(null);
  const [status, setStatus] = useState<string | null>(null);
  const [groupBy, setGroupBy] = useState<GroupBy | null>(null);

  const quit = (): void => {
    onQuit?.();
    exit();
  };

  const rows: DisplayRow[] = useMemo(() => {
    if (!snapshot) return [];
    const live = draft ?? filter;
    return sortRows(snapshot.rows.filter((r) => matchesFilter(r, live)), sort);
  }, [snapshot, sort, filter, draft]);

  // Grouping reads each holder's /proc/PID/cgroup and the groups' limit files: only while shown.
  // The filter applies here too: the groups of the processes shown.
  const grouped: { rows: GroupRow[]; error: string | null } = useMemo(() => {
    if (groupBy === null || !actions.groups) return { rows: [], error: null };
    try {
      return { rows: actions.groups(groupBy, rows.filter((r) => r.mark !== 'exiting')), error: null };
    } catch (err) {
      return { rows: [], error: `groups: ${err instanceof Error ? err.message : String(err)}` };
    }
  }, [rows, groupBy, actions]);

  const selected = followSelection(rows.map((r) => r.pid), selectedPid, selectedIndex);
  const selectedRow = rows[selected] ?? null;

  // --count: quit once that many refreshes have been shown.
  useEffect(() => {
    if (count !== undefined && snapshot && snapshot.seq >= count) quit();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [snapshot?.seq, count]);

  // The detail view follows the refreshes, until its process has exited (then it says so and stays).
  useEffect(() => {
    if (view !== 'detail' || detail === null || detail.state === 'exited') return;
    try {
      setDetail(followDetail(detail, actions.loadDetail(detail.pid)));
    } catch (err) {
      setStatus(`detail: ${err instanceof Error ? err.message : String(err)}`);
    }
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [snapshot?.seq]);

  const select = (index: number): void => {
    const clamped = Math.min(Math.max(0, index), Math.max(0, rows.length - 1));
    setSelectedIndex(clamped);
    setSelectedPid(rows[clamped]?.pid ?? null);
  };

  const heldIdsOf = (pid: number): string[] => snapshot?.held.idsByPid[pid] ?? [];

  const askDeregister = (pid: number | null): void => {
    if (pid === null) return;
    if (!snapshot?.held.available) {
      setStatus(`held registrations unavailable: ${snapshot?.held.reason ?? 'unknown'}`);
      return;
    }
    const ids = heldIdsOf(pid);
    if (ids.length === 0) {
      setStatus(`pid ${pid} holds no registration made with 'rdmactl reg --detach'`);
      return;
    }
    setConfirm({ pid, ids });
  };

  const openDetail = (): void => {
    if (!selectedRow) return;
    try {
      setDetail(actions.loadDetail(selectedRow.pid));
      setDetailOffset(0);
      setView('detail');
    } catch (err) {
      setStatus(`detail: ${err instanceof Error ? err.message : String(err)}`);
    }
  };

  const pageRows = Math.max(1, size.rows - HEADER_LINES - 8);
  const width = Math.max(20, size.columns);
  // Never fill the last line: ink clears the whole screen for frames as tall as the terminal.
  const height = Math.max(8, size.rows - 1);
  const headerLines = HEADER_LINES + (snapshot?.error ? 1 : 0);
  const body = height - headerLines - 1;
  const shownDetail = view === 'detail' && detail !== null ? detailLines(detail, heldIdsOf(detail.pid), Date.now()) : null;
  const detailWindow = bodyWindow(shownDetail?.body.length ?? 0, body - (shownDetail?.head.length ?? 0), detailOffset);

  /** Detail keys that scroll its body, like less and htop's lists; false for any other key. */
  const scrollDetail = (input: string, key: Key): boolean => {
    const { total, shown } = detailWindow;
    const room = body - (shownDetail?.head.length ?? 0);
    const page = Math.max(1, shown - 1);
    let move: (at: number) => number;
    if (key.upArrow || input === 'k') move = (at) => at - 1;
    else if (key.downArrow || input === 'j') move = (at) => at + 1;
    else if (key.pageUp) move = (at) => at - page;
    else if (key.pageDown || input === ' ') move = (at) => at + page;
    else if (key.home) move = () => 0;
    else if (key.end) move = () => total;
    else return false;
    // From the previous offset, not this render's: keys can arrive faster than renders.
    setDetailOffset((previous) => bodyWindow(total, room, move(bodyWindow(total, room, previous).offset)).offset);
    return true;
  };

  const onKey = (input: string, key: Key): void => {
    if (key.ctrl && input === 'c') return quit();
    // Keys typed faster than a read (or pasted) arrive as one string: take them one by one.
    if ([...input].length > 1 && !key.ctrl && !key.meta) {
      for (const ch of input) onKey(ch === '\r' || ch === '\n' ? '' : ch, keyOf(key, ch));
      return;
    }
    if (confirm) {
      if (input === 'y' || input === 'Y') {
        const { ids, pid } = confirm;
        setConfirm(null);
        setStatus(`deregistering ${ids.join(', ')} of pid ${pid}…`);
        actions.deregister(ids).then(
          (result) => setStatus(result.message),
          (err: unknown) => setStatus(`dereg failed: ${err instanceof Error ? err.message : String(err)}`),
        );
      } else if (input === 'n' || input === 'N' || key.escape || key.return) {
        setConfirm(null);
        setStatus('not deregistered');
      }
      return;
    }
    const typed = draftRef.current;
    if (typed !== null) {
      if (key.return) {
        setFilter(typed);
        setDraft(null);
      } else if (key.escape) {
        setFilter('');
        setDraft(null);
      } else if (key.backspace || key.delete) {
        setDraft(typed.slice(0, -1));
      } else if (input && !key.ctrl && !key.meta && !key.upArrow && !key.downArrow && !key.tab) {
        setDraft(typed + input);
      }
      return;
    }
    if (input === 'q') return quit();
    setStatus(null);
    if (view !== 'main') {
      if (key.escape || key.backspace || key.delete || input === 'q') setView('main');
      else if (input === '?') setView('help');
      else if (view === 'detail' && scrollDetail(input, key)) return;
      else if (input === 'd' && view === 'detail' && detail) askDeregister(detail.pid);
      else if (input === 'p') (source.isPaused() ? source.resume() : source.pause());
      return;
    }
    if (input === 'e') {
      if (events === null) setStatus('no events pane here');
      else setShowEvents((shown) => !shown);
    } else if (input === 'g') {
      if (!actions.groups) setStatus('grouping is not available here');
      else setGroupBy((by) => GROUPINGS[(GROUPINGS.indexOf(by) + 1) % GROUPINGS.length]!);
    } else if (groupBy !== null && (key.return || input === 'd')) setStatus('press g until the process table is back to select a process');
    else if (input === 's') setSort((order) => nextSort(order));
    else if (input === 'I') setSort((order) => invertSort(order));
    else if (input === '/') setDraft('');
    else if (input === 'p') (source.isPaused() ? source.resume() : source.pause());
    else if (input === '?') setView('help');
    else if (input === 'd') askDeregister(selectedRow?.pid ?? null);
    else if (key.return) openDetail();
    else if (key.upArrow || input === 'k') select(selected - 1);
    else if (key.downArrow || input === 'j') select(selected + 1);
    else if (key.pageUp) select(selected - pageRows);
    else if (key.pageDown) select(selected + pageRows);
    else if (key.home) select(0);
    else if (key.end) select(rows.length - 1);
    else if ((key.escape || key.backspace || key.delete) && filter !== '') setFilter('');
  };

  useInput(onKey, { isActive: isRawModeSupported === true });

  if (!snapshot) return <Text>collecting…</Text>;

  let footer: { text: string; color?: string };
  if (confirm) {
    footer = { text: `Deregister held registration${confirm.ids.length > 1 ? 's' : ''} ${confirm.ids.join(', ')} of pid ${confirm.pid}? (y/n)`, color: 'yellow' };
  } else if (draft !== null) {
    footer = { text: `filter (comm, user or pid; Enter apply, Esc clear): ${draft}_` };
  } else if (status || grouped.error) {
    footer = { text: (status ?? grouped.error)!, color: 'cyan' };
  } else if (view === 'detail') {
    footer = detail?.state === 'exited'
      ? { text: 'Esc back  q quit  ? help' }
      : { text: 'Esc back  ↑↓ PgUp PgDn Home End scroll  d dereg  p pause  q quit  ? help' };
  } else if (view === 'help') {
    footer = { text: 'Esc back  q quit' };
  } else {
    const shown = filter ? `filter '${filter}' (Esc clears)  ` : '';
    footer = groupBy !== null
      ? { text: `${shown}by ${groupBy} (g: ${GROUPINGS[(GROUPINGS.indexOf(groupBy) + 1) % GROUPINGS.length] ?? 'processes'})  q quit  / filter  p pause  ? help` }
      : { text: `${shown}q quit  s sort  I invert  / filter  g group  e events  p pause  ↑↓ select  Enter detail  d dereg  ? help` };
  }

  let content;
  if (view === 'help') {
    content = <Help width={width} />;
  } else if (view === 'detail' && shownDetail) {
    content = <Detail lines={shownDetail} window={detailWindow} width={width} />;
  } else {
    const users = snapshot.report.users;
    const maxUsers = Math.max(0, Math.min(3, Math.floor(body / 4)));
    const userLines = maxUsers > 0 ? 1 + Math.max(1, Math.min(users.length, maxUsers)) + (users.length > maxUsers ? 1 : 0) : 0;
    const eventsLines = eventsPaneLines(events, showEvents, body);
    const tableHeight = Math.max(2, body - userLines - eventsLines);
    content = (
      <Box flexDirection="column">
        <Box flexDirection="column" height={tableHeight}>
          {groupBy !== null
            ? <GroupTable rows={grouped.rows} by={groupBy} width={width} height={tableHeight} />
            : <ProcessTable rows={rows} width={width} height={tableHeight} selected={selected} {...(draft ?? filter ? { emptyText: `No process matches '${draft ?? filter}'.` } : {})} />}
        </Box>
        {events !== null && eventsLines > 0 ? <Box flexDirection="column" height={eventsLines}><EventsPane events={events} width={width} height={eventsLines} /></Box> : null}
        <UserPanel users={users} width={width} maxRows={maxUsers} />
      </Box>
    );
  }

  return (
    <Box flexDirection="column" width={width}>
      <Header snapshot={snapshot} width={width} sort={sort} />
      <Box flexDirection="column" height={body}>{content}</Box>
      <Text wrap="truncate" {...(footer.color ? { color: footer.color } : {})}>{fit(footer.text, width)}</Text>
    </Box>
  );
}
