// verbs.*: the verbs stack as a registration needs it — libibverbs loads, a device with a provider,
// an ACTIVE port (with GIDs on RoCE), max_mr_size and ODP for the request — plus NUMA placement of
// the device and GPUDirect, which depend on having a device at all.

import { formatBytes } from '../lib/size.js';
import { hasNvidiaDriver, hasRdmaClass, isModuleLoaded } from '../proc/sysfs.js';
import type { DeviceInfo } from '../engine/verbs/index.js';
import { IBV_ACCESS_ON_DEMAND } from '../ffi/verbs/enums.js';
import { numaFinding } from './numa.js';
import { finding, skipped, type DoctorContext, type Finding } from './types.js';

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
  out.push(finding('verbs.devices', broken.length === devices.length ? 'fail' : broken.length > 0 ? 'warn' : 'ok',
    `${devices.map((d) => `${d.name}${d.error ? ` (cannot open: ${d.error})` : ''}`).join(', ')}`,
    { devices: devices.map((d) => ({ name: d.name, nodeType: d.nodeType, error: d.error })) },
    broken.length > 0 ? ['check that the provider for the device is installed (ibverbs-providers) and /dev/infiniband/uverbs* is accessible'] : []));

  const ports = devices.flatMap((d) => d.ports.map((p) => ({ device: d.name, ...p })));
  const active = ports.filter((p) => p.state === IBV_PORT_ACTIVE);
  const roceWithoutGid = active.filter((p) => p.linkLayer === 'Ethernet' && p.gidTableLength === 0);
  out.push(finding('verbs.ports', active.length === 0 ? 'fail' : roceWithoutGid.length > 0 ? 'warn' : 'ok',
    ports.map((p) => `${p.device}/${p.port} ${p.stateName} ${p.linkLayer}${p.linkLayer === 'Ethernet' ? ` ${p.gidTableLength} GIDs` : ''}`).join(', '),
    { ports: ports.map((p) => ({ device: p.device, port: p.port, state: p.stateName, linkLayer: p.linkLayer, gidTableLength: p.gidTableLength })) },
    active.length === 0 ? ['bring the link up (ip link set IFACE up; check the cable / subnet manager for InfiniBand)'] : []));

  const size = ctx.request.sizeBytes;
  const first = devices.find((d) => d.error === null) ?? devices[0]!;
  const wantsOdp = ((ctx.request.access ?? 0) & IBV_ACCESS_ON_DEMAND) !== 0;
  const maxEvidence = { device: first.name, maxMr: first.maxMr, maxMrSize: first.maxMrSize.toString(), requestBytes: size, odpSupported: first.odp?.supported ?? null };
  if (size !== null && BigInt(size) > first.maxMrSize) {
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

/** enum ibv_port_state: IBV_PORT_ACTIVE (ibv_port_state_str spells it "active"). */
const IBV_PORT_ACTIVE = 4;

function gpuFinding(): Finding {
  if (!hasNvidiaDriver()) return skipped('gpu.peermem', 'no NVIDIA GPU driver (/proc/driver/nvidia is missing)');
  const loaded = isModuleLoaded('nvidia_peermem');
  return loaded
    ? finding('gpu.peermem', 'ok', 'nvidia_peermem is loaded: GPU memory can be registered', { module: 'nvidia_peermem' })
    : finding('gpu.peermem', 'warn', 'an NVIDIA GPU driver is loaded but nvidia_peermem is not: ibv_reg_mr on GPU memory fails (dma-buf MRs still work where supported)', { module: 'nvidia_peermem' }, ['modprobe nvidia_peermem']);
}
