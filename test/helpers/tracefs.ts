// Tracefs for the tests that trace on this host (trace, exporter --trace, top's events pane): why
// they cannot run here, as rdmactl itself detects it; mounting tracefs for them when it is not
// mounted (and only then unmounting it); and what of rdmactl a run left in tracefs.

import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tracefsFacts, tracefsProblem } from '../../src/trace/tracefs.js';

const TRACING = '/sys/kernel/tracing';
let mountedByTest = false;

/**
 * Why tracing cannot run here (null when it can): `needsRoot` is the file's own sentence for a
 * non-root run; otherwise rdmactl's own verdict on tracefs. Mounts tracefs at the usual place when
 * none is mounted, saying so (unmountTracefsIfMounted undoes it).
 */
export function tracingUnavailable(file: string, needsRoot: string): string | null {
  if (process.getuid?.() !== 0) return needsRoot;
  let facts = tracefsFacts();
  if (facts.root === null && existsSync(TRACING)) {
    console.warn(`${file}: tracefs is not mounted; mounting it at ${TRACING} for these tests (unmounted afterwards)`);
    if (spawnSync('mount', ['-t', 'tracefs', 'nodev', TRACING]).status === 0) mountedByTest = true;
    facts = tracefsFacts();
  }
  return tracefsProblem(facts, 0)?.message ?? null;
}

/** Unmounts tracefs if tracingUnavailable mounted it. */
export function unmountTracefsIfMounted(): void {
  if (mountedByTest) spawnSync('umount', [TRACING]);
  mountedByTest = false;
}

/** The tracefs mount point, read as rdmactl reads it. */
export function tracefsRoot(): string {
  return tracefsFacts().root ?? TRACING;
}

/** rdmactl's instances and probe definitions in tracefs, of process `pid` (or of any rdmactl), read directly. */
export function tracefsLeftovers(pid?: number): string[] {
  const root = tracefsRoot();
  const instances = readdirSync(join(root, 'instances')).filter((n) => (pid === undefined ? /^rdmactl-/.test(n) : n.startsWith(`rdmactl-${pid}-`)));
  const probes = readFileSync(join(root, 'dynamic_events'), 'utf8').split('\n').filter((l) => (pid === undefined ? /:rdmactl_\d+\//.test(l) : l.includes(`:rdmactl_${pid}/`)));
  return [...instances, ...probes];
}
