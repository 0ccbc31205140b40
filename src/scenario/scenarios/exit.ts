// exit: a separate process holds the registration and is killed with SIGKILL — no user-space
// cleanup runs. When does the kernel give the pins (or locks) back? The holder is an attached holder
// (held/starter.ts), a child: it registers through the same engine, answers with its registration
// (pid, address, length), and holds. Every reading the verdict rests on is the holder's own: its
// VmPin/VmLck and the PFNs of its range while it holds; after SIGKILL, its /proc entry, its address space (a /proc/PID/mem opened
// before the kill reads nothing once the address space is torn down, and mlock's locks live in it),
// and the physical pages it pinned (/proc/kpageflags: a page nobody maps that is still anonymous, or
// shmem still on an LRU list, is still held — by the pin; a freed page loses those flags). The
// machine-wide counters (/proc/vmstat pins, meminfo Mlocked) move with every other process: they
// are shown as context and decide nothing. verbs: its MR must also leave the kernel's MR table.

import { closeSync, fstatSync, readdirSync, readlinkSync, readSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import type { Pointer } from '../../ffi/libc.js';
import { armForkWatchdog, disarmForkWatchdog, markerLink, type Marker } from '../../fork/watchdog.js';
import { checkpoint } from '../../fork/interrupt.js';
import { VERBS_FORK_ACCESS } from '../../fork/runner.js';
import { attachedStartError, startAttachedHolder } from '../../held/starter.js';
import { RdmactlError } from '../../lib/errors.js';
import { heldUnmapped, mapped, readKpageflags } from '../../proc/kpageflags.js';
import { openProcMem } from '../../proc/mem.js';
import { readPagemap } from '../../proc/pagemap.js';
import { procPath } from '../../proc/procfs.js';
import { readStat } from '../../proc/stat.js';
import { parseKernelMrs, runRdmaJson } from '../../rdma/iproute.js';
import { bareObservation, observe, pinsOutstanding, pollUntil } from '../evidence.js';
import { setupSkipReason } from '../../fork/registeredRange.js';
import { emptyRow } from '../setup.js';
import { compactBytes, stepOf } from '../summary.js';
import type { ScenarioCase, ScenarioDefinition, ScenarioEnvironment, ScenarioRow, ScenarioRunContext, ScenarioVerdict } from '../types.js';
import { meminfoLine, pagesOf } from './common.js';

const NAME = 'exit';

/** Backings whose pinned pages are followed after the holder's exit (base pages, anonymous or shmem). */
const FOLLOWED_BACKINGS: ReadonlySet<string> = new Set(['anon', 'memfd']);
/** At most this many of the holder's pages are followed (evenly spread over the range). */
const FOLLOWED_PAGES_MAX = 1024;

/** How long the killed holder's pins (or locks) and /proc entry may take to go. */
export const EXIT_RELEASE_TIMEOUT_MS = 5_000;
/** How long the holder may take to start and register. */
const HOLDER_START_TIMEOUT_MS = 30_000;

export const EXIT_VERDICTS = [
  {
    id: 'released-at-exit', words: 'released when the holder died', expectable: true,
    meaning: 'after SIGKILL of the holder (no user-space cleanup), its /proc entry went away, and mlock: its address space (which holds the locks) was torn down; uring and verbs: every page it pinned was freed (/proc/kpageflags), or, where a page stays in a per-CPU LRU batch after the unpin, the settled pin counters fell by the holder\'s pages since the kill; verbs: its MR left the kernel\'s MR table',
  },
  {
    id: 'not-released', words: 'not released after the holder died', expectable: true,
    meaning: 'the holder was killed, but within the timeout its /proc entry or address space stayed, pages it pinned stayed held with nobody mapping them, or its MR stayed in the kernel\'s MR table',
  },
  {
    id: 'unverified', words: 'cannot tell (the pinned pages cannot be followed here)', expectable: true,
    meaning: 'the holder went away, but the pages it pinned cannot be followed: PFNs or /proc/kpageflags hidden (not root), or a backing of huge pages (thp, hugetlb); machine-wide counters are no evidence of one process\'s pins',
  },
] as const satisfies readonly ScenarioVerdict[];

/** The attached holder (a child of ours) that holds one registration, and where its buffer is. */
interface Holder {
  pid: number;
  addr: Pointer;
  length: number;
  kill(): void;
  exited: Promise<void>;
}

/** Our fd of the fork watchdog's marker: a holder that inherits it is killed by the watchdog if we die. */
function markerFdOf(marker: Marker): number | null {
  const dir = procPath('self', 'fd');
  for (const name of readdirSync(dir)) {
    try {
      if (readlinkSync(`${dir}/${name}`) === markerLink(marker.name) && fstatSync(Number(name)).ino === marker.inode) return Number(name);
    } catch {
      // closed while we looked (readdir's own fd)
    }
  }
  return null;
}

/**
 * Starts the holder and resolves once it has registered; rejects with its own error if it could not.
 * It holds until killed, or until our end of its stdin closes (we died).
 */
async function startHolder(c: ScenarioCase, ctx: ScenarioRunContext, markerFd: number | null): Promise<Holder> {
  const { backend } = c;
  if (backend === 'plain') throw new RdmactlError('plain registers nothing: there is no holder to start');
  const access = backend === 'verbs' ? VERBS_FORK_ACCESS | ctx.verbsAccess : null;
  const start = await startAttachedHolder({
    request: { options: { length: ctx.length, backend, backing: c.backing, count: 1, ...(access !== null ? { access } : {}) }, backendRequested: backend, holdMillis: null },
    env: { ...process.env, RDMACTL_DEBUG: '' },
    inheritFds: markerFd === null ? [] : [markerFd],
    answerWithinMs: HOLDER_START_TIMEOUT_MS,
  });
  if (!start.ok) throw attachedStartError(start);
  const { holder } = start;
  const { addr, length } = holder.registration;
  if (addr === null) {
    holder.kill();
    throw new RdmactlError('the holder registered no buffer');
  }
  return { pid: holder.pid, addr: BigInt(addr), length, kill: holder.kill, exited: holder.exited };
}

/** The holder's MRs in the kernel's MR table, or why the table cannot be read. */
function kernelMrsOf(pid: number): { count: number } | { unreadable: string } {
  const result = runRdmaJson(['-d', 'res', 'show', 'mr']);
  if (!result.ok) return { unreadable: result.reason };
  return { count: parseKernelMrs(result.data).filter((mr) => mr.pid === pid).length };
}

function mrLine(state: { count: number } | { unreadable: string }): string {
  return 'count' in state ? `rdma res show mr: ${state.count} MR(s) of the holder` : `rdma res show mr unreadable: ${state.unreadable}`;
}

/**
 * The holder's address space is gone: its /proc/PID/mem (opened while it held) reads nothing — the
 * kernel reads only while the address space still has users. Without that fd: its /proc entry is gone
 * (the address space is torn down before the process becomes a zombie).
 */
function addressSpaceGone(memFd: number | null, pid: number, addr: Pointer): boolean {
  if (memFd === null) return readStat(pid) === null;
  try {
    return readSync(memFd, Buffer.alloc(1), 0, 1, addr) === 0;
  } catch {
    return true; // EIO: nothing mapped there any more
  }
}

/** The PFNs of the holder's range to follow after its exit (at most FOLLOWED_PAGES_MAX), or why not. */
function followablePages(c: ScenarioCase, pid: number, addr: Pointer, pages: number): { pfns: number[] | null; why: string | null } {
  if (!FOLLOWED_BACKINGS.has(c.backing)) return { pfns: null, why: `the pages of a ${c.backing} mapping are not followed (only anon and memfd base pages)` };
  let range: ReturnType<typeof readPagemap>;
  try {
    range = readPagemap(pid, addr, pages);
  } catch {
    range = null;
  }
  const all = range?.entries.map((e) => e.pfn) ?? [];
  if (all.length < pages || all.some((pfn) => pfn === null)) return { pfns: null, why: 'the holder\'s PFNs are hidden (pagemap needs CAP_SYS_ADMIN) or not present' };
  const step = Math.max(1, Math.ceil(pages / FOLLOWED_PAGES_MAX));
  const pfns = (all as number[]).filter((_, i) => i % step === 0);
  const flags = readKpageflags(pfns);
  if (flags === null) return { pfns: null, why: '/proc/kpageflags is not readable here (root only)' };
  if (!flags.every(mapped)) return { pfns: null, why: 'some of the holder\'s pages do not read as mapped in /proc/kpageflags' };
  return { pfns, why: null };
}

function notApplicable(c: ScenarioCase, env: ScenarioEnvironment): string | null {
  if (c.backend === 'plain') return 'not applicable: plain registers nothing, so the holder\'s exit has nothing to release (the mlock and uring rows show what a registration holds until then)';
  if (c.backend === 'verbs' && env.verbsUnavailable) return env.verbsUnavailable;
  return null;
}

async function run(c: ScenarioCase, ctx: ScenarioRunContext): Promise<ScenarioRow> {
  const inapplicable = notApplicable(c, ctx.env);
  if (inapplicable) return emptyRow(NAME, c, 'skipped', inapplicable, ctx.verbsAccess);
  const row = emptyRow(NAME, c, 'error', null, ctx.verbsAccess);
  const marker = await armForkWatchdog();
  // Context only: where the machine-wide counters stand before the holder exists.
  const baselinePins = pinsOutstanding();
  let holder: Holder | null = null;
  let memFd: number | null = null;
  try {
    try {
      holder = await startHolder(c, ctx, markerFdOf(marker));
    } catch (err) {
      const why = setupSkipReason(err);
      if (why === null) throw err;
      row.verdict = 'skipped';
      row.reason = why;
      return row;
    }
    ctx.onChild?.(holder.pid);
    const { pid, addr, length } = holder;
    row.length = length;
    row.devicePath = `none: the holder (pid ${pid}) owns the registration; evidence is its /proc entry, its address space and the pages it registered`;
    const pages = pagesOf(length, ctx.env.pageSize);
    const mrsBefore = c.backend === 'verbs' ? kernelMrsOf(pid) : null;
    const registered = observe('registered', { pid, addr, length }, {
      note: `holder pid ${pid}; context (machine-wide): ${meminfoLine()}${mrsBefore ? `; ${mrLine(mrsBefore)}` : ''}`,
    });
    row.observations.push(registered);
    // The holder's own: its address space (read through a /proc/PID/mem opened now: it reads nothing
    // once the address space is torn down) and the physical pages of its range.
    memFd = openProcMem(pid);
    const followed = row.pinned ? followablePages(c, pid, addr, pages) : { pfns: null, why: null };
    await checkpoint(ctx.signal, ctx.stepDelayMs);

    // Settled pin counters just before the kill: the second witness of the unpin (below).
    const pinsAtKill = row.pinned && c.backend !== 'mlock' ? pinsOutstanding() : null;
    const killedAt = performance.now();
    holder.kill();
    row.observations.push(bareObservation('killed', { note: `SIGKILL sent to the holder (pid ${pid})` }));

    const context = (): string => {
      const pins = pinsOutstanding();
      const delta = pins !== null && baselinePins !== null ? `pins outstanding ${pins - baselinePins >= 0 ? '+' : ''}${pins - baselinePins} pages since before the holder started` : 'pins outstanding not readable settled';
      return `context (machine-wide, other processes move it too): ${delta}, ${meminfoLine()}`;
    };
    // What the verdict rests on: mlock's locks live in the holder's address space; pins live on the
    // pages (an io_uring ring is torn down by a kernel worker after the exit, so they go a little later).
    const measurable = c.backend === 'mlock' || row.onDemand || followed.pfns !== null;
    // After the unpin a page can stay allocated for a while without any pin: the exit's zap put it in a
    // per-CPU LRU batch (folio_mark_accessed), which holds a reference until that CPU drains, seconds
    // or more on an idle machine. /proc/kpageflags cannot tell that reference from a pin, so the pages
    // still reading "held" are also accepted as released once the settled pin counters have fallen by
    // at least the holder's pages since the kill (a ring kept alive elsewhere keeps both from moving).
    const unpinnedByCounters = (): boolean => {
      if (pinsAtKill === null) return false;
      const now = pinsOutstanding();
      return now !== null && pinsAtKill - now >= pages;
    };
    const stillHeld = (): number => {
      if (!followed.pfns) return 0;
      const flags = readKpageflags(followed.pfns);
      const held = flags === null ? followed.pfns.length : flags.filter(heldUnmapped).length;
      return held > 0 && unpinnedByCounters() ? 0 : held;
    };
    const releasedLine = (): string => {
      if (c.backend === 'mlock') return `the holder's address space is gone (its /proc/PID/mem reads nothing), and the ${length / 1024} kB it locked with it`;
      if (row.onDemand) return 'the holder\'s address space is gone; an on-demand MR pins nothing';
      return `all ${followed.pfns!.length} pages the holder pinned${followed.pfns!.length < pages ? ` (of ${pages}, evenly spread)` : ''} are free (/proc/kpageflags: none left unmapped and still held)`;
    };
    let goneMs: number | null = null;
    let spaceGoneMs: number | null = null;
    let releasedMs: number | null = null;
    await pollUntil(() => {
      const ms = Math.round((performance.now() - killedAt) * 10) / 10;
      if (spaceGoneMs === null && addressSpaceGone(memFd, pid, addr)) spaceGoneMs = ms;
      if (goneMs === null && readStat(pid) === null) {
        goneMs = ms;
        row.observations.push(bareObservation('exited', { note: `the holder's /proc entry is gone ${ms} ms after SIGKILL` }));
      }
      // Pages are judged once the /proc entry is gone: by then the holder maps nothing (its address space
      // went before it became a zombie), so a page mapped now is someone else's, i.e. it was freed.
      if (releasedMs === null && measurable && goneMs !== null && spaceGoneMs !== null && stillHeld() === 0) {
        releasedMs = ms;
        row.observations.push(bareObservation('released', { pinsOutstanding: pinsOutstanding(), note: `${releasedLine()}, ${ms} ms after SIGKILL; ${context()}` }));
      }
      return goneMs !== null && (releasedMs !== null || !measurable);
    }, EXIT_RELEASE_TIMEOUT_MS, 2, killedAt);
    await holder.exited;

    let mrsAfter: ReturnType<typeof kernelMrsOf> | null = null;
    if (c.backend === 'verbs') {
      // The MR table is read through a tool (a process per reading): poll it slowly.
      await pollUntil(() => { mrsAfter = kernelMrsOf(pid); return !('count' in mrsAfter) || mrsAfter.count === 0; }, EXIT_RELEASE_TIMEOUT_MS, 50);
      row.observations.push(bareObservation('mr-table', { note: mrLine(mrsAfter!) }));
    }

    if (goneMs === null) {
      row.verdict = 'not-released';
      row.reason = `the holder (pid ${pid}) still has a /proc entry ${EXIT_RELEASE_TIMEOUT_MS} ms after SIGKILL`;
    } else if (!measurable) {
      row.verdict = 'unverified';
      row.reason = `the holder's /proc entry went ${goneMs} ms after SIGKILL; ${followed.why ?? 'its pinned pages cannot be followed'}; ${context()}`;
    } else if (releasedMs === null) {
      row.verdict = 'not-released';
      row.reason = spaceGoneMs === null
        ? `the holder's address space is still there ${EXIT_RELEASE_TIMEOUT_MS} ms after SIGKILL`
        : `${stillHeld()} of ${followed.pfns!.length} pages the holder pinned are still held, mapped by nobody, ${EXIT_RELEASE_TIMEOUT_MS} ms after SIGKILL`;
    } else if (mrsAfter !== null && 'count' in mrsAfter && (mrsAfter as { count: number }).count > 0) {
      row.verdict = 'not-released';
      row.reason = `${mrLine(mrsAfter)} ${EXIT_RELEASE_TIMEOUT_MS} ms after SIGKILL`;
    } else {
      row.verdict = 'released-at-exit';
      row.reason = `${c.backend === 'mlock' ? 'locks' : 'pins'} back ${releasedMs} ms after SIGKILL, /proc entry gone after ${goneMs} ms`;
    }
    return row;
  } finally {
    if (memFd !== null) closeSync(memFd);
    try {
      if (holder) {
        holder.kill();
        await holder.exited;
      }
    } finally {
      await disarmForkWatchdog();
    }
  }
}

/** "VmPin 16K; released 12.3 ms, /proc gone 3.1 ms after SIGKILL": what the holder held and when it came back. */
export function exitEvidence(row: ScenarioRow): string {
  const registered = stepOf(row, 'registered');
  const msOf = (step: string): string | null => /([\d.]+) ms after SIGKILL/.exec(stepOf(row, step)?.note ?? '')?.[1] ?? null;
  const held = row.backend === 'mlock' ? `VmLck ${compactBytes(registered?.lockedBytes ?? null)}` : `VmPin ${compactBytes(registered?.pinnedBytes ?? null)}`;
  const released = msOf('released');
  const gone = msOf('exited');
  const times = [released !== null ? `freed ${released} ms` : 'not freed', gone !== null ? `gone ${gone} ms` : '/proc stayed'];
  return `${held}; ${times.join(', ')}`;
}

export const exitScenario: ScenarioDefinition = {
  name: NAME,
  summary: 'a process holding a registration is killed (SIGKILL): when does the kernel give the pins back',
  description: `A separate process, a child of rdmactl, registers the memory as rdmactl reg does and holds it. The
scenario reads its VmPin/VmLck and the PFNs of its range, then kills it with SIGKILL, so no
user-space cleanup runs. It polls until the holder's /proc entry is gone and what it held is back,
and records how long each took: mlock — its address space is torn down (its /proc/PID/mem, opened
before the kill, reads nothing): the locks live there; uring and verbs — every page it pinned is
freed (/proc/kpageflags: a page nobody maps that is still anonymous, or shmem on an LRU list, is
still held by the pin; an io_uring ring is torn down by a kernel worker just after the exit).
Following pages needs root and base pages (anon, memfd); elsewhere a pinned row is unverified.
The machine's outstanding pins (/proc/vmstat) and meminfo Mlocked move with every other process:
they are shown as context and decide nothing. verbs: the holder's MR must also leave the kernel's
MR table (rdma res show mr).`,
  verdicts: EXIT_VERDICTS,
  backends: ['plain', 'mlock', 'uring', 'verbs'],
  backings: ['anon', 'thp', 'hugetlb', 'memfd'],
  variants: null,
  defaultCases: [
    { backend: 'mlock', backing: 'anon', variant: null },
    { backend: 'uring', backing: 'anon', variant: null },
    { backend: 'verbs', backing: 'anon', variant: null },
  ],
  notApplicable,
  run,
  evidence: exitEvidence,
};
