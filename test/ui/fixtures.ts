// Fixed StatReports and a fake sampler for dashboard rendering tests (no /proc involved).
import { vi } from 'vitest';
import type { ProcessRow, StatReport, UserRow } from '../../src/observe/stat.js';
import { markRows } from '../../src/ui/sampler.js';
import type { DashboardActions, DisplayRow, ProcessDetailView, Snapshot, SnapshotSource } from '../../src/ui/types.js';

export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

export function proc(pid: number, comm: string, pinnedMiB: number, lockedMiB = 0, extra: Partial<ProcessRow> = {}): ProcessRow {
  const limit = extra.memlockLimitBytes === undefined ? 64 * MiB : extra.memlockLimitBytes;
  const used = Math.max(pinnedMiB, lockedMiB) * MiB;
  return {
    pid, uid: 1000, user: 'alice', comm,
    pinnedBytes: pinnedMiB * MiB, lockedBytes: lockedMiB * MiB,
    memlockLimitBytes: limit, headroomBytes: limit === null ? null : limit - used,
    uringBytes: 0, dontforkBytes: 0, doubleCountedBytes: 0, flags: [],
    ...extra,
  };
}

export function report(processes: ProcessRow[], users?: UserRow[]): StatReport {
  const pinned = processes.reduce((s, p) => s + p.pinnedBytes, 0);
  const locked = processes.reduce((s, p) => s + p.lockedBytes, 0);
  return {
    processes,
    users: users ?? [{ uid: 1000, user: 'alice', processes: processes.length, pinnedBytes: pinned, lockedBytes: locked, uringBytes: 0 }],
    system: {
      pinnedBytes: pinned, lockedBytes: locked, mlockedBytes: locked, unevictableBytes: locked + MiB,
      memTotalBytes: 16 * GiB, pinnedPercent: (100 * pinned) / (16 * GiB), processesHolding: processes.length,
    },
    scannedProcesses: 2000,
    unreadableProcesses: 0,
    vanishedProcesses: 0,
    missingPids: [],
    usersCover: 'all-processes',
    scannedAt: Date.UTC(2025, 0, 1, 12, 0, 0),
  };
}

/** A sampler stand-in: push reports by hand; marks and history as the real one computes them. */
export class FakeSource implements SnapshotSource {
  private listeners = new Set<() => void>();
  private snapshot: Snapshot | null = null;
  private paused = false;
  history: number[] = [];
  heldIdsByPid: Record<number, string[]> = {};

  push(r: StatReport): void {
    this.history.push(r.system.pinnedBytes);
    const rows: DisplayRow[] = markRows(this.snapshot?.rows ?? null, r.processes);
    this.snapshot = {
      seq: (this.snapshot?.seq ?? 0) + 1,
      report: r,
      rows,
      history: [...this.history],
      devices: { available: true, reason: null, mrsByDevice: { rxe0: 2 } },
      held: { available: true, reason: null, count: Object.values(this.heldIdsByPid).flat().length, idsByPid: this.heldIdsByPid },
      paused: this.paused,
      intervalMs: 1000,
      error: null,
    };
    for (const l of [...this.listeners]) l();
  }

  subscribe = (listener: () => void) => {
    this.listeners.add(listener);
    return () => { this.listeners.delete(listener); };
  };

  getSnapshot = () => this.snapshot;
  isPaused = () => this.paused;
  pause = () => {
    this.paused = true;
    if (this.snapshot) this.snapshot = { ...this.snapshot, paused: true };
    for (const l of [...this.listeners]) l();
  };

  resume = () => {
    this.paused = false;
    if (this.snapshot) this.snapshot = { ...this.snapshot, paused: false };
    for (const l of [...this.listeners]) l();
  };
}

export function fakeActions(overrides: Partial<DashboardActions> = {}): DashboardActions & { deregistered: string[][] } {
  const deregistered: string[][] = [];
  return {
    deregistered,
    loadDetail: (pid: number): ProcessDetailView => ({
      state: 'live', pid, comm: 'trainer', user: 'alice', readAt: Date.UTC(2025, 0, 1, 12, 0, 0), pinnedBytes: 8 * MiB, lockedBytes: 0,
      memlock: { softBytes: 64 * MiB, hardBytes: 128 * MiB },
      registrations: [{
        source: 'io_uring', pid, comm: 'trainer', addr: 0x7f0000000000n, length: 8 * MiB, pages: 2048, device: null, lkey: null, rkey: null,
        handle: 'fd5:buf0', forkProtection: 'dontfork', overlap: false, doubleCountedBytes: 0, evidence: null,
      }],
      lockedRanges: [{ start: 0x7f1000000000n, end: 0x7f1000100000n, what: '[anon]' }],
      dontforkRanges: [{ start: 0x7f0000000000n, end: 0x7f0000800000n, what: '[anon]' }],
      notes: [],
    }),
    deregister: async (ids: string[]) => {
      deregistered.push(ids);
      return { ok: true, message: `deregistered ${ids.join(', ')}` };
    },
    ...overrides,
  };
}

/** The app's frame once `test` holds for it (ink renders asynchronously), after effects have settled. */
export async function frameMatching(app: { lastFrame(): string | undefined }, test: (frame: string) => boolean): Promise<string> {
  await vi.waitFor(() => {
    if (!test(app.lastFrame() ?? '')) throw new Error(`frame not yet as expected:\n${app.lastFrame()}`);
  }, { timeout: 10_000, interval: 10 });
  // Let effects (the input handler) settle before the test types the next key.
  await new Promise((r) => setTimeout(r, 30));
  return app.lastFrame()!;
}
