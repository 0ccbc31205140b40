// The prediction for --size/--backend: the first failing finding among those that decide a
// registration of that kind, in the order the kernel meets them. And --try: really do it in a child
// of rdmactl (same credentials and limits as the shell that started rdmactl) and compare.

import { spawnSync } from 'node:child_process';
import { RDMACTL_BIN } from '../lib/launcher.js';
import type { BackendName } from '../engine/types.js';
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
// MR objects are allocated, before the driver pins anything.
const DECIDING: Record<BackendName, readonly string[]> = {
  uring: ['uring.disabled', 'hugepages.reserved', 'machine.available', 'maps.count', 'cgroup.memory', 'memlock.limit', 'uring.user-charge'],
  mlock: ['hugepages.reserved', 'machine.available', 'maps.count', 'memlock.limit', 'cgroup.memory'],
  verbs: ['verbs.library', 'verbs.devices', 'hugepages.reserved', 'machine.available', 'maps.count', 'cgroup.rdma', 'verbs.max-mr', 'memlock.limit', 'cgroup.memory'],
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
  exitCode: number | null;
  /** errno named in the refusal (ENOMEM, EPERM, …), when the message has one. */
  errno: string | null;
  /** The child's one-line error, or its "registered" record's VmPin/VmLck. */
  message: string;
  /** Bytes the kernel charged in the child, from its record (registered only). */
  pinnedBytes: number | null;
  lockedBytes: number | null;
  command: string[];
}

/** Register in a child rdmactl (`reg SIZE --for 1ms --json`): it inherits our limits and credentials. */
export function tryRegistration(request: DoctorRequest, accessText: string | null, env: NodeJS.ProcessEnv): TryResult {
  const args = ['reg', String(request.sizeBytes), '--backend', request.backend!, '--backing', request.backing, ...(accessText ? ['--access', accessText] : []), '--for', '1ms', '--json'];
  const childEnv = { ...env };
  delete childEnv['RDMACTL_DEBUG'];
  // oom_score_adj 1000 (any process may raise its own): if the request overfills a memory cgroup
  // or the machine, the OOM killer ends the child, never a process the user cares about.
  const result = spawnSync('/bin/sh', ['-c', 'echo 1000 > /proc/self/oom_score_adj && exec "$@"', 'sh', process.execPath, RDMACTL_BIN, ...args], { encoding: 'utf8', env: childEnv, timeout: 120_000 });
  const command = ['rdmactl', ...args];
  if (result.error) throw result.error;
  if (result.status === 0) {
    const record = JSON.parse(result.stdout.split('\n')[0]!) as { pinnedBytesAfter: number; pinnedBytesBefore: number; lockedBytesAfter: number; lockedBytesBefore: number };
    const pinned = record.pinnedBytesAfter - record.pinnedBytesBefore;
    const locked = record.lockedBytesAfter - record.lockedBytesBefore;
    return { outcome: 'registered', exitCode: 0, errno: null, message: `registered: VmPin +${formatBytes(pinned)}, VmLck +${formatBytes(locked)}`, pinnedBytes: pinned, lockedBytes: locked, command };
  }
  const line = result.stderr.split('\n').find((l) => l.startsWith('rdmactl: ')) ?? result.stderr.split('\n')[0] ?? '';
  const errno = /\b(E[A-Z0-9]{2,})\b/.exec(line)?.[1] ?? null;
  const killed = result.signal === 'SIGKILL' ? 'killed by SIGKILL (the OOM killer: the child has oom_score_adj 1000, so it goes first)' : `killed by ${result.signal}`;
  const message = line.replace(/^rdmactl: /, '') || (result.signal ? killed : `exit ${result.status}`);
  return { outcome: 'refused', exitCode: result.status, errno, message, pinnedBytes: null, lockedBytes: null, command };
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
