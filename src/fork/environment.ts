// Facts about this machine that every fork scenario shares, found once per run: whether verbs rows
// can run, libibverbs' fork status, whether PFNs are visible. (The kernel's copy-on-fork answer
// comes from observe/copyOnFork.ts, shared with `devices`.)

import { addressOf } from '../ffi/libc.js';
import { pageSize } from '../proc/pagemap.js';
import type { ScenarioSpec } from './matrix.js';
import { readPfns } from './observe.js';

/** Facts shared by every row, found once per run. */
export interface RunEnvironment {
  /** null when verbs rows can run, else why not. */
  verbsUnavailable: string | null;
}

export async function probeEnvironment(specs: readonly ScenarioSpec[]): Promise<RunEnvironment> {
  let verbsUnavailable: string | null = null;
  if (specs.some((s) => s.backend === 'verbs')) {
    try {
      const verbs = await import('../engine/verbs/index.js');
      if (verbs.listDeviceNames().length === 0) verbsUnavailable = 'no RDMA device on this host';
    } catch (err) {
      verbsUnavailable = `libibverbs not usable: ${err instanceof Error ? err.message : String(err)}`;
    }
  }
  return { verbsUnavailable };
}

/** ibv_is_fork_initialized() when libibverbs loads, else null. */
export async function verbsForkStatus(): Promise<string | null> {
  try {
    const verbs = await import('../engine/verbs/index.js');
    return verbs.forkStatus();
  } catch {
    return null;
  }
}

/** Whether this process sees PFNs in /proc/self/pagemap (CAP_SYS_ADMIN). */
export function pfnsVisible(): boolean {
  const probe = Buffer.alloc(pageSize() * 2, 1);
  return readPfns('self', addressOf(probe), probe.length, pageSize())?.visible ?? false;
}
