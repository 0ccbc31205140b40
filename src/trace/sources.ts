// The sources `rdmactl trace` knows, in the order they are listed. Each is a TraceSourceDriver; the
// session asks each one whether it can run here (detect) and uses those that can.

import { MlockSource, UringSource } from './syscalls.js';
import type { TraceSourceDriver } from './types.js';
import { UmemSource } from './umem.js';
import { VerbsSource } from './verbs.js';

/** Fresh drivers (they keep per-run state: pending entries, ring slots, live umems), in TRACE_SOURCES order. */
export function traceDrivers(): TraceSourceDriver[] {
  return [new UringSource(), new VerbsSource(), new UmemSource(), new MlockSource()];
}
