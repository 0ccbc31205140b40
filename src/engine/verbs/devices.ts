// What `rdmactl devices` shows: every RDMA device with its limits, ports and ODP capabilities.

import * as ibv from '../../ffi/verbs/index.js';
import { SyscallError } from '../../lib/errno.js';
import { DeviceOpenError, getDeviceList, type Device, type DeviceList, type DeviceOpenFailure } from './objects.js';
import type { OdpCaps, PortInfo } from './objects.js';
import { isNoDeviceErrno } from './registration.js';

/**
 * One RDMA device as `rdmactl devices` shows it. A value that could not be read (the device did not
 * open, a query failed) is null, never 0, and `error` says why.
 */
export interface DeviceInfo {
  name: string;
  /** Node GUID, 0011:2233:4455:6677. */
  guid: string;
  /** ibv_node_type_str, e.g. "InfiniBand channel adapter". */
  nodeType: string;
  /** The character device libibverbs opens for it (/dev/infiniband/uverbsN); null when it names none. */
  node: string | null;
  /** ibv_query_device's fw_ver ('' when the driver reports none). */
  fwVersion: string | null;
  vendorId: number | null;
  vendorPartId: number | null;
  /** Every port, or null when the ports could not be queried. */
  ports: PortInfo[] | null;
  maxMr: number | null;
  /** Largest MR in bytes (2^64-1 on rxe: kept exact as bigint). */
  maxMrSize: bigint | null;
  /** Bitmask of supported page sizes. */
  pageSizeCap: bigint | null;
  maxQp: number | null;
  maxPd: number | null;
  /** null: unknown (the provider has no query_device_ex, or the device could not be queried). */
  odp: OdpCaps | null;
  /** ibv_is_fork_initialized for this process (library-wide, repeated per device). */
  fork: ibv.ForkStatus;
  /** Why the device could not be opened or fully queried (the values not read are null); null when all were read. */
  error: string | null;
  /** Why ibv_open_device failed (real errno, device node, stage); null when the device opened. */
  openFailure: DeviceOpenFailure | null;
}

/** What the device list says about a device without opening it. */
export interface ListedDevice {
  name: string;
  guid: string;
  nodeType: string;
  /** The character device libibverbs opens for it (/dev/infiniband/uverbsN); null when it names none. */
  node: string | null;
}

/** What opening and querying one device gave: each step's answer, null where it failed or was not reached. */
export interface DeviceReading {
  attr: ibv.IbvDeviceAttr | null;
  odp: OdpCaps | null;
  ports: PortInfo[] | null;
  /** The failure that stopped the reading, null when every step answered. */
  failure: unknown;
  /** Set when the failure was the open itself. */
  openFailure: DeviceOpenFailure | null;
}

/** The record of one device from its reading (pure: what was not read stays null). */
export function deviceInfo(listed: ListedDevice, fork: ibv.ForkStatus, reading: DeviceReading): DeviceInfo {
  const { attr } = reading;
  return {
    ...listed,
    fwVersion: attr?.fw_ver ?? null,
    vendorId: attr?.vendor_id ?? null,
    vendorPartId: attr?.vendor_part_id ?? null,
    ports: reading.ports,
    maxMr: attr?.max_mr ?? null,
    maxMrSize: attr?.max_mr_size ?? null,
    pageSizeCap: attr?.page_size_cap ?? null,
    maxQp: attr?.max_qp ?? null,
    maxPd: attr?.max_pd ?? null,
    odp: reading.odp,
    fork,
    error: reading.failure === null ? null : reading.failure instanceof Error ? reading.failure.message : String(reading.failure),
    openFailure: reading.openFailure,
  };
}

/** Opens the device and queries it step by step, keeping what answered before a failure. */
function readDevice(device: Device): DeviceReading {
  const reading: DeviceReading = { attr: null, odp: null, ports: null, failure: null, openFailure: null };
  let opened: ReturnType<Device['open']>;
  try {
    opened = device.open();
  } catch (err) {
    reading.failure = err;
    reading.openFailure = openFailureOf(device, err);
    return reading;
  }
  try {
    using ctx = opened;
    reading.attr = ctx.queryDevice();
    reading.odp = ctx.odpCaps();
    reading.ports = ctx.ports(reading.attr.phys_port_cnt);
  } catch (err) {
    reading.failure = err;
  }
  return reading;
}

/** What an error from Device.open() says about the open: a node that did not open, or a refused context. */
function openFailureOf(device: Device, err: unknown): DeviceOpenFailure | null {
  if (err instanceof DeviceOpenError) return err.failure;
  if (err instanceof SyscallError && err.call === 'ibv_open_device') {
    return { device: device.name, errno: err.errnoName, file: device.nodePath, stage: 'context' };
  }
  return null;
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
  return list.devices.map((device) =>
    deviceInfo({ name: device.name, guid: device.guidString, nodeType: device.nodeTypeName, node: device.nodePath }, fork, readDevice(device)));
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
