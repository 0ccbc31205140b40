// The migrate scenario: "mlock is not pinning". In 2005 the answer to "can an mlocked page move?" was
// "only on memory hot-unplug"; today mlocked pages migrate (NUMA, compaction) and only long-term pinned
// pages stay. The row registers a buffer (or only maps it: plain), fills it, asks move_pages(2) where
// each page is, asks it to move every page to another memory node, then asks again where each page is
// and reads the PFNs; finally the process writes and the device reads, the device writes and the
// process reads, through the registration's own data path — does the device still reach the pages the
// process sees? Page status and node come from move_pages itself, PFNs from /proc/self/pagemap.

import { MPOL_MF_MOVE, mbindLocal, movePages, view, type Pointer } from '../../ffi/libc.js';
import { SyscallError, errnoName } from '../../lib/errno.js';
import type { Backing } from '../../engine/types.js';
import { pageSize } from '../../proc/pagemap.js';
import { readSysctlInt } from '../../proc/sysctl.js';
import { checkpoint } from '../../fork/interrupt.js';
import { PATTERN, readPfns, type EvidenceTarget } from '../../fork/observe.js';
import { withRange } from '../engine.js';
import { observe } from '../evidence.js';
import { emptyRow } from '../setup.js';
import { stepOf } from '../summary.js';
import type { Observation, ScenarioBackend, ScenarioCase, ScenarioDefinition, ScenarioEnvironment, ScenarioRow, ScenarioRunContext, ScenarioVerdict } from '../types.js';

export const MIGRATE_VERDICTS: readonly ScenarioVerdict[] = [
  {
    id: 'moved', words: 'moved (every page changed node and PFN; the device, if any, followed)', expectable: true,
    meaning: 'move_pages moved every page to the other node (new PFNs); a device path, if there is one, reads and writes the pages the process sees',
  },
  {
    id: 'pinned-stayed', words: 'pinned pages stayed (move_pages could not move them)', expectable: true,
    meaning: 'the registration pins the pages: every page is still on its node, at its PFN, and the device still shares it with the process',
  },
  {
    id: 'stayed', words: 'stayed although nothing pins them', expectable: true,
    meaning: 'nothing pins the pages but the kernel moved none of them (the per-page status says why, e.g. -ENOMEM: the target node is full)',
  },
  {
    id: 'partial', words: 'some pages moved, some stayed', expectable: true,
    meaning: 'move_pages moved part of the buffer; the per-page status says why the rest stayed',
  },
  {
    id: 'device-disconnected', words: 'device disconnected (pages moved under a device that kept the old ones)', expectable: true,
    meaning: 'after the move the device and the process no longer see each other\'s writes: the device holds pages the process left',
  },
  {
    id: 'device-lost', words: 'device lost access after the move', expectable: true,
    meaning: 'the device\'s read or write through its data path failed after the pages moved (an on-demand MR that could not fault them back in)',
  },
];

export type MigrateVerdictId = 'moved' | 'pinned-stayed' | 'stayed' | 'partial' | 'device-disconnected' | 'device-lost';

export const MIGRATE_BACKINGS: readonly Backing[] = ['anon', 'thp', 'memfd'];
export const MIGRATE_BACKENDS: readonly ScenarioBackend[] = ['plain', 'mlock', 'uring', 'verbs'];

// Said to users of the installed package too: what the machine lacks and where to get it (the lab
// ships only in the source repository).
export const ONE_NUMA_NODE = 'one NUMA node with memory, migrate needs two: run it on a NUMA machine or a VM given two NUMA nodes ' +
  '(the QEMU lab in the rdmactl source repository boots one: npm run lab -- --numa 2)';

/** What the verdict is decided from; every field comes from this run's readings. */
export interface MigrateEvidence {
  pinned: boolean;
  /** A device path exists (uring, verbs). */
  hasDevice: boolean;
  /** Pages that had to move (not already on the target node). */
  pages: number;
  /** Of those, pages now on the target node (with a new PFN where PFNs are visible). */
  moved: number;
  /** After the process wrote, the device read that write (null: no device, or its read failed). */
  deviceReadsProcessWrite: boolean | null;
  /** After the device wrote, the process read that write (null: no device, or its write failed). */
  processSeesDeviceWrite: boolean | null;
  /** The device path's failure after the move, if it failed. */
  deviceError: string | null;
}

/** The verdict, from the evidence alone. */
export function migrateVerdict(e: MigrateEvidence): MigrateVerdictId {
  if (e.hasDevice && e.deviceError !== null) return 'device-lost';
  if (e.hasDevice && (e.deviceReadsProcessWrite === false || e.processSeesDeviceWrite === false)) return 'device-disconnected';
  if (e.moved === e.pages) return 'moved';
  if (e.moved === 0) return e.pinned ? 'pinned-stayed' : 'stayed';
  return 'partial';
}

/** "500× node 1, 12× -EBUSY": how many pages have each status, nodes first. */
export function summarizeStatus(status: readonly number[]): string {
  const counts = new Map<number, number>();
  for (const s of status) counts.set(s, (counts.get(s) ?? 0) + 1);
  return [...counts.entries()]
    .sort(([a], [b]) => (a >= 0) === (b >= 0) ? Math.abs(a) - Math.abs(b) : b - a)
    .map(([s, n]) => `${n}× ${s >= 0 ? `node ${s}` : `-${errnoName(-s)}`}`)
    .join(', ');
}

/** The first page's node now (null when move_pages reports an errno for it). */
function firstNode(pages: readonly Pointer[]): number | null {
  const status = movePages(0, pages.slice(0, 1), null).status[0]!;
  return status >= 0 ? status : null;
}

/** The node most pages are on (ties: the lowest); null when no page has a node. */
function mostCommonNode(status: readonly number[]): number | null {
  const counts = new Map<number, number>();
  for (const s of status) if (s >= 0) counts.set(s, (counts.get(s) ?? 0) + 1);
  let best: number | null = null;
  for (const [node, n] of counts) if (best === null || n > counts.get(best)! || (n === counts.get(best)! && node < best)) best = node;
  return best;
}

function notApplicable(c: ScenarioCase, env: ScenarioEnvironment): string | null {
  if (!MIGRATE_BACKINGS.includes(c.backing)) return `migrate moves anonymous and shmem pages: backing ${c.backing} is not one of ${MIGRATE_BACKINGS.join(', ')}`;
  if (c.variant !== null) return `migrate has no variants (asked for ${c.variant})`;
  if (env.memoryNodes.length < 2) return ONE_NUMA_NODE;
  if (c.backend === 'verbs' && env.verbsUnavailable) return env.verbsUnavailable;
  return null;
}

/** Where a step looked, for tests that make their own reading at the same moment. */
export interface MigrateProbeTarget {
  pid: number;
  addr: Pointer;
  length: number;
  /** The node move_pages was asked to move the pages to (null before it is chosen). */
  targetNode: number | null;
}

/** Called after each step's readings, before the next step starts. */
export type MigrateProbe = (step: string, where: MigrateProbeTarget) => void;

/**
 * Run one migrate row. Everything it creates is released before it returns or throws.
 * `probe` (tests) is called after each step with where the row looked.
 */
export async function runMigrate(c: ScenarioCase, ctx: ScenarioRunContext, probe?: MigrateProbe): Promise<ScenarioRow> {
  const inapplicable = notApplicable(c, ctx.env);
  if (inapplicable) return emptyRow('migrate', c, 'skipped', inapplicable, ctx.verbsAccess);
  return withRange('migrate', c, ctx, {}, async (range, row) => {
    const buffer = range;
    const device = range.device;
    const page = pageSize();
    const len = buffer.length;
    const target: EvidenceTarget = range.target();
    const pages: Pointer[] = [];
    for (let offset = 0; offset < len; offset += page) pages.push(buffer.addr + BigInt(offset));
    const where = (targetNode: number | null): MigrateProbeTarget => ({ pid: process.pid, addr: buffer.addr, length: len, targetNode });
    const record = (o: Observation): void => { row.observations.push(o); };

    // 1. Keep automatic NUMA balancing off the buffer: it marks PTEs PROT_NONE to sample accesses, and
    //    move_pages then reports such present pages as -ENOENT (seen on 6.1; THP: -EFAULT), while the next
    //    touch migrates them to the toucher's node by itself. An explicit MPOL_LOCAL policy (no
    //    migrate-on-fault) makes the balancer skip the range. Then fill, then ask where every page is.
    const balancing = readSysctlInt('kernel.numa_balancing');
    let policy = `kernel.numa_balancing ${balancing ?? 'absent'}, buffer bound MPOL_LOCAL`;
    try {
      mbindLocal(buffer.addr, len);
    } catch (err) {
      policy = `kernel.numa_balancing ${balancing ?? 'absent'}, mbind MPOL_LOCAL failed (${err instanceof Error ? err.message : String(err)}): balancing may move or hide pages on its own`;
    }
    const mine = view(buffer.addr, len);
    mine.fill(PATTERN.preFork);
    let before: number[];
    try {
      before = movePages(0, pages, null).status;
    } catch (err) {
      if (err instanceof SyscallError && err.errnoName === 'ENOSYS') {
        row.verdict = 'skipped';
        row.reason = 'this kernel has no move_pages (built without CONFIG_NUMA or CONFIG_MIGRATION)';
        return;
      }
      throw err;
    }
    const pfnsBefore = readPfns('self', buffer.addr, len, page);
    const from = mostCommonNode(before);
    const targetNode = ctx.env.memoryNodes.find((n) => n !== from);
    if (from === null || targetNode === undefined) throw new Error(`move_pages found no page on a node (${summarizeStatus(before)})`);
    record(observe('registered', target, { node: before[0]! >= 0 ? before[0]! : null, note: `${summarizeStatus(before)}; PFNs ${pfnsBefore?.visible ? 'visible' : 'hidden'}; ${policy}` }));
    probe?.('registered', where(targetNode));
    await checkpoint(ctx.signal, ctx.stepDelayMs);

    // 2. Ask the kernel to move every page to the other node, then ask again where each page is:
    //    the status of the move itself may name the target for a page whose migration then failed.
    const asked = movePages(0, pages, pages.map(() => targetNode), MPOL_MF_MOVE);
    const after = movePages(0, pages, null).status;
    const pfnsAfter = readPfns('self', buffer.addr, len, page);
    const pfnsVisible = Boolean(pfnsBefore?.visible && pfnsAfter?.visible);
    let mustMove = 0;
    let moved = 0;
    let pfnChanged = 0;
    for (let i = 0; i < pages.length; i++) {
      const newPfn = pfnsVisible && pfnsBefore!.pfns[i] !== pfnsAfter!.pfns[i];
      if (newPfn) pfnChanged++;
      if (before[i] === targetNode) continue;
      mustMove++;
      if (after[i] === targetNode && (!pfnsVisible || newPfn)) moved++;
    }
    const moveNote = `move_pages to node ${targetNode}: status ${summarizeStatus(asked.status)}, ${asked.notMoved} not moved; now ${summarizeStatus(after)}; ` +
      (pfnsVisible ? `${pfnChanged} of ${pages.length} PFNs changed` : 'PFNs hidden');
    record(observe('move_pages', target, { node: after[0]! >= 0 ? after[0]! : null, note: moveNote }));
    probe?.('move_pages', where(targetNode));
    await checkpoint(ctx.signal, ctx.stepDelayMs);

    // 3. The process writes; the device reads. 4. The device writes; the process reads.
    mine.fill(PATTERN.parent);
    const wrote = observe('process-write', target, { node: firstNode(pages) });
    record(wrote);
    probe?.('process-write', where(targetNode));
    await checkpoint(ctx.signal, ctx.stepDelayMs);
    let deviceError: string | null = wrote.deviceReads === 'failed' ? wrote.note : null;
    let processSeesDeviceWrite: boolean | null = null;
    if (device && deviceError === null) {
      try {
        device.deviceWrite(Buffer.alloc(len, PATTERN.device), 0);
      } catch (err) {
        deviceError = `device write failed: ${err instanceof Error ? err.message : String(err)}`;
      }
      const read = observe('device-write', target, { node: firstNode(pages), ...(deviceError ? { note: deviceError } : {}) });
      record(read);
      probe?.('device-write', where(targetNode));
      if (deviceError === null) processSeesDeviceWrite = read.processSees === 'device-write';
    }

    const evidence: MigrateEvidence = {
      pinned: row.pinned,
      hasDevice: device !== null,
      pages: mustMove,
      moved,
      deviceReadsProcessWrite: device && wrote.deviceReads !== 'failed' ? wrote.deviceReads === 'parent-write' : null,
      processSeesDeviceWrite,
      deviceError,
    };
    row.verdict = migrateVerdict(evidence);
    row.reason = explain(evidence, from, targetNode, asked.status, asked.notMoved);
  });
}

function explain(e: MigrateEvidence, from: number, to: number, asked: readonly number[], notMoved: number): string {
  const pages = `${e.moved} of ${e.pages} pages moved from node ${from} to node ${to}`;
  const why = e.moved < e.pages ? ` (move_pages status ${summarizeStatus(asked)}, ${notMoved} not moved)` : '';
  let dev = '';
  if (e.deviceError !== null) dev = `; ${e.deviceError}`;
  else if (e.hasDevice) {
    dev = `; the device ${e.deviceReadsProcessWrite ? 'read' : 'did NOT read'} the process's write and the process ${e.processSeesDeviceWrite ? 'read' : 'did NOT read'} the device's`;
  }
  return `${pages}${why}${dev}`;
}

/** "node 0→1; 4 of 4 PFNs changed; dev⇄proc ok": where the first page went, PFNs, the device check. */
export function migrateEvidence(row: ScenarioRow): string {
  const registered = stepOf(row, 'registered');
  const moved = stepOf(row, 'move_pages');
  if (!registered || !moved) return '';
  const node = (n: number | null): string => (n === null ? '?' : String(n));
  const parts = [`node ${node(registered.node)}→${node(moved.node)}`];
  const pfns = /(\d+ of \d+) PFNs changed/.exec(moved.note ?? '');
  parts.push(pfns ? `${pfns[1]} PFNs changed` : 'PFNs hidden');
  const wrote = stepOf(row, 'process-write');
  const devWrote = stepOf(row, 'device-write');
  if (wrote?.deviceReads != null) {
    const ok = wrote.deviceReads === 'parent-write' && devWrote?.processSees === 'device-write';
    parts.push(wrote.deviceReads === 'failed' || devWrote?.deviceReads === 'failed' ? 'dev failed' : `dev⇄proc ${ok ? 'ok' : 'split'}`);
  }
  return parts.join('; ');
}

export const migrateScenario: ScenarioDefinition = {
  name: 'migrate',
  summary: 'move_pages to another NUMA node: mlocked and plain pages move (node and PFN change), pinned pages stay',
  description:
    'Registers a buffer (plain: only mapped; mlock; io_uring fixed buffer; verbs MR, on-demand where the device has ODP), ' +
    'fills it, asks move_pages(2) where each page is, then asks it to move every page to another NUMA node with memory ' +
    '(MPOL_MF_MOVE: no privilege needed for our own pages; the buffer is first bound MPOL_LOCAL so automatic NUMA balancing ' +
    'leaves it alone while the row runs). Then it asks move_pages again where each page is (the status of ' +
    'the move itself can name the target for a page that did not move) and reads the PFNs from /proc/self/pagemap. Last, the ' +
    'process writes and the device reads, and the device writes and the process reads, through the registration\'s data path ' +
    '(io_uring READ/WRITE_FIXED; RDMA WRITE/READ over a loopback QP): does the device still reach the pages the process sees? ' +
    'mlock is not pinning: mlocked pages move like plain ones; long-term pinned pages stay. An on-demand MR must follow the ' +
    'move. Needs two NUMA nodes with memory; on a one-node machine the rows are skipped (a VM given two NUMA nodes has them: in the rdmactl source repository, npm run lab -- --numa 2 boots one).',
  verdicts: MIGRATE_VERDICTS,
  backends: MIGRATE_BACKENDS,
  backings: MIGRATE_BACKINGS,
  variants: null,
  defaultCases: MIGRATE_BACKENDS.map((backend) => ({ backend, backing: 'anon' as const, variant: null })),
  notApplicable,
  run: (c, ctx) => runMigrate(c, ctx),
  evidence: migrateEvidence,
};
