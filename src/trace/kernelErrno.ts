// A verbs registration that fails returns NULL and leaves its errno in the thread's user-space
// errno, which a uprobe cannot read. The kernel half of the same call, ib_umem_get (the umem
// source), fails inside it, on the same thread, with the errno the library then hands back. So when
// both sources run, a verbs failure takes the errno of the umem failure its thread had during its
// call (detail.errnoFrom says so). Without a nested umem failure (umem not traced, or the call failed
// before or after pinning: bad flags, a driver limit) it stays 'unknown'. Pure.

import { setBounded } from './probeline.js';
import { UNKNOWN_ERRNO, type TraceEvent } from './types.js';

/** Threads remembered at once; beyond it the oldest is forgotten (a failure whose verbs return was lost). */
const MAX_THREADS = 4096;
/** Trace times are printed to the microsecond: allow for rounding at either end of the call. */
const SLACK_S = 2e-6;

export class KernelErrnos {
  /** The last umem registration failure of each thread: when and with what errno. */
  private readonly lastUmemFailure = new Map<number, { readonly time: number; readonly errno: string }>();

  /** `event`, or for a verbs failure with errno unknown, the same event with its nested umem failure's errno. */
  fill(event: TraceEvent): TraceEvent {
    if (event.op !== 'failed' || event.attempt !== 'register' || event.errno === null) return event;
    if (event.source === 'umem') {
      if (event.errno !== UNKNOWN_ERRNO) {
        setBounded(this.lastUmemFailure, event.tid, { time: event.time, errno: event.errno }, MAX_THREADS);
      }
      return event;
    }
    if (event.source !== 'verbs' || event.errno !== UNKNOWN_ERRNO || event.latencyNs === null) return event;
    const kernel = this.lastUmemFailure.get(event.tid);
    if (!kernel) return event;
    const began = event.time - event.latencyNs / 1e9;
    if (kernel.time < began - SLACK_S || kernel.time > event.time + SLACK_S) return event;
    this.lastUmemFailure.delete(event.tid);
    return { ...event, errno: kernel.errno, detail: { ...event.detail, errnoFrom: 'umem' } };
  }
}
