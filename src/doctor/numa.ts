// numa.node: an HCA reads and writes host memory over its PCIe link; memory on another NUMA node costs
// a trip over the inter-socket link for every DMA. Compare the device's node (sysfs numa_node) with
// where the target's registered memory sits (numa_maps). Registered ranges are known for io_uring
// buffers (fdinfo) and mlocked VMAs (smaps); verbs MR addresses are not shown anywhere in /proc, so
// without such ranges the check looks at all of the process's anonymous memory and says so.

import { readRdmaDeviceNumaNode, rdmaDeviceNumaNodePath } from '../proc/sysfs.js';
import { formatBytes } from '../lib/size.js';
import { ProcUnreadableError } from '../proc/procfs.js';
import { bytesByNode, readNumaMaps, type NumaMapsVma } from '../proc/numaMaps.js';
import { isLocked, readSmaps, type SmapsVma } from '../proc/smaps.js';
import { readUringInstances } from '../proc/uringFdinfo.js';
import { finding, skipped, type DoctorContext, type Finding } from './types.js';

const ID = 'numa.node';

export interface AddressRange {
  start: bigint;
  end: bigint;
}

export interface NumaPlacement {
  /** 'registered': VMAs holding io_uring buffers or mlocked pages; 'anonymous': no such range, all anonymous memory. */
  scope: 'registered' | 'anonymous';
  bytesByNode: Map<number, number>;
}

/** Where the memory that matters sits: the numa_maps VMAs overlapping `ranges`, else every anonymous VMA. */
export function numaPlacement(numaMaps: readonly NumaMapsVma[], smaps: readonly SmapsVma[], ranges: readonly AddressRange[]): NumaPlacement {
  const registered = smaps.filter((vma) => isLocked(vma) || ranges.some((r) => r.start < vma.end && vma.start < r.end));
  if (registered.length > 0) {
    const starts = new Set(registered.map((vma) => vma.start));
    return { scope: 'registered', bytesByNode: bytesByNode(numaMaps.filter((vma) => starts.has(vma.start))) };
  }
  return { scope: 'anonymous', bytesByNode: bytesByNode(numaMaps.filter((vma) => vma.anonymous)) };
}

/** The finding from the device's node and the placement (pure: tested with fixtures). */
export function numaFindingFrom(device: string, deviceNode: number, placement: NumaPlacement, pid: number): Finding {
  const what = placement.scope === 'registered' ? 'registered memory (io_uring buffers, mlocked VMAs)' : 'anonymous memory (no io_uring buffer or mlocked VMA to look at; verbs MR addresses are not in /proc)';
  const local = placement.bytesByNode.get(deviceNode) ?? 0;
  const remote = [...placement.bytesByNode].filter(([node, bytes]) => node !== deviceNode && bytes > 0);
  const remoteBytes = remote.reduce((sum, [, bytes]) => sum + bytes, 0);
  const evidence = {
    device, deviceNode, scope: placement.scope, localBytes: local, remoteBytes,
    bytesByNode: Object.fromEntries([...placement.bytesByNode].map(([node, bytes]) => [String(node), bytes])),
    file: `/proc/${pid}/numa_maps`,
  };
  const fix = [`run the process on the device's node: numactl --cpunodebind=${deviceNode} --membind=${deviceNode} COMMAND`, 'or allocate and register each buffer from a thread bound to that node'];
  if (local + remoteBytes === 0) return finding(ID, 'ok', `${device} is on node ${deviceNode}; the process has no resident ${placement.scope} memory yet`, evidence);
  if (remoteBytes === 0) return finding(ID, 'ok', `${what}: all ${formatBytes(local)} on node ${deviceNode}, the node of ${device}`, evidence);
  const where = remote.map(([node, bytes]) => `${formatBytes(bytes)} on node ${node}`).join(', ');
  return finding(ID, 'warn', `${what}: ${where} — remote from ${device} on node ${deviceNode} (${formatBytes(local)} local): every DMA crosses the inter-socket link`, evidence, fix);
}

export function numaFinding(device: string, ctx: DoctorContext): Finding {
  const deviceNode = readRdmaDeviceNumaNode(device);
  if (deviceNode === null) return skipped(ID, `${rdmaDeviceNumaNodePath(device)} is missing (a software device has no PCI NUMA node)`);
  if (!(deviceNode >= 0)) return skipped(ID, `${device} reports no NUMA node (numa_node = -1): a software device or a one-node machine`);
  const { pid } = ctx.target;
  try {
    const numaMaps = readNumaMaps(pid);
    const smaps = readSmaps(pid);
    if (numaMaps === null || smaps === null) return skipped(ID, `pid ${pid} exited while being checked`);
    const ranges = (readUringInstances(pid) ?? []).flatMap((i) => i.fdinfo.buffers.map((b) => ({ start: b.address, end: b.address + BigInt(b.lengthBytes) })));
    return numaFindingFrom(device, deviceNode, numaPlacement(numaMaps, smaps, ranges), pid);
  } catch (err) {
    if (err instanceof ProcUnreadableError) return skipped(ID, `cannot read /proc/${pid}/numa_maps (run as root or as the process's user)`);
    throw err;
  }
}
