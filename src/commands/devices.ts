// rdmactl devices: RDMA devices with the capabilities a sysadmin checks before registering memory.

import { Command } from 'commander';
import type { Context } from '../lib/context.js';
import { toJson, type Field } from '../lib/fields.js';
import { addOutputOptions, outputView, type OutputFlags } from '../lib/output.js';
import { readCopyOnFork } from '../observe/copyOnFork.js';
import { NO_DEVICE_HINTS } from '../engine/verbs/hints.js';
import type { DeviceInfo, PortInfo } from '../engine/verbs/index.js';

/** A 64-bit value as a decimal string (JSON numbers stop being exact at 2^53); null stays null. */
function u64(value: bigint | null): string | null {
  return value === null ? null : value.toString();
}

/** Page sizes from page_size_cap: the smallest supported and the mask (null: not read). */
function pageSizes(cap: bigint | null): string | null {
  if (cap === null) return null;
  if (cap === 0n) return '-';
  let smallest = 0n;
  while (((cap >> smallest) & 1n) === 0n) smallest++;
  return `≥ ${(1n << smallest) >= 1024n ? `${(1n << smallest) / 1024n} KiB` : `${1n << smallest} B`} (mask 0x${cap.toString(16)})`;
}

export const DEVICE_FIELDS: readonly Field<DeviceInfo>[] = [
  { key: 'name', label: 'DEVICE', title: 'device', description: 'RDMA device name (ibv_get_device_name)', get: (d) => d.name },
  { key: 'nodeType', label: 'NODE-TYPE', title: 'node type', description: 'node type: CA, RNIC, …', get: (d) => d.nodeType },
  { key: 'guid', label: 'GUID', title: 'node GUID', description: 'node GUID', get: (d) => d.guid },
  { key: 'fwVersion', label: 'FIRMWARE', title: 'firmware', description: 'firmware version (null when the driver reports none or it was not read)', get: (d) => d.fwVersion || null },
  { key: 'maxMr', label: 'MAX_MR', title: 'max_mr', description: 'most MRs the device supports (ibv_query_device; null: not read, see error)', kind: 'count', get: (d) => d.maxMr },
  { key: 'maxMrSize', label: 'MAX_MR_SIZE', title: 'max_mr_size (bytes)', description: 'largest MR in bytes, a decimal string (a 64-bit value; null: not read)', get: (d) => u64(d.maxMrSize) },
  { key: 'pageSizeCap', label: 'PAGE_SIZE_CAP', title: 'page_size_cap', description: 'supported page sizes, a bit mask (hex string; null: not read)', get: (d) => (d.pageSizeCap === null ? null : `0x${d.pageSizeCap.toString(16)}`) },
  { key: 'pageSizes', label: 'PAGE-SIZES', title: 'page sizes', description: 'smallest supported page size and the mask, for people', get: (d) => pageSizes(d.pageSizeCap) },
  { key: 'maxQp', label: 'MAX_QP', title: 'max_qp', description: 'most queue pairs (null: not read)', kind: 'count', get: (d) => d.maxQp },
  { key: 'maxPd', label: 'MAX_PD', title: 'max_pd', description: 'most protection domains (null: not read)', kind: 'count', get: (d) => d.maxPd },
  { key: 'odpSupported', label: 'ODP', title: 'ODP (on-demand paging)', description: 'on-demand paging supported (ibv_query_device_ex; null: unknown)', get: (d) => (d.odp === null ? null : d.odp.supported), nullText: 'unknown', kind: 'bool' },
  { key: 'odpGeneralCaps', label: 'ODP-CAPS', title: 'ODP general caps', description: 'ODP general capabilities: odp, implicit; a bit verbs.h does not name as its hex value (0x4)', get: (d) => d.odp?.general ?? null, showIf: (d) => d.odp?.supported === true },
  { key: 'odpRcCaps', label: 'ODP-RC', title: 'ODP RC ops', description: 'operations ODP supports on RC queue pairs: send, recv, write, read, atomic, srq-recv, flush, atomic-write; an unnamed bit as hex (0x100)', get: (d) => d.odp?.rc ?? null, showIf: (d) => d.odp?.supported === true },
  { key: 'odpUcCaps', label: 'ODP-UC', title: 'ODP UC ops', description: 'operations ODP supports on UC queue pairs (words as for odpRcCaps)', get: (d) => d.odp?.uc ?? null, extra: true },
  { key: 'odpUdCaps', label: 'ODP-UD', title: 'ODP UD ops', description: 'operations ODP supports on UD queue pairs (words as for odpRcCaps)', get: (d) => d.odp?.ud ?? null, showIf: (d) => d.odp?.supported === true },
  { key: 'forkInit', label: 'FORK-INIT', title: 'ibv_is_fork_initialized', description: 'libibverbs fork status: disabled, enabled or unneeded', get: (d) => d.fork },
  { key: 'error', label: 'ERROR', title: 'error', description: 'why the device could not be opened or fully queried (the values not read are null; null when all were)', get: (d) => d.error, showIf: (d) => d.error !== null },
  {
    key: 'ports', label: 'PORTS', title: 'ports', description: 'the ports, each with the port keys (port, state, linkLayer, activeMtu, maxMtu, lid, gidTableLength); null: not read', extra: true,
    get: (d) => d.ports?.map((p) => toJson(PORT_FIELDS, p)) ?? null,
  },
];

export const PORT_FIELDS: readonly Field<PortInfo>[] = [
  { key: 'port', label: 'PORT', description: 'port number', get: (p) => p.port },
  { key: 'state', label: 'STATE', description: 'port state (ACTIVE, DOWN, …)', get: (p) => p.stateName },
  { key: 'linkLayer', label: 'LINK-LAYER', description: 'InfiniBand or Ethernet', get: (p) => p.linkLayer },
  { key: 'activeMtu', label: 'ACTIVE-MTU', description: 'active MTU in bytes', get: (p) => p.activeMtu },
  { key: 'maxMtu', label: 'MAX-MTU', description: 'largest MTU in bytes', get: (p) => p.maxMtu },
  { key: 'lid', label: 'LID', description: 'local identifier (InfiniBand)', get: (p) => p.lid },
  { key: 'gidTableLength', label: 'GIDS', description: 'length of the GID table', get: (p) => p.gidTableLength },
];

const DEVICES_OUTPUT = { name: 'devices', fields: DEVICE_FIELDS };

export function devicesCommand(ctx: Context): Command {
  const command = new Command('devices')
    .summary('RDMA devices and the capabilities that matter for registration')
    .description(`List RDMA devices (through libibverbs) with ports and state, max_mr, max_mr_size,
page_size_cap, ODP (on-demand paging) capabilities, and fork status: libibverbs'
ibv_is_fork_initialized and the kernel's copy-on-fork for pinned pages.
A value that could not be read (the device did not open) prints as - (null in JSON), with the
reason in ERROR. No device is a normal answer (exit 0).`)
    .option('--json', 'print JSON: { host, schema, kernel, copyOnFork, copyOnForkSource, devices: [...] }')
    .addHelpText('after', `
-o picks device columns (ports: -o +ports, or --json); with -r or -n, one line per device and no
port tables or notes.

Examples:
  rdmactl devices                      every device, its ports and the fork status
  rdmactl devices -rn -o name,maxMrSize,odpSupported
  rdmactl devices --json | jq '.devices[].ports'`)
    .action(async (flags: OutputFlags) => {
      const view = outputView(ctx, DEVICES_OUTPUT, flags);
      const { listDevices } = await import('../engine/verbs/index.js');
      const devices = listDevices();
      const fork = readCopyOnFork();
      if (view.json) {
        view.printDocument({ kernel: fork.kernel, copyOnFork: fork.copyOnFork, copyOnForkSource: fork.copyOnForkSource, devices: devices.map((d) => view.record(d)) });
        return;
      }
      if (devices.length === 0) {
        view.prose('No RDMA devices found.');
        for (const hint of NO_DEVICE_HINTS) view.prose(hint);
      }
      if (view.recordsOnly) view.printTable(devices);
      for (const device of view.recordsOnly ? [] : devices) {
        view.printRecord(device);
        if (device.ports !== null && device.ports.length > 0) view.printOther(PORT_FIELDS, device.ports);
      }
      view.prose(`kernel ${fork.kernel}: ${fork.copyOnFork === null ? `copy-on-fork ${fork.copyOnForkSource}` : `copy-on-fork ${fork.copyOnFork ? 'on' : 'off'} (${fork.copyOnForkSource})`}`);
    });
  return addOutputOptions(command, ctx, DEVICES_OUTPUT);
}
