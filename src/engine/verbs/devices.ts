// What `rdmactl devices` shows: every RDMA device with its limits, ports and ODP capabilities.

import * as ibv from '../../ffi/verbs/index.js';
import { getDeviceList, type DeviceList } from './objects.js';
import type { OdpCaps, PortInfo } from './objects.js';
import { isNoDeviceErrno } from './registration.js';

export interface DeviceInfo {
  name: string;
  /** Node GUID, 0011:2233:4455:6677. */
  guid: string;
  /** ibv_node_type_str, e.g. "InfiniBand channel adapter". */
  nodeType: string;
  fwVersion: string;
  vendorId: number;
  vendorPartId: number;
  ports: PortInfo[];
  maxMr: number;
  /** Largest MR in bytes (2^64-1 on rxe: kept exact as bigint). */
  maxMrSize: bigint;
  /** Bitmask of supported page sizes. */
  pageSizeCap: bigint;
  maxQp: number;
  maxPd: number;
  /** null: the provider has no query_device_ex, ODP unknown. */
  odp: OdpCaps | null;
  /** ibv_is_fork_initialized for this process (library-wide, repeated per device). */
  fork: ibv.ForkStatus;
  /** Set when the device is listed but could not be opened or queried; the other fields are then partial. */
  error: string | null;
}

/** The device list, or null when the kernel has no RDMA (ENOSYS) or there is no device. */
function deviceListOrNone(): DeviceList | null {
  try {
    return getDeviceList();
  } catch (err) {
    if (isNoDeviceErrno(err)) return null;
    throw err;
  }
}

/**
 * All RDMA devices with their attributes. No RDMA in the kernel (ENOSYS) or no device → [].
 * A missing libibverbs is an UnsupportedError.
 */
export function listDevices(): DeviceInfo[] {
  const list = deviceListOrNone();
  if (list === null) return [];
  using _list = list;
  const fork = ibv.isForkInitialized();
  const out: DeviceInfo[] = [];
  for (const device of list.devices) {
    const info: DeviceInfo = {
      name: device.name,
      guid: device.guidString,
      nodeType: device.nodeTypeName,
      fwVersion: '',
      vendorId: 0,
      vendorPartId: 0,
      ports: [],
      maxMr: 0,
      maxMrSize: 0n,
      pageSizeCap: 0n,
      maxQp: 0,
      maxPd: 0,
      odp: null,
      fork,
      error: null,
    };
    try {
      using ctx = device.open();
      const attr = ctx.queryDevice();
      info.fwVersion = attr.fw_ver;
      info.vendorId = attr.vendor_id;
      info.vendorPartId = attr.vendor_part_id;
      info.maxMr = attr.max_mr;
      info.maxMrSize = attr.max_mr_size;
      info.pageSizeCap = attr.page_size_cap;
      info.maxQp = attr.max_qp;
      info.maxPd = attr.max_pd;
      info.odp = ctx.odpCaps();
      info.ports = ctx.ports(attr.phys_port_cnt);
    } catch (err) {
      info.error = err instanceof Error ? err.message : String(err);
    }
    out.push(info);
  }
  return out;
}

/** ibv_is_fork_initialized for this process. */
export function forkStatus(): ibv.ForkStatus {
  return ibv.isForkInitialized();
}

/** Just the device names, without opening anything. No RDMA in the kernel or no device → []. */
export function listDeviceNames(): string[] {
  const list = deviceListOrNone();
  if (list === null) return [];
  using _list = list;
  return list.devices.map((d) => d.name);
}
