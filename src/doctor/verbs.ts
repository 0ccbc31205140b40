// verbs.*: the verbs stack as a registration needs it — libibverbs loads, a device with a provider,
// an ACTIVE port (with GIDs on RoCE), max_mr_size and ODP for the request — plus NUMA placement of
// the device and GPUDirect, which depend on having a device at all.

import { statSync } from 'node:fs';
import { formatBytes } from '../lib/size.js';
import { raiseRdmaMaxCommand } from '../engine/limits.js';
import { findRdmaLimits, rdmaHeadroom, type RdmaLimit } from '../proc/cgroupLimits.js';
import { hasNvidiaDriver, hasRdmaClass, isModuleLoaded } from '../proc/sysfs.js';
import type { DeviceInfo, DeviceOpenFailure } from '../engine/verbs/index.js';
import { IBV_ACCESS_ON_DEMAND } from '../ffi/verbs/enums.js';
import { numaFinding } from './numa.js';
import { CAP_DAC_OVERRIDE, hasCapability } from './target.js';
import { holdsOpenFile } from '../proc/fds.js';
import { finding, skipped, type DoctorContext, type Finding, type Target } from './types.js';

async function loadDevices(): Promise<DeviceInfo[] | string> {
  try {
    const { listDevices } = await import('../engine/verbs/index.js');
    return listDevices();
  } catch (err) {
    return `libibverbs could not be used: ${err instanceof Error ? err.message : String(err)} (apt-get install libibverbs1 ibverbs-providers)`;
  }
}

/** Why the machine has no device: no RDMA in the kernel vs no device configured. */
function noDeviceReason(): string {
  return hasRdmaClass()
    ? 'no RDMA device (/sys/class/infiniband is empty); for Soft-RoCE: rdma link add rxe0 type rxe netdev IFACE'
    : 'no RDMA device: the kernel has no RDMA support loaded (/sys/class/infiniband is missing)';
}

export async function verbsFindings(ctx: DoctorContext): Promise<Finding[]> {
  const asked = ctx.request.backend === 'verbs';
  const devices = await loadDevices();
  if (typeof devices === 'string') {
    return [
      asked ? finding('verbs.library', 'fail', devices, {}, ['apt-get install libibverbs1 ibverbs-providers']) : skipped('verbs.library', devices),
      skipped('verbs.devices', 'libibverbs is not usable'),
    ];
  }
  const out: Finding[] = [finding('verbs.library', 'ok', 'libibverbs.so.1 loads', { library: 'libibverbs.so.1' })];
  if (devices.length === 0) {
    const reason = noDeviceReason();
    out.push(asked ? finding('verbs.devices', 'fail', reason, { devices: [] }, ['rdma link add rxe0 type rxe netdev IFACE (Soft-RoCE), or load the HCA driver']) : skipped('verbs.devices', reason));
    out.push(skipped('verbs.ports', 'no RDMA device'), skipped('verbs.max-mr', 'no RDMA device'), skipped('numa.node', 'no RDMA device'));
    out.push(gpuFinding());
    return out;
  }
  const broken = devices.filter((d) => d.error !== null);
  const unopened = devices.filter((d) => d.openFailure !== null);
  // I/O here, the explanation is pure: the device node's owner and mode, who we are, our rdma.max.
  const explained = new Map(unopened.map((d) => [d.name, explainOpenFailure(d.openFailure!, nodeAccess(d.openFailure!.file), currentCredentials(), findRdmaLimits('self'))]));
  // rdmactl opened them from its own credentials and cgroup; doctor PID asks for another process.
  const refused = ctx.target.self ? new Map<string, OpenFailureExplanation>() : targetRefusals(ctx.target, devices.filter((d) => d.openFailure === null));
  // Disjoint: `explained` has the devices that did not open, `refused` some of those that did.
  const why = new Map([...explained, ...refused]);
  const unusable = devices.filter((d) => d.error !== null || refused.has(d.name));
  out.push(finding('verbs.devices', unusable.length === devices.length ? 'fail' : unusable.length > 0 ? 'warn' : 'ok',
    `${devices.map((d) => why.get(d.name)?.summary ?? `${d.name}${d.error ? ` (cannot query: ${d.error})` : ''}`).join(', ')}`,
    {
      devices: devices.map((d) => {
        const refusedForTarget = refused.has(d.name);
        return {
          name: d.name, nodeType: d.nodeType, error: d.error,
          errno: d.openFailure?.errno ?? null, file: d.openFailure?.file ?? (refusedForTarget ? d.node : null),
          cause: why.get(d.name)?.cause ?? null,
          refusedFor: refusedForTarget ? ctx.target.pid : null,
        };
      }),
    },
    [...new Set([
      ...[...why.values()].flatMap((e) => e.fix),
      ...(broken.length > unopened.length ? ['check that the provider for the device is installed (ibverbs-providers) and the driver works (dmesg)'] : []),
    ])]));

  const opened = devices.filter((d) => d.openFailure === null);
  if (opened.length === 0) {
    // Nothing below can be read without an open device: say so instead of guessing from nulls.
    const why = `no device could be opened (${unopened.map((d) => `${d.name}: ${d.openFailure!.errno}`).join(', ')}; see verbs.devices)`;
    out.push(skipped('verbs.ports', why), skipped('verbs.max-mr', why), numaFinding(devices[0]!.name, ctx), gpuFinding());
    return out;
  }
  const ports = opened.flatMap((d) => (d.ports ?? []).map((p) => ({ device: d.name, ...p })));
  const active = ports.filter((p) => p.state === IBV_PORT_ACTIVE);
  const roceWithoutGid = active.filter((p) => p.linkLayer === 'Ethernet' && p.gidTableLength === 0);
  out.push(finding('verbs.ports', active.length === 0 ? 'fail' : roceWithoutGid.length > 0 ? 'warn' : 'ok',
    ports.map((p) => `${p.device}/${p.port} ${p.stateName} ${p.linkLayer}${p.linkLayer === 'Ethernet' ? ` ${p.gidTableLength} GIDs` : ''}`).join(', '),
    { ports: ports.map((p) => ({ device: p.device, port: p.port, state: p.stateName, linkLayer: p.linkLayer, gidTableLength: p.gidTableLength })) },
    active.length === 0 ? ['bring the link up (ip link set IFACE up; check the cable / subnet manager for InfiniBand)'] : []));

  const size = ctx.request.sizeBytes;
  const first = opened.find((d) => d.error === null) ?? opened.find((d) => d.maxMrSize !== null) ?? opened[0]!;
  const wantsOdp = ((ctx.request.access ?? 0) & IBV_ACCESS_ON_DEMAND) !== 0;
  const maxEvidence = { device: first.name, maxMr: first.maxMr, maxMrSize: first.maxMrSize?.toString() ?? null, requestBytes: size, odpSupported: first.odp?.supported ?? null };
  if (first.maxMrSize === null) {
    out.push(skipped('verbs.max-mr', `max_mr_size of ${first.name} could not be read: ${first.error ?? 'unknown error'}`, maxEvidence));
  } else if (size !== null && BigInt(size) > first.maxMrSize) {
    out.push(finding('verbs.max-mr', 'fail', `${formatBytes(size)} > max_mr_size ${first.maxMrSize} of ${first.name}`, maxEvidence, ['split the buffer into several MRs']));
  } else if (wantsOdp && first.odp?.supported !== true) {
    out.push(finding('verbs.max-mr', asked ? 'fail' : 'warn', `on-demand access requested but ${first.name} has no ODP`, maxEvidence, ['register without on-demand (the memory is then pinned)']));
  } else {
    out.push(finding('verbs.max-mr', 'ok', `${first.name}: max_mr ${first.maxMr}, max_mr_size ${first.maxMrSize}${wantsOdp ? ', ODP supported' : ''}`, maxEvidence));
  }
  out.push(numaFinding(first.name, ctx));
  out.push(gpuFinding());
  return out;
}

/** Owner and mode of a device node (null: it could not be stat'ed). */
export interface NodeAccess {
  mode: number;
  uid: number;
  gid: number;
}

/** Who is opening the device. */
export interface Credentials {
  uid: number;
  gid: number;
  groups: number[];
}

export type OpenFailureCause = 'permissions' | 'cgroup' | 'missing-node' | 'driver';

export interface OpenFailureExplanation {
  cause: OpenFailureCause;
  /** One line naming the device, the real errno and why. */
  summary: string;
  fix: string[];
}

/**
 * Why a device did not open, from the open's real errno, the node's owner and mode, and the rdma.max
 * entries that apply to this process. A device context is an hca_handle in the rdma cgroup: a limit
 * with no room left refuses it.
 */
export function explainOpenFailure(failure: DeviceOpenFailure, node: NodeAccess | null, who: Credentials, limits: readonly RdmaLimit[]): OpenFailureExplanation {
  const { device, errno, file } = failure;
  if (failure.stage === 'node') {
    if (errno === 'EACCES' || errno === 'EPERM') {
      const mode = node ? ` (${nodeModeText(node)}; this process: ${credentialsText(who)})` : '';
      return {
        cause: 'permissions',
        summary: `${device}: cannot open ${file}: ${errno}${mode}: the device node's permissions refuse this user`,
        fix: [nodeModeFix(node, file)],
      };
    }
    if (errno === 'ENOENT' || errno === 'ENXIO' || errno === 'ENODEV') {
      return { cause: 'missing-node', summary: `${device}: cannot open ${file}: ${errno}: the device node is missing`, fix: ['modprobe ib_uverbs (and check udev/devtmpfs creates /dev/infiniband)'] };
    }
  }
  const handles = noHandleLeft(device, limits);
  if (handles && failure.stage === 'context') {
    return { cause: 'cgroup', summary: `${device}: ibv_open_device: ${errno}: ${handlesText(device, handles)}`, fix: [handlesFix(device, handles)] };
  }
  return {
    cause: 'driver',
    summary: `${device}: ${failure.stage === 'node' ? `cannot open ${file}` : 'ibv_open_device'}: ${errno}`,
    fix: ['check that the provider for the device is installed (ibverbs-providers) and the driver works (dmesg)'],
  };
}

function nodeModeText(node: NodeAccess): string {
  return `mode ${(node.mode & 0o7777).toString(8).padStart(4, '0')}, owner uid ${node.uid} gid ${node.gid}`;
}

function credentialsText(who: Credentials): string {
  return `uid ${who.uid}, gids ${[who.gid, ...who.groups.filter((g) => g !== who.gid)].join(',')}`;
}

function nodeModeFix(node: NodeAccess | null, file: string | null): string {
  const group = node && node.gid !== 0 ? `add the user to group ${node.gid}, or ` : '';
  return `${group}chmod 0666 ${file} (a udev rule keeps it across reboots: KERNEL=="uverbs*", MODE="0666")`;
}

/** The rdma.max entry that leaves no hca_handle (device context) on `device`, if one applies. */
function noHandleLeft(device: string, limits: readonly RdmaLimit[]): RdmaLimit | undefined {
  return limits.find((l) => l.device === device && l.key === 'hca_handle' && rdmaHeadroom(l) <= 0);
}

function handlesText(device: string, handles: RdmaLimit): string {
  return `the rdma cgroup ${handles.path} allows ${handles.max} hca_handle (device context) on ${device}, ${handles.current} in use (rdma.max)`;
}

function handlesFix(device: string, handles: RdmaLimit): string {
  return `${raiseRdmaMaxCommand(device, 'hca_handle', handles.directory)} (or a higher count)`;
}

/** Whether open(2) with O_RDWR passes the node's mode for `who` (owner, then group, then other bits; no ACLs). */
export function modeAllowsReadWrite(node: NodeAccess, who: Credentials): boolean {
  const inGroup = who.gid === node.gid || who.groups.includes(node.gid);
  const bits = who.uid === node.uid ? (node.mode >> 6) & 7 : inGroup ? (node.mode >> 3) & 7 : node.mode & 7;
  return (bits & 6) === 6;
}

/**
 * Why another process (doctor PID) could not open a device that rdmactl opened: its credentials
 * against the node's mode (unless CAP_DAC_OVERRIDE), or no hca_handle left in its own rdma cgroup.
 * Null when nothing stops it, and when it holds the node open already (`holdsNode`: its context exists).
 */
export function explainTargetAccess(device: string, file: string, pid: number, node: NodeAccess | null, who: Credentials & { dacOverride: boolean }, limits: readonly RdmaLimit[], holdsNode: () => boolean): OpenFailureExplanation | null {
  let explanation: OpenFailureExplanation | null = null;
  const handles = noHandleLeft(device, limits);
  if (node && !who.dacOverride && !modeAllowsReadWrite(node, who)) {
    explanation = {
      cause: 'permissions',
      summary: `${device}: pid ${pid} cannot open ${file} (${nodeModeText(node)}; pid ${pid}: ${credentialsText(who)}): the device node's permissions refuse its user`,
      fix: [nodeModeFix(node, file)],
    };
  } else if (handles) {
    explanation = { cause: 'cgroup', summary: `${device}: pid ${pid} cannot open a device context: ${handlesText(device, handles)}`, fix: [handlesFix(device, handles)] };
  }
  // Asked only when something would stop it: it reads every fd link of the process (thousands for an MPI rank).
  return explanation !== null && !holdsNode() ? explanation : null;
}

/** The devices rdmactl opened that `target` could not: by name, why. */
function targetRefusals(target: Target, opened: readonly DeviceInfo[]): Map<string, OpenFailureExplanation> {
  const limits = findRdmaLimits(target.pid);
  const who = { uid: target.status.euid, gid: target.status.egid, groups: target.groups, dacOverride: hasCapability(target, CAP_DAC_OVERRIDE) };
  const out = new Map<string, OpenFailureExplanation>();
  for (const device of opened) {
    if (device.node === null) continue;
    const explanation = explainTargetAccess(device.name, device.node, target.pid, nodeAccess(device.node), who, limits, () => holdsNode(target.pid, device.node!));
    if (explanation) out.set(device.name, explanation);
  }
  return out;
}

/** Whether `pid` has the device node open (so its device context exists already). */
function holdsNode(pid: number, file: string): boolean {
  try {
    return holdsOpenFile(pid, file, statSync(file).ino);
  } catch {
    return false;
  }
}

function nodeAccess(file: string | null): NodeAccess | null {
  if (file === null) return null;
  try {
    const st = statSync(file);
    return { mode: st.mode, uid: st.uid, gid: st.gid };
  } catch {
    return null;
  }
}

function currentCredentials(): Credentials {
  return { uid: process.getuid?.() ?? -1, gid: process.getgid?.() ?? -1, groups: process.getgroups?.() ?? [] };
}

/** enum ibv_port_state: IBV_PORT_ACTIVE (ibv_port_state_str spells it "active"). */
const IBV_PORT_ACTIVE = 4;

function gpuFinding(): Finding {
  if (!hasNvidiaDriver()) return skipped('gpu.peermem', 'no NVIDIA GPU driver (/proc/driver/nvidia is missing)');
  const loaded = isModuleLoaded('nvidia_peermem');
  return loaded
    ? finding('gpu.peermem', 'ok', 'nvidia_peermem is loaded: GPU memory can be registered', { module: 'nvidia_peermem' })
    : finding('gpu.peermem', 'warn', 'an NVIDIA GPU driver is loaded but nvidia_peermem is not: ibv_reg_mr on GPU memory fails (dma-buf MRs still work where supported)', { module: 'nvidia_peermem' }, ['modprobe nvidia_peermem']);
}
