// The prediction for --size/--backend: the first failing finding among those that decide a
// registration of that kind, in the order the kernel meets them. And --try: really do it in a child
// of rdmactl (same credentials and limits as the shell that started rdmactl) and compare.

import type { RegisterOptions } from '../engine/register.js';
import type { BackendName } from '../engine/types.js';
import { defaultAccessText, parseAccessFlags } from '../engine/verbs/access.js';
import { holderStderrLine, startAttachedHolder } from '../held/starter.js';
import { formatBytes } from '../lib/size.js';
import { finding, type DoctorRequest, type Finding } from './types.js';

export type Outcome = 'registered' | 'refused';

export interface Prediction {
  backend: BackendName;
  sizeBytes: number;
  outcome: Outcome;
  /** The finding that decides it (the true cause of a refusal); null when nothing stands in the way. */
  cause: string | null;
  summary: string;
}

// Which findings can refuse a registration, in the order the kernel checks them.
// The memory cgroup is charged when pages are faulted in: io_uring pins (faults) before it accounts
// the pin; mlock and ib_umem_get check the limit first. The rdma cgroup is charged when the PD and
// MR objects are allocated, before the driver pins anything. A long-term pin of a shared file page is
// refused when GUP looks at the VMA, before any page is faulted in (and, for verbs, after the memlock
// check ib_umem_get does first).
const DECIDING: Record<BackendName, readonly string[]> = {
  uring: ['uring.disabled', 'hugepages.reserved', 'machine.available', 'maps.count', 'file.longterm-pin', 'cgroup.memory', 'memlock.limit', 'uring.user-charge'],
  mlock: ['hugepages.reserved', 'machine.available', 'maps.count', 'memlock.limit', 'cgroup.memory'],
  verbs: ['verbs.library', 'verbs.devices', 'hugepages.reserved', 'machine.available', 'maps.count', 'cgroup.rdma', 'verbs.max-mr', 'memlock.limit', 'file.longterm-pin', 'cgroup.memory'],
};

/** `mappedBytes`: the size after the backing's rounding (what the checks charged), named when it differs. */
export function predict(request: DoctorRequest, findings: readonly Finding[], mappedBytes: number = request.sizeBytes ?? 0): Prediction | null {
  if (request.sizeBytes === null || request.backend === null) return null;
  const byId = new Map(findings.map((f) => [f.id, f]));
  const blocking = DECIDING[request.backend].map((id) => byId.get(id)).find((f) => f?.status === 'fail');
  const rounded = (request.backing === 'thp' || request.backing === 'hugetlb') && mappedBytes > request.sizeBytes ? ` (${formatBytes(mappedBytes)}: ${request.backing} maps whole huge pages)` : '';
  const what = `${formatBytes(request.sizeBytes)}${rounded} with ${request.backend}`;
  return blocking
    ? { backend: request.backend, sizeBytes: request.sizeBytes, outcome: 'refused', cause: blocking.id, summary: `registering ${what} will be refused: ${blocking.id}: ${blocking.summary}` }
    : { backend: request.backend, sizeBytes: request.sizeBytes, outcome: 'registered', cause: null, summary: `registering ${what} will succeed` };
}

export interface TryResult {
  outcome: Outcome;
  /** The exit status `reg` would have had (0, or the refusal's); null when the child was killed. */
  exitCode: number | null;
  /** errno of the refusal (ENOMEM, EPERM, …), when a failed call is behind it. */
  errno: string | null;
  /** The child's one-line error, or the VmPin/VmLck its registration added. */
  message: string;
  /** Bytes the kernel charged in the child, from its registration (registered only). */
  pinnedBytes: number | null;
  lockedBytes: number | null;
  /** The `rdmactl reg` command line that does what the child did. */
  command: string[];
}

/**
 * Register in an attached holder (a child of rdmactl: it inherits our limits, credentials and cgroup),
 * what `reg SIZE --for 1ms` does, and release at once.
 */
export async function tryRegistration(request: DoctorRequest, accessText: string | null, env: NodeJS.ProcessEnv): Promise<TryResult> {
  const backend = request.backend!;
  const args = ['reg', String(request.sizeBytes), '--backend', backend, '--backing', request.backing, ...(accessText ? ['--access', accessText] : []), '--for', '1ms', '--json'];
  const command = ['rdmactl', ...args];
  const childEnv = { ...env };
  delete childEnv['RDMACTL_DEBUG'];
  const access = backend === 'verbs' ? request.access ?? parseAccessFlags(defaultAccessText(false)) : null;
  const options: RegisterOptions = { length: request.sizeBytes!, backend, backing: request.backing, count: 1, ...(access !== null ? { access } : {}) };
  // oom_score_adj 1000 (any process may raise its own), set by the child before it registers: if the
  // request overfills a memory cgroup or the machine, the OOM killer ends the child, never a process
  // the user cares about.
  const start = await startAttachedHolder({ request: { options, backendRequested: backend, holdMillis: null, oomScoreAdj: 1000 }, env: childEnv, answerWithinMs: 120_000 });
  if (start.ok) {
    const { before, after } = start.holder.registration;
    await start.holder.release();
    const pinned = after.pinnedBytes - before.pinnedBytes;
    const locked = after.lockedBytes - before.lockedBytes;
    return { outcome: 'registered', exitCode: 0, errno: null, message: `registered: VmPin +${formatBytes(pinned)}, VmLck +${formatBytes(locked)}`, pinnedBytes: pinned, lockedBytes: locked, command };
  }
  const refused = { outcome: 'refused', pinnedBytes: null, lockedBytes: null, command } as const;
  if ('failure' in start) return { ...refused, exitCode: start.failure.exitCode, errno: start.failure.errno, message: start.failure.message };
  const { code, signal, stderr } = start.exit;
  const killed = signal === 'SIGKILL' ? 'killed by SIGKILL (the OOM killer: the child has oom_score_adj 1000, so it goes first)' : `killed by ${signal}`;
  return { ...refused, exitCode: code, errno: null, message: holderStderrLine(stderr) || (signal ? killed : `exit ${code}`) };
}

/** try.outcome: ok when the kernel did what was predicted. */
export function tryFinding(prediction: Prediction, tried: TryResult): Finding {
  const evidence = { predicted: prediction.outcome, outcome: tried.outcome, exitCode: tried.exitCode, errno: tried.errno, message: tried.message, pinnedBytes: tried.pinnedBytes, lockedBytes: tried.lockedBytes, command: tried.command.join(' ') };
  if (prediction.outcome === tried.outcome) {
    return finding('try.outcome', 'ok', `as predicted: ${tried.outcome}${tried.outcome === 'refused' ? ` (${prediction.cause}): ${tried.message}` : ` (${tried.message})`}`, evidence);
  }
  return finding('try.outcome', 'fail', `predicted ${prediction.outcome}${prediction.cause ? ` (${prediction.cause})` : ''} but the kernel ${tried.outcome === 'registered' ? 'registered it' : `refused it: ${tried.message}`}`, evidence,
    ['please report this with the --json output: a check is missing or wrong']);
}
