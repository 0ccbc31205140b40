// rdmactl devices: RDMA devices with the capabilities a sysadmin checks before registering memory.

import { Command } from 'commander';
import { printJson, type Context } from '../lib/context.js';
import { renderRecord, renderTable, toJson, type Field } from '../lib/fields.js';
import { readCopyOnFork } from '../observe/copyOnFork.js';
import { NO_DEVICE_HINTS } from '../engine/verbs/hints.js';
import type { DeviceInfo, PortInfo } from '../engine/verbs/index.js';

function u64(value: bigint): string {
  return value.toString();
}

/** Page sizes from page_size_cap: the smallest supported and the count. */
function pageSizes(cap: bigint): string {
  if (cap === 0n) return '-';
  let smallest = 0n;
  while (((cap >> smallest) & 1n) === 0n) smallest++;
  return `≥ ${(1n << smallest) >= 1024n ? `${(1n << smallest) / 1024n} KiB` : `${1n << smallest} B`} (mask 0x${cap.toString(16)})`;
}

export const DEVICE_FIELDS: readonly Field<DeviceInfo>[] = [
  { key: 'name', label: 'device', get: (d) => d.name },
  { key: 'nodeType', label: 'node type', get: (d) => d.nodeType },
  { key: 'guid', label: 'node GUID', get: (d) => d.guid },
  { key: 'fwVersion', label: 'firmware', get: (d) => d.fwVersion || null },
  { key: 'maxMr', label: 'max_mr', kind: 'count', get: (d) => d.maxMr },
  { key: 'maxMrSize', label: 'max_mr_size (bytes)', get: (d) => u64(d.maxMrSize) },
  { key: 'pageSizeCap', label: 'page_size_cap', get: (d) => `0x${d.pageSizeCap.toString(16)}` },
  { key: 'pageSizes', label: 'page sizes', get: (d) => pageSizes(d.pageSizeCap) },
  { key: 'maxQp', label: 'max_qp', kind: 'count', get: (d) => d.maxQp },
  { key: 'maxPd', label: 'max_pd', kind: 'count', get: (d) => d.maxPd },
  { key: 'odpSupported', label: 'ODP (on-demand paging)', get: (d) => (d.odp === null ? null : d.odp.supported), nullText: 'unknown', kind: 'bool' },
  { key: 'odpGeneralCaps', label: 'ODP general caps', get: (d) => d.odp?.general ?? null, showIf: (d) => d.odp?.supported === true },
  { key: 'odpRcCaps', label: 'ODP RC ops', get: (d) => d.odp?.rc ?? null, showIf: (d) => d.odp?.supported === true },
  { key: 'odpUcCaps', label: 'ODP UC ops', get: (d) => d.odp?.uc ?? null, jsonOnly: true },
  { key: 'odpUdCaps', label: 'ODP UD ops', get: (d) => d.odp?.ud ?? null, showIf: (d) => d.odp?.supported === true },
  { key: 'forkInit', label: 'ibv_is_fork_initialized', get: (d) => d.fork },
  { key: 'error', label: 'error', get: (d) => d.error, showIf: (d) => d.error !== null },
  {
    key: 'ports', label: 'ports', jsonOnly: true,
    get: (d) => d.ports.map((p) => toJson(PORT_FIELDS, p)),
  },
];

export const PORT_FIELDS: readonly Field<PortInfo>[] = [
  { key: 'port', label: 'port', get: (p) => p.port },
  { key: 'state', label: 'state', get: (p) => p.stateName },
  { key: 'linkLayer', label: 'link layer', get: (p) => p.linkLayer },
  { key: 'activeMtu', label: 'active MTU', get: (p) => p.activeMtu },
  { key: 'maxMtu', label: 'max MTU', get: (p) => p.maxMtu },
  { key: 'lid', label: 'lid', get: (p) => p.lid },
  { key: 'gidTableLength', label: 'GIDs', get: (p) => p.gidTableLength },
];

export function devicesCommand(ctx: Context): Command {
  return new Command('devices')
    .summary('RDMA devices and the capabilities that matter for registration')
    .description(`List RDMA devices (through libibverbs) with ports and state, max_mr, max_mr_size,
page_size_cap, ODP (on-demand paging) capabilities, and fork status: libibverbs'
ibv_is_fork_initialized and the kernel's copy-on-fork for pinned pages.
No device is a normal answer (exit 0).`)
    .option('--json', 'print JSON: { kernel, copyOnFork, devices: [...] }')
    .action(async (flags: { json?: boolean }) => {
      const { listDevices } = await import('../engine/verbs/index.js');
      const devices = listDevices();
      const fork = readCopyOnFork();
      if (flags.json) {
        printJson(ctx, { kernel: fork.kernel, copyOnFork: fork.copyOnFork, copyOnForkSource: fork.copyOnForkSource, devices: devices.map((d) => toJson(DEVICE_FIELDS, d)) });
        return;
      }
      if (devices.length === 0) {
        ctx.stdout.write('No RDMA devices found.\n');
        for (const hint of NO_DEVICE_HINTS) ctx.stdout.write(`${hint}\n`);
      }
      for (const device of devices) {
        ctx.stdout.write(`${renderRecord(DEVICE_FIELDS, device)}\n`);
        if (device.ports.length > 0) ctx.stdout.write(`${renderTable(PORT_FIELDS, device.ports)}\n`);
      }
      ctx.stdout.write(`kernel ${fork.kernel}: copy-on-fork ${fork.copyOnFork ? 'on' : 'off'} (${fork.copyOnForkSource})\n`);
    });
}
