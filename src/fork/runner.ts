// The fork scenarios' runner: register a buffer one way, fork (a paused clone child), let the parent
// and/or the child write, then look: PFNs before and after, what each side sees, and — for pinned
// backends — what the "device" reads and writes through the backend's own data path. One row per
// scenario; the verdict comes from verdicts.ts.

import { performance } from 'node:perf_hooks';
import { view, type Pointer } from '../ffi/libc.js';
import { pageSize } from '../proc/pagemap.js';
import type { Registration } from '../engine/types.js';
import { VERBS_SCENARIO_ACCESS, setUpRange, setupSkipReason, type RegisteredRange } from './registeredRange.js';
import { IBV_ACCESS_ON_DEMAND } from '../ffi/verbs/enums.js';
import { PausedChild } from './child.js';
import { armForkWatchdog, disarmForkWatchdog } from './watchdog.js';
import type { DevicePath } from './devicePath.js';
import { pfnsVisible, probeEnvironment, verbsForkStatus, type RunEnvironment } from './environment.js';
import { checkpoint } from './interrupt.js';
import { readCopyOnFork } from '../observe/copyOnFork.js';
import { notApplicable, type ScenarioSpec } from './matrix.js';
import { PATTERN, classify, readChild, readChildPinned, readPfns, writeChild } from './observe.js';
import { verdictOf, type ScenarioResult, type VerdictId } from './verdicts.js';

export interface ScenarioRunOptions {
  /** Requested buffer bytes (each backing rounds up to its page size). */
  length: number;
  /** Interrupt: checked between steps; when aborted the run stops with InterruptedError. */
  signal?: AbortSignal;
  /** Pause this long with each child alive (lets tests interrupt mid-scenario). */
  stepDelayMs?: number;
  /** Called with each child's pid as soon as it exists. */
  onChild?: (pid: number, spec: ScenarioSpec) => void;
  /** Replace a registration's device path (tests: a path that throws). */
  devicePath?: (registration: Registration) => DevicePath | null;
  /** Extra IBV_ACCESS_* bits for verbs rows (e.g. on-demand), on top of VERBS_FORK_ACCESS. */
  verbsAccess?: number;
}

/** What verbs rows register with (the scenario engine's access: local-write, remote-write, remote-read). */
export const VERBS_FORK_ACCESS = VERBS_SCENARIO_ACCESS;

function emptyResult(spec: ScenarioSpec, verdict: VerdictId, reason: string | null, verbsAccess: number): ScenarioResult {
  const onDemand = spec.backend === 'verbs' && (verbsAccess & IBV_ACCESS_ON_DEMAND) !== 0;
  return {
    ...spec, length: null, pinned: spec.backend === 'uring' || (spec.backend === 'verbs' && !onDemand), onDemand,
    parentPfnBefore: null, parentPfnAfter: null, childPfn: null, parentPagesMoved: null, parentPfnStable: null,
    childSharesPage: null, childMapped: null, childInherited: null, parentSees: null, childSees: null, deviceSees: null,
    deviceSeesParentWrite: null, parentSeesDeviceWrite: null, childSeesAfterDeviceWrite: null, devicePath: null,
    verdict, reason, elapsedMs: 0,
  };
}

function firstOrNull(values: ReadonlyArray<number | null> | undefined): number | null {
  return values?.[0] ?? null;
}

/** Run one scenario. Whatever happens, its child is killed and reaped and its registration released. */
export async function runScenario(spec: ScenarioSpec, env: RunEnvironment, options: ScenarioRunOptions): Promise<ScenarioResult> {
  const started = performance.now();
  const inapplicable = notApplicable(spec);
  const verbsAccess = options.verbsAccess ?? 0;
  if (inapplicable) return emptyResult(spec, 'skipped', inapplicable, verbsAccess);
  if (spec.backend === 'verbs' && env.verbsUnavailable) return emptyResult(spec, 'skipped', env.verbsUnavailable, verbsAccess);

  let range: RegisteredRange;
  try {
    // The scenario engine's set-up: the buffer, its protections, the registration and the device path.
    range = await setUpRange(spec, { length: options.length, verbsAccess }, {
      dontfork: spec.protection === 'dontfork', wipeonfork: spec.protection === 'wipeonfork', forkInit: spec.protection === 'fork-init',
      ...(options.devicePath ? { devicePath: options.devicePath } : {}),
    });
  } catch (err) {
    // The machine cannot do this row (no hugepages, no THP, io_uring disabled, over a limit, the kernel
    // refuses to pin this kind of mapping): a skip with the kernel's reason, not a failure.
    const reason = setupSkipReason(err);
    if (reason === null) throw err;
    return emptyResult(spec, 'skipped', reason, verbsAccess);
  }

  const result = emptyResult(spec, 'error', null, verbsAccess);
  const page = pageSize();
  const device: DevicePath | null = range.device;
  let child: PausedChild | null = null;
  let watched = false;
  try {
    const addr: Pointer = range.addr;
    const len = range.length;
    result.length = len;
    if (range.registration) result.devicePath = range.devicePathText;

    const mine = view(addr, len);
    mine.fill(PATTERN.preFork);
    const before = readPfns('self', addr, len, page);

    // Before any child exists: children must not outlive us even if we are killed with SIGKILL.
    await armForkWatchdog();
    watched = true;
    child = PausedChild.start();
    options.onChild?.(child.pid, spec);
    await checkpoint(options.signal, options.stepDelayMs ?? 0);

    // Read without pinning (see readChild): a pin here would unshare the child's pages and hide the COW.
    const inherited = readChild(child.pid, addr, len);
    result.childInherited = inherited ? classify(inherited) : 'unmapped';

    if (spec.writer === 'parent' || spec.writer === 'both') mine.fill(PATTERN.parent);
    if (spec.writer === 'child' || spec.writer === 'both') writeChild(child.pid, addr, len, PATTERN.child);

    const after = readPfns('self', addr, len, page);
    const inChild = inherited ? readPfns(child.pid, addr, len, page) : null;
    if (before?.visible && after?.visible) {
      result.parentPfnBefore = firstOrNull(before.pfns);
      result.parentPfnAfter = firstOrNull(after.pfns);
      result.parentPagesMoved = before.pfns.filter((pfn, i) => pfn !== after.pfns[i]).length;
      result.parentPfnStable = result.parentPagesMoved === 0;
      if (inChild?.visible) {
        result.childPfn = firstOrNull(inChild.pfns);
        result.childSharesPage = result.childPfn !== null && result.childPfn === result.parentPfnAfter;
      }
    }

    const parentNow = Buffer.from(mine); // a copy: what the parent reads now
    result.parentSees = classify(parentNow);
    const childNow = readChild(child.pid, addr, len);
    result.childSees = childNow ? classify(childNow) : 'unmapped';

    if (device) {
      const deviceNow = device.deviceRead(0, len);
      result.deviceSees = classify(deviceNow);
      result.deviceSeesParentWrite = parentNow.equals(deviceNow);
      device.deviceWrite(Buffer.alloc(len, PATTERN.device), 0);
      result.parentSeesDeviceWrite = classify(mine) === 'device-write';
      const childLater = readChild(child.pid, addr, len);
      result.childSeesAfterDeviceWrite = childLater ? classify(childLater) : 'unmapped';
    }
    // Last, once every other observation is made: does the child have the range at all?
    // process_vm_readv fails with EFAULT when the range was not inherited (MADV_DONTFORK).
    result.childMapped = readChildPinned(child.pid, addr, len) !== null;

    const { verdict, note } = verdictOf(result);
    result.verdict = verdict;
    result.reason = note;
  } finally {
    // Order matters: the child first (it may share the pages), then the device path, then the pins.
    let failure: unknown;
    for (const step of [() => child?.close(), () => range.release()]) {
      try { step(); } catch (err) { failure ??= err; }
    }
    if (watched) await disarmForkWatchdog();
    result.elapsedMs = Math.round((performance.now() - started) * 10) / 10;
    if (failure !== undefined) throw failure;
  }
  return result;
}

export interface ForkReport {
  kernel: string;
  /** null: unknown (the kernel's netlink has no copy-on-fork attribute); the verdicts do not use it. */
  copyOnFork: boolean | null;
  /** Where copyOnFork came from (see observe/copyOnFork.ts). */
  copyOnForkSource: string;
  /** ibv_is_fork_initialized(): disabled / enabled / unneeded; null without libibverbs. */
  verbsForkStatus: string | null;
  pfnsVisible: boolean;
  pageSize: number;
  scenarios: ScenarioResult[];
}

/**
 * The order rows run in (results keep the matrix order). ibv_fork_init() is process-wide: once called,
 * libibverbs marks every later MR MADV_DONTFORK (seen on a 6.1 Soft-RoCE guest even though it reported
 * fork support "unneeded"), and it fails after any registration. So verbs fork-init rows run last: they
 * cannot spoil the other rows, and when another verbs row registered first they are skipped with the reason.
 */
export function executionOrder(specs: readonly ScenarioSpec[]): number[] {
  const indices = specs.map((_, i) => i);
  const isForkInit = (i: number): boolean => specs[i]!.backend === 'verbs' && specs[i]!.protection === 'fork-init';
  return [...indices.filter((i) => !isForkInit(i)), ...indices.filter(isForkInit)];
}

/**
 * Run every scenario in order. A row that throws is reported as `error` and the rest still run;
 * an interrupt stops the run (after the current row's cleanup) with InterruptedError.
 */
export async function runMatrix(specs: readonly ScenarioSpec[], options: ScenarioRunOptions): Promise<ForkReport> {
  // Armed once for the whole run (each row's arm/disarm then costs nothing), stopped when it ends.
  // Started first: the watchdog's start (a node process) overlaps the probes below.
  const watchdog = armForkWatchdog();
  let env: RunEnvironment;
  let kernel: ReturnType<typeof readCopyOnFork>;
  try {
    kernel = readCopyOnFork();
    env = await probeEnvironment(specs);
  } catch (err) {
    await watchdog.then(disarmForkWatchdog, () => undefined);
    throw err;
  }
  const report: ForkReport = {
    kernel: kernel.kernel,
    copyOnFork: kernel.copyOnFork,
    copyOnForkSource: kernel.copyOnForkSource,
    verbsForkStatus: specs.some((s) => s.backend === 'verbs') ? await verbsForkStatus() : null,
    pfnsVisible: pfnsVisible(),
    pageSize: pageSize(),
    scenarios: [],
  };
  const rows: ScenarioResult[] = new Array<ScenarioResult>(specs.length);
  await watchdog;
  try {
    for (const index of executionOrder(specs)) {
      const spec = specs[index]!;
      await checkpoint(options.signal);
      let row: ScenarioResult;
      try {
        row = await runScenario(spec, env, options);
      } catch (err) {
        if (err instanceof Error && err.name === 'InterruptedError') throw err;
        row = emptyResult(spec, 'error', err instanceof Error ? err.message : String(err), options.verbsAccess ?? 0);
      }
      if (row.verdict === 'skipped' && spec.backend === 'verbs' && spec.protection === 'fork-init' && /ibv_fork_init/.test(row.reason ?? '')) {
        row.reason = `${row.reason} (ibv_fork_init is process-wide and must precede every registration: run rdmactl fork --backend verbs --protect fork-init on its own)`;
      }
      rows[index] = row;
    }
  } finally {
    await disarmForkWatchdog();
  }
  report.scenarios = rows;
  return report;
}
