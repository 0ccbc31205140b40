// exit: a separate process holds the registration and is killed with SIGKILL — no user-space
// cleanup runs. When does the kernel give the pins (or locks) back, and what do the machine-wide
// counters show? The holder is `rdmactl reg … --json` run as a child: it registers through the same
// engine, prints its pid and address, and holds. We read its /proc/PID/status and pagemap, the
// machine's /proc/vmstat pin counters and /proc/meminfo, SIGKILL it, and poll until its /proc entry is
// gone and the counters have moved back by at least what it registered (other processes pin and lock
// too: the counters are compared by a delta, never for equality). verbs: its MR must also leave the
// kernel's MR table (`rdma res show mr`).

import { spawn, type ChildProcess } from 'node:child_process';
import { fstatSync, readdirSync, readlinkSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { formatAccessFlags } from '../../engine/verbs/access.js';
import type { Pointer } from '../../ffi/libc.js';
import { armForkWatchdog, disarmForkWatchdog, markerLink, type Marker } from '../../fork/watchdog.js';
import { checkpoint } from '../../fork/interrupt.js';
import { VERBS_FORK_ACCESS } from '../../fork/runner.js';
import { RDMACTL_BIN } from '../../lib/launcher.js';
import { RdmactlError } from '../../lib/errors.js';
import { readMeminfo } from '../../proc/meminfo.js';
import { procPath } from '../../proc/procfs.js';
import { readStat } from '../../proc/stat.js';
import { parseKernelMrs, runRdmaJson } from '../../rdma/iproute.js';
import { bareObservation, observe, pinsOutstanding, pollUntil } from '../evidence.js';
import { emptyRow, setupSkipReason } from '../setup.js';
import { compactBytes, stepOf } from '../summary.js';
import type { ScenarioCase, ScenarioDefinition, ScenarioEnvironment, ScenarioRow, ScenarioRunContext, ScenarioVerdict } from '../types.js';
import { meminfoLine, pagesOf } from './common.js';

const NAME = 'exit';

/** How long the killed holder's pins (or locks) and /proc entry may take to go. */
export const EXIT_RELEASE_TIMEOUT_MS = 5_000;
/** The holder releases by itself after this even if nobody kills it (it is killed long before). */
const HOLDER_BOUND = '60s';
/** How long the holder may take to start and register. */
const HOLDER_START_TIMEOUT_MS = 30_000;

export const EXIT_VERDICTS = [
  {
    id: 'released-at-exit', words: 'released when the holder died', expectable: true,
    meaning: 'after SIGKILL of the holder (no user-space cleanup), its /proc entry went away and the machine\'s outstanding pins (mlock: meminfo Mlocked) fell by at least what it registered; verbs: its MR left the kernel\'s MR table',
  },
  {
    id: 'not-released', words: 'not released after the holder died', expectable: true,
    meaning: 'the holder was killed, but within the timeout its /proc entry stayed, the counters did not fall by what it registered, or its MR stayed in the kernel\'s MR table',
  },
  {
    id: 'unverified', words: 'cannot tell (no pin counters in /proc/vmstat)', expectable: true,
    meaning: 'the holder went away, but this kernel has no nr_foll_pin_* counters to show its pins coming back',
  },
] as const satisfies readonly ScenarioVerdict[];

/** A running `rdmactl reg` child that holds one registration. */
interface Holder {
  child: ChildProcess;
  pid: number;
  addr: Pointer;
  length: number;
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

function holderArgs(c: ScenarioCase, ctx: ScenarioRunContext): string[] {
  const args = [RDMACTL_BIN, 'reg', String(ctx.length), '--backend', c.backend, '--backing', c.backing, '--json', '--for', HOLDER_BOUND];
  if (c.backend === 'verbs') args.push(`--access=${formatAccessFlags(VERBS_FORK_ACCESS | ctx.verbsAccess).join(',')}`);
  return args;
}

/** Starts the holder and resolves once it has registered; rejects with its own one-line error if it exits first. */
function startHolder(c: ScenarioCase, ctx: ScenarioRunContext, markerFd: number | null): Promise<Holder> {
  const child = spawn(process.execPath, holderArgs(c, ctx), {
    stdio: ['ignore', 'pipe', 'pipe', markerFd ?? 'ignore'],
    env: { ...process.env, RDMACTL_DEBUG: '' },
  });
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
  return new Promise<Holder>((resolve, reject) => {
    let out = '';
    let err = '';
    let settled = false;
    const timer = setTimeout(() => fail(new RdmactlError(`the holder (rdmactl reg) did not register within ${HOLDER_START_TIMEOUT_MS / 1000} s`)), HOLDER_START_TIMEOUT_MS);
    function fail(error: Error): void {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(error);
    }
    child.stdout!.setEncoding('utf8');
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => { err += chunk; });
    child.stdout!.on('data', (chunk: string) => {
      if (settled) return;
      out += chunk;
      const nl = out.indexOf('\n');
      if (nl < 0) return;
      let record: Record<string, unknown>;
      try {
        record = JSON.parse(out.slice(0, nl)) as Record<string, unknown>;
      } catch {
        fail(new RdmactlError(`the holder printed something unexpected: ${out.slice(0, Math.min(nl, 200))}`));
        return;
      }
      if (record['event'] !== 'registered' || typeof record['addr'] !== 'string' || typeof record['length'] !== 'number' || record['pid'] !== child.pid) {
        fail(new RdmactlError(`the holder printed an unexpected record: ${out.slice(0, Math.min(nl, 200))}`));
        return;
      }
      settled = true;
      clearTimeout(timer);
      resolve({ child, pid: record['pid'] as number, addr: BigInt(record['addr']), length: record['length'], exited });
    });
    child.once('error', (error) => fail(new RdmactlError(`cannot start the holder: ${error.message}`)));
    child.once('close', (code, signal) => {
      const line = err.split('\n').find((l) => l.startsWith('rdmactl: '));
      fail(new RdmactlError(line ? line.slice('rdmactl: '.length) : `the holder exited (${signal ?? `status ${code}`}) before it registered`));
    });
  });
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
  // Where the machine-wide counters stand before the holder exists.
  const baseline = { pins: pinsOutstanding(), mlocked: readMeminfo().mlockedBytes };
  let holder: Holder | null = null;
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
    row.devicePath = `none: the holder (pid ${pid}) owns the registration; evidence is its /proc entry and the machine-wide counters`;
    const pages = pagesOf(length, ctx.env.pageSize);
    const mrsBefore = c.backend === 'verbs' ? kernelMrsOf(pid) : null;
    const mlockedAtRegistered = readMeminfo().mlockedBytes;
    const registered = observe('registered', { pid, addr, length }, {
      note: `holder pid ${pid}; ${meminfoLine()}${mrsBefore ? `; ${mrLine(mrsBefore)}` : ''}`,
    });
    row.observations.push(registered);
    const mlockedHeld = Math.max(mlockedAtRegistered, readMeminfo().mlockedBytes);
    await checkpoint(ctx.signal, ctx.stepDelayMs);

    const killedAt = performance.now();
    holder.child.kill('SIGKILL');
    row.observations.push(bareObservation('killed', { pinsOutstanding: pinsOutstanding(), note: `SIGKILL sent to the holder (pid ${pid})` }));

    // The release measure: pins outstanding (machine-wide) for pinning backends, meminfo Mlocked for
    // mlock. Other processes pin and lock at the same time, so a release counts when the counter fell
    // by at least what the holder registered from its highest reading while the holder held, or came
    // back to (or below) where it was before the holder started.
    const killedPins = row.observations[1]!.pinsOutstanding;
    const heldPins = registered.pinsOutstanding === null || killedPins === null ? null : Math.max(registered.pinsOutstanding, killedPins);
    const measurable = c.backend === 'mlock' || row.onDemand || (heldPins !== null && baseline.pins !== null);
    const releasedNow = (): { done: boolean; line: string; outstanding: number | null } => {
      const outstanding = pinsOutstanding();
      if (c.backend === 'mlock') {
        const mlocked = readMeminfo().mlockedBytes;
        const fell = mlockedHeld - mlocked;
        return {
          done: fell >= length || mlocked <= baseline.mlocked,
          line: `meminfo Mlocked down by ${Math.round(fell / 1024)} kB (the holder locked ${length / 1024} kB; ${Math.round((mlocked - baseline.mlocked) / 1024)} kB from where it was before the holder started)`,
          outstanding,
        };
      }
      if (row.onDemand) return { done: true, line: 'an on-demand MR pins nothing', outstanding };
      if (heldPins === null || baseline.pins === null || outstanding === null) return { done: false, line: 'no pin counters', outstanding };
      const fell = heldPins - outstanding;
      return {
        done: fell >= pages || outstanding <= baseline.pins,
        line: `pins outstanding down by ${fell} pages (the holder pinned ${pages}; ${outstanding - baseline.pins} from where they were before the holder started)`,
        outstanding,
      };
    };
    const gone = (): boolean => readStat(pid) === null;
    let goneMs: number | null = null;
    let releasedMs: number | null = null;
    await pollUntil(() => {
      const ms = Math.round((performance.now() - killedAt) * 10) / 10;
      if (goneMs === null && gone()) {
        goneMs = ms;
        row.observations.push(bareObservation('exited', { pinsOutstanding: pinsOutstanding(), note: `the holder's /proc entry is gone ${ms} ms after SIGKILL` }));
      }
      if (releasedMs === null && measurable) {
        const now = releasedNow();
        if (now.done) {
          releasedMs = ms;
          row.observations.push(bareObservation('released', { pinsOutstanding: now.outstanding, note: `${now.line}, ${ms} ms after SIGKILL; ${meminfoLine()}` }));
        }
      }
      return goneMs !== null && (releasedMs !== null || !measurable);
    }, EXIT_RELEASE_TIMEOUT_MS, 2, killedAt);
    await holder.exited;

    let mrsAfter: ReturnType<typeof kernelMrsOf> | null = null;
    if (c.backend === 'verbs') {
      // The MR table is read through a tool (a process per reading): poll it slowly.
      await pollUntil(() => { mrsAfter = kernelMrsOf(pid); return !('count' in mrsAfter) || mrsAfter.count === 0; }, EXIT_RELEASE_TIMEOUT_MS, 50);
      row.observations.push(bareObservation('mr-table', { pinsOutstanding: pinsOutstanding(), note: mrLine(mrsAfter!) }));
    }

    const last = releasedNow();
    if (goneMs === null) {
      row.verdict = 'not-released';
      row.reason = `the holder (pid ${pid}) still has a /proc entry ${EXIT_RELEASE_TIMEOUT_MS} ms after SIGKILL`;
    } else if (!measurable) {
      row.verdict = 'unverified';
      row.reason = `the holder's /proc entry went ${goneMs} ms after SIGKILL; this kernel has no nr_foll_pin_* counters in /proc/vmstat`;
    } else if (releasedMs === null) {
      row.verdict = 'not-released';
      row.reason = `${last.line} ${EXIT_RELEASE_TIMEOUT_MS} ms after SIGKILL (other processes pin and lock too: a concurrent registration can hide a release)`;
    } else if (mrsAfter !== null && 'count' in mrsAfter && (mrsAfter as { count: number }).count > 0) {
      row.verdict = 'not-released';
      row.reason = `${mrLine(mrsAfter)} ${EXIT_RELEASE_TIMEOUT_MS} ms after SIGKILL`;
    } else {
      row.verdict = 'released-at-exit';
      row.reason = `pins or locks back ${releasedMs} ms after SIGKILL, /proc entry gone after ${goneMs} ms`;
    }
    return row;
  } finally {
    try {
      if (holder) {
        holder.child.kill('SIGKILL');
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
  description: `A separate process (rdmactl reg, started as a child) registers the memory and holds it. The
scenario reads its VmPin/VmLck and first PFN, the machine's outstanding pins (/proc/vmstat
nr_foll_pin_acquired − nr_foll_pin_released) and meminfo Mlocked/Unevictable, then kills it with
SIGKILL, so no user-space cleanup runs. It polls until the holder's /proc entry is gone and the
outstanding pins (mlock: meminfo Mlocked) have fallen by at least what the holder registered, and
records how long each took. The counters are machine-wide and move with other processes' activity,
and /proc/vmstat folds per-CPU deltas in only every vm.stat_interval (a reading can lag by a few
pages, a release take about a second to show), so they are compared by delta, never for equality: a
release counts when they fell by at least what the holder registered, or came back to where they
stood before the holder started. verbs: the holder's MR must also leave the
kernel's MR table (rdma res show mr).`,
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
