// Does this kernel copy pinned anonymous pages for the child at fork (so a parent write after fork
// does not disconnect the parent from a device's pages)? One answer for every command: the
// kernel's own (RDMA netlink, `rdma sys show`) when it gives one. A kernel whose netlink answers
// without the attribute (it came in 5.12) gets "unknown": its release alone does not say what it does
// (5.10 and 5.11 may or may not carry the copy, by backport); `rdmactl fork` shows it from evidence.
// Only without any RDMA netlink answer does the release stand in.

import { release } from 'node:os';
import { readCopyOnForkAttribute } from '../rdma/nldev.js';
import { copyOnForkByVersion, parseCopyOnFork, readRdmaJson, runRdmaJson, type ReadRdmaOptions, type RdmaToolResult } from '../rdma/iproute.js';

export interface CopyOnForkAnswer {
  kernel: string;
  /** null: the kernel's RDMA netlink answers but has no copy-on-fork attribute. */
  copyOnFork: boolean | null;
  /** Where the answer came from: 'rdma sys show', why it is unknown, or the kernel version (and why netlink did not answer). */
  copyOnForkSource: string;
}

/** What every command says when `rdma sys show` answers without a copy-on-fork attribute. */
export const COPY_ON_FORK_UNKNOWN = 'unknown (kernel predates the attribute)';

/**
 * Pure: the kernel's netlink answer when `sysShow` carries one, otherwise the release's implication.
 * `attribute` is our own SYS_GET reading (rdma/nldev.ts), null when it could not be made: 'absent'
 * overrides the "off" iproute2 prints for a reply without the attribute.
 */
export function decideCopyOnFork(kernel: string, sysShow: RdmaToolResult, attribute: boolean | 'absent' | null = null): CopyOnForkAnswer {
  const reported = sysShow.ok ? parseCopyOnFork(sysShow.data) : null;
  if (reported !== null && attribute !== 'absent') return { kernel, copyOnFork: reported, copyOnForkSource: 'rdma sys show' };
  if (sysShow.ok || attribute === 'absent') return { kernel, copyOnFork: null, copyOnForkSource: COPY_ON_FORK_UNKNOWN };
  return {
    kernel,
    copyOnFork: copyOnForkByVersion(kernel),
    copyOnForkSource: `the kernel version (Linux ≥ 5.9 copies)${sysShow.ok ? '' : `; ${sysShow.reason}`}`,
  };
}

/** Ask the running kernel (one `rdma sys show`). */
export function readCopyOnFork(): CopyOnForkAnswer {
  return decideCopyOnFork(release(), runRdmaJson(['sys', 'show'], { plainPairs: true }), readCopyOnForkAttribute());
}

/** readCopyOnFork without blocking the event loop (the exporter): rdma is killed at the timeout. */
export async function readCopyOnForkAsync(options: Omit<ReadRdmaOptions, 'plainPairs'>): Promise<CopyOnForkAnswer> {
  // The netlink round trip is answered inside send(): it does not block the event loop.
  return decideCopyOnFork(release(), await readRdmaJson(['sys', 'show'], { ...options, plainPairs: true }), readCopyOnForkAttribute());
}
