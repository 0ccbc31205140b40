// machine.*: the whole machine's pinned memory and what is left for the request.

import { formatBytes } from '../lib/size.js';
import { readMeminfo } from '../proc/meminfo.js';
import { scanProcesses } from '../proc/scan.js';
import { requestChargeBytes } from './request.js';
import { finding, type DoctorContext, type Finding } from './types.js';

export function machineFindings(ctx: DoctorContext): Finding[] {
  const meminfo = readMeminfo();
  const scan = scanProcesses({ statusOnly: true, onlyHolding: true });
  const pinned = scan.processes.reduce((sum, p) => sum + p.pinnedBytes, 0);
  const share = meminfo.memTotalBytes > 0 ? (100 * pinned) / meminfo.memTotalBytes : 0;
  const out: Finding[] = [];
  const evidence = { pinnedBytes: pinned, memTotalBytes: meminfo.memTotalBytes, unevictableBytes: meminfo.unevictableBytes, mlockedBytes: meminfo.mlockedBytes, pinnedPercent: Number(share.toFixed(2)), processesHolding: scan.processes.length, file: '/proc/meminfo' };
  const top = [...scan.processes].sort((a, b) => b.pinnedBytes - a.pinnedBytes).slice(0, 3).filter((p) => p.pinnedBytes > 0);
  const who = top.length > 0 ? ` (most: ${top.map((p) => `pid ${p.pid} ${p.name} ${formatBytes(p.pinnedBytes)}`).join(', ')})` : '';
  out.push(share >= 50
    ? finding('machine.pinned', 'warn', `${formatBytes(pinned)} pinned = ${share.toFixed(1)}% of MemTotal ${formatBytes(meminfo.memTotalBytes)}${who}: pinned pages cannot be reclaimed, swapped or compacted`, evidence, ['find the holders with rdmactl stat --sort -pinned'])
    : finding('machine.pinned', 'ok', `${formatBytes(pinned)} pinned = ${share.toFixed(1)}% of MemTotal ${formatBytes(meminfo.memTotalBytes)}; Unevictable ${formatBytes(meminfo.unevictableBytes)}${who}`, evidence));

  const available = meminfo.memAvailableBytes;
  const request = ctx.request.sizeBytes === null ? null : requestChargeBytes(ctx);
  const availEvidence = { memAvailableBytes: available, requestBytes: request };
  if (request === null) out.push(finding('machine.available', 'ok', `MemAvailable ${available === null ? 'unknown' : formatBytes(available)}`, availEvidence));
  else if (available !== null && request > available) {
    out.push(finding('machine.available', 'fail', `${formatBytes(request)} requested > MemAvailable ${formatBytes(available)}: pinning or locking it would fault in more than the machine can free (ENOMEM or the OOM killer)`, availEvidence, ['register less, or free memory first']));
  } else out.push(finding('machine.available', 'ok', `${formatBytes(request)} requested, MemAvailable ${available === null ? 'unknown' : formatBytes(available)}`, availEvidence));
  return out;
}
