// What the `top` dashboard shows besides the stat report, collected outside React: MRs per RDMA
// device, held registrations, one process in detail, and the work its keys ask for (groups, dereg).
// Held registrations (`reg --detach`, `dereg`) come through src/held/, which the caller loads with the
// dashboard only.

import { groupProcesses } from '../observe/cgroups.js';
import { collectRegistrations, readKernelMrs, type RegistrationSource } from '../observe/registrations.js';
import { heldSource } from '../observe/held.js';
import { scanProcesses } from '../proc/scan.js';
import { isDontFork, isLocked } from '../proc/smaps.js';
import { readRdmaDeviceNames } from '../proc/sysfs.js';
import type { DashboardActions, DashboardDeregOutcome, DeviceSummary, HeldSummary, ProcessDetailView } from './types.js';

/** The dashboard reads every process at least this often, even when the pin counters stood still. */
export const TOP_FULL_SCAN_EVERY_MS = 10_000;
/** A holder's smaps kept across the dashboard's full reads (while its maps is unchanged) is read again after this long. */
export const TOP_SMAPS_MAX_AGE_MS = 60_000;

/** MR count per device, counted straight from the kernel MR table. */
export function deviceSummary(): DeviceSummary {
  const names = readRdmaDeviceNames();
  if (names.length === 0) return { available: false, reason: 'no RDMA device', mrsByDevice: {} };
  const { mrs, status } = readKernelMrs();
  if (!status.available) return { available: false, reason: status.reason, mrsByDevice: {} };
  const mrsByDevice: Record<string, number> = Object.fromEntries(names.map((name) => [name, 0]));
  for (const mr of mrs) {
    const device = mr.device ?? '?';
    mrsByDevice[device] = (mrsByDevice[device] ?? 0) + 1;
  }
  return { available: true, reason: null, mrsByDevice };
}

/** What the dashboard uses of src/held/. */
export type HeldApi = Pick<typeof import('../held/index.js'), 'listHeld' | 'deregister' | 'findHolderProcesses' | 'HOLDER_PROCESS_NAME'>;

/** `holderPids()`: holders among the processes of the latest refresh (found by name, no extra /proc pass). */
export function heldSummary(api: HeldApi, holderPids: () => readonly number[]): () => HeldSummary {
  return () => {
    const live = api.listHeld({}, { holders: api.findHolderProcesses(holderPids()) }).filter((entry) => entry.state === 'live');
    const idsByPid: Record<number, string[]> = {};
    for (const entry of live) if (entry.problem === null) (idsByPid[entry.pid] ??= []).push(entry.id);
    return { available: true, reason: null, count: live.length, idsByPid };
  };
}

/**
 * Everything the detail view shows about one process. A zombie counts as exited: its mm, its
 * registrations and the counters are gone, and what /proc still shows of it is no longer its own.
 */
export function processDetail(pid: number, euid: number): ProcessDetailView {
  const scan = scanProcesses({ pids: [pid] });
  const snapshot = scan.processes[0];
  if (!snapshot || snapshot.state === 'Z' || snapshot.state === 'X') {
    return {
      state: 'exited', pid, comm: snapshot?.name ?? null, user: snapshot?.user ?? null, lastSeenAt: null, zombie: snapshot !== undefined,
    };
  }
  const hasDevice = readRdmaDeviceNames().length > 0;
  const sources: RegistrationSource[] = ['io_uring', 'mlock', 'held', ...(hasDevice ? ['rdma' as const] : [])];
  const report = collectRegistrations({
    pids: [pid],
    scan,
    sources,
    held: (scanned) => heldSource({ cleanStale: false }, scanned),
    ...(hasDevice ? {} : { kernelMrs: () => ({ mrs: [], status: { available: false, reason: 'no RDMA device' } }) }),
  });
  const vmas = snapshot.detail?.vmas ?? [];
  const ranges = (keep: (vma: (typeof vmas)[number]) => boolean) =>
    vmas.filter(keep).map((vma) => ({ start: vma.start, end: vma.end, what: vma.pathname || '[anon]' }));
  const notes: string[] = [];
  if (snapshot.unreadable.length > 0) {
    notes.push(`not readable: ${snapshot.unreadable.join(', ')} (${euid === 0 ? 'the kernel refused even root' : 'run as root to see everything'})`);
  }
  if (hasDevice && !report.sources.rdma.available) notes.push(`kernel MR table: ${report.sources.rdma.reason}`);
  return {
    state: 'live',
    pid,
    comm: snapshot.name,
    user: snapshot.user,
    readAt: scan.scannedAt,
    pinnedBytes: snapshot.pinnedBytes,
    lockedBytes: snapshot.lockedBytes,
    memlock: snapshot.detail?.memlock ?? null,
    registrations: report.registrations,
    lockedRanges: ranges(isLocked),
    dontforkRanges: ranges(isDontFork),
    notes,
  };
}

export function dashboardActions(api: HeldApi, euid: number): DashboardActions {
  return {
    loadDetail: (pid) => processDetail(pid, euid),
    groups: (by, processes) => groupProcesses(processes, by),
    async deregister(ids: string[]): Promise<DashboardDeregOutcome> {
      try {
        const results = await api.deregister(ids);
        return { ok: results.every((r) => r.exitCode === 0), message: results.map((r) => r.message).join('; ') };
      } catch (err) {
        return { ok: false, message: `dereg ${ids.join(', ')} failed: ${err instanceof Error ? err.message : String(err)}` };
      }
    },
  };
}
