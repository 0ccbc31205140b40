// Does this kernel copy pinned anonymous pages for the child at fork (so a parent write after fork
// does not disconnect the parent from a device's pages)? One answer for every command: the
// kernel's own (RDMA netlink, `rdma sys show`) when it gives one, else what the release implies.

import { release } from 'node:os';
import { copyOnForkByVersion, parseCopyOnFork, runRdmaJson, type RdmaToolResult } from '../rdma/iproute.js';

export interface CopyOnForkAnswer {
  kernel: string;
  copyOnFork: boolean;
  /** Where the answer came from: 'rdma sys show', or the kernel version (and why netlink did not answer). */
  copyOnForkSource: string;
}

/** Pure: the kernel's netlink answer when `sysShow` carries one, otherwise the release's implication. */
export function decideCopyOnFork(kernel: string, sysShow: RdmaToolResult): CopyOnForkAnswer {
  const reported = sysShow.ok ? parseCopyOnFork(sysShow.data) : null;
  if (reported !== null) return { kernel, copyOnFork: reported, copyOnForkSource: 'rdma sys show' };
  return {
    kernel,
    copyOnFork: copyOnForkByVersion(kernel),
    copyOnForkSource: `the kernel version (Linux ≥ 5.9 copies)${sysShow.ok ? '' : `; ${sysShow.reason}`}`,
  };
}

/** Ask the running kernel (one `rdma sys show`). */
export function readCopyOnFork(): CopyOnForkAnswer {
  return decideCopyOnFork(release(), runRdmaJson(['sys', 'show'], { plainPairs: true }));
}
