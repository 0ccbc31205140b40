// Verbs objects with lifetimes, in the spirit of pyverbs: DeviceList → Device → DeviceContext →
// ProtectionDomain → MemoryRegion. Each owner tracks its live children; close() is idempotent and
// closes live children first (MR before PD before context), so `using ctx = dev.open()` cleans up
// whatever was created under it, even when a later step threw.

import * as ibv from '../../ffi/verbs/index.js';
import { SyscallError } from '../../lib/errno.js';
import { formatAccessFlags } from './access.js';
import { EXIT, RdmactlError, type ExitCode } from '../../lib/errors.js';
import { closeSync, constants as fsConstants, openSync } from 'node:fs';
import type { Pointer } from '../../ffi/libc.js';
import type { MappedBuffer, MemoryRegionDetails } from '../types.js';

/** Close every child (newest first), then run `release`; rethrow the first error after trying all. */
function closeAll(children: Set<{ close(): void }>, release: () => void): void {
  let first: unknown;
  for (const child of [...children].reverse()) {
    try {
      child.close();
    } catch (err) {
      first ??= err;
    }
  }
  children.clear();
  try {
    release();
  } catch (err) {
    first ??= err;
  }
  if (first !== undefined) throw first;
}

/**
 * One libibverbs object behind one native handle. close() is idempotent: the first call takes the
 * handle, tells the owner (which stops tracking this child), then releases it — after its own live
 * children, for owners. `Self` is the concrete class, handed to the owner's callback.
 */
abstract class NativeObject<Self> implements Disposable {
  #handle: Pointer | null;
  readonly #onClose: ((self: Self) => void) | null;

  protected constructor(handle: Pointer, onClose: ((self: Self) => void) | null) {
    this.#handle = handle;
    this.#onClose = onClose;
  }

  get closed(): boolean {
    return this.#handle === null;
  }

  get handle(): Pointer {
    if (this.#handle === null) throw new Error(this.closedMessage());
    return this.#handle;
  }

  /** Says which object was used after close(). */
  protected abstract closedMessage(): string;

  /** Frees the native object (and, for owners, their live children first). Runs once. */
  protected abstract release(handle: Pointer): void;

  close(): void {
    const handle = this.#handle;
    if (handle === null) return;
    this.#handle = null;
    this.#onClose?.(this as unknown as Self);
    this.release(handle);
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

export class DeviceList implements Disposable, Iterable<Device> {
  readonly devices: readonly Device[];
  #list: Pointer | null;

  /** ibv_get_device_list. Throws SyscallError (ENOSYS: the kernel has no RDMA support). */
  constructor() {
    const { list, devices } = ibv.getDeviceList();
    this.#list = list;
    this.devices = devices.map((ptr) => new Device(this, ptr));
  }

  get closed(): boolean {
    return this.#list === null;
  }

  find(name: string): Device | undefined {
    return this.devices.find((d) => d.name === name);
  }

  [Symbol.iterator](): Iterator<Device> {
    return this.devices[Symbol.iterator]();
  }

  /** ibv_free_device_list. Contexts opened from it stay valid; unopened Devices become unusable. */
  close(): void {
    if (this.#list === null) return;
    const list = this.#list;
    this.#list = null;
    ibv.freeDeviceList(list);
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

export function getDeviceList(): DeviceList {
  return new DeviceList();
}

export class Device {
  readonly list: DeviceList;
  readonly handle: Pointer;
  readonly name: string;
  /** Node GUID in host byte order. */
  readonly guid: bigint;
  readonly nodeType: number;
  readonly transportType: number;
  /** uverbs character device name, e.g. uverbs0. */
  readonly devName: string;

  constructor(list: DeviceList, handle: Pointer) {
    this.list = list;
    this.handle = handle;
    this.name = ibv.getDeviceName(handle);
    this.guid = ibv.getDeviceGuid(handle);
    const raw = ibv.readDevice(handle);
    this.nodeType = raw.node_type;
    this.transportType = raw.transport_type;
    this.devName = raw.dev_name;
  }

  get guidString(): string {
    return ibv.formatGuid(this.guid);
  }

  /** The character device libibverbs opens for it (/dev/infiniband/uverbsN); null when it names none. */
  get nodePath(): string | null {
    return this.devName ? `/dev/infiniband/${this.devName}` : null;
  }

  get nodeTypeName(): string {
    return ibv.nodeTypeStr(this.nodeType);
  }

  /**
   * ibv_open_device. A device node that does not open → DeviceOpenError with the node's own errno
   * (exit 4 for EACCES/EPERM); a refused device context (e.g. an rdma cgroup's hca_handle) → the SyscallError.
   */
  open(): DeviceContext {
    if (this.list.closed) throw new Error(`device ${this.name}: the device list was freed before the device was opened`);
    let handle: Pointer;
    try {
      handle = ibv.openDevice(this.handle);
    } catch (err) {
      if (!(err instanceof SyscallError)) throw err;
      const file = this.nodePath;
      const classified = classifyOpenFailure(err.errnoName, file, file === null ? null : openErrnoOf(file));
      if (classified.stage === 'context') throw err;
      throw deviceOpenError(this.name, classified, err);
    }
    return new DeviceContext(this, handle);
  }
}

/** Why ibv_open_device failed. */
export interface DeviceOpenFailure {
  device: string;
  /** The real errno: the device node's own when opening it fails, else the one ibv_open_device left. */
  errno: string;
  /** The character device libibverbs opens (/dev/infiniband/uverbsN); null when the device names none. */
  file: string | null;
  /** 'node': open(2) of the device node itself fails (permissions, a missing node); 'context': the node opens,
   * the kernel refused the device context (an rdma cgroup's hca_handle, a driver error). */
  stage: 'node' | 'context';
}

/**
 * The failure from ibv_open_device's errno and the errno of opening the node ourselves (null: it opens).
 * When open(2) of the node fails, libibverbs goes on to look for it under /dev/char and reports that
 * search's ENOENT, hiding the real EACCES: the node's own errno is the one that says why.
 */
export function classifyOpenFailure(libraryErrno: string, file: string | null, nodeErrno: string | null): Omit<DeviceOpenFailure, 'device'> {
  if (nodeErrno !== null) return { errno: nodeErrno, file, stage: 'node' };
  return { errno: libraryErrno, file, stage: 'context' };
}

/** An ibv_open_device failure with its classified cause (the permission exit status when the node refused us). */
export class DeviceOpenError extends RdmactlError {
  readonly failure: DeviceOpenFailure;
  constructor(failure: DeviceOpenFailure, message: string, hints: readonly string[], exitCode: ExitCode, cause: unknown) {
    super(message, exitCode, hints, { cause });
    this.name = 'DeviceOpenError';
    this.failure = failure;
  }
}

function deviceOpenError(device: string, classified: Omit<DeviceOpenFailure, 'device'>, cause: SyscallError): DeviceOpenError {
  const failure: DeviceOpenFailure = { device, ...classified };
  const denied = failure.errno === 'EACCES' || failure.errno === 'EPERM';
  return new DeviceOpenError(failure, `cannot open RDMA device ${device}: open ${failure.file}: ${failure.errno}`,
    denied ? [`check the permissions of ${failure.file} (usually group rdma, or a udev rule)`] : [],
    denied ? EXIT.PERMISSION : EXIT.FAILURE, cause);
}

/** errno name of open(2) O_RDWR of `file` (what libibverbs does), or null when it opens; the fd is closed at once. */
function openErrnoOf(file: string): string | null {
  try {
    closeSync(openSync(file, fsConstants.O_RDWR | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK));
    return null;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? 'EIO';
  }
}


/** Capability words (ODP_GENERAL_CAP_BITS / ODP_TRANSPORT_CAP_BITS names; a bit without a name as `0x…`). */
export interface OdpCaps {
  general: string[];
  rc: string[];
  uc: string[];
  ud: string[];
  /** IBV_ODP_SUPPORT is set. */
  supported: boolean;
}

export interface PortInfo {
  port: number;
  state: number;
  /** ibv_port_state_str, e.g. PORT_ACTIVE. */
  stateName: string;
  physState: number;
  /** Bytes (256…4096), 0 if unknown. */
  activeMtu: number;
  maxMtu: number;
  linkLayer: 'InfiniBand' | 'Ethernet' | 'unspecified';
  lid: number;
  gidTableLength: number;
}

export class DeviceContext extends NativeObject<DeviceContext> {
  readonly device: Device;
  readonly deviceName: string;
  readonly #pds = new Set<ProtectionDomain>();
  readonly #cqs = new Set<CompletionQueue>();

  constructor(device: Device, handle: Pointer) {
    super(handle, null);
    this.device = device;
    this.deviceName = device.name;
  }

  protected closedMessage(): string {
    return `context of ${this.deviceName} is closed`;
  }

  queryDevice(): ibv.IbvDeviceAttr {
    return ibv.queryDevice(this.handle);
  }

  /** Extended attributes, or null when the provider does not implement query_device_ex (ODP unknown). */
  queryDeviceEx(): ibv.IbvDeviceAttrEx | null {
    return ibv.queryDeviceEx(this.handle);
  }

  /** ODP capabilities as names, or null when unknown (no query_device_ex). */
  odpCaps(): OdpCaps | null {
    const ex = this.queryDeviceEx();
    if (ex === null) return null;
    // general_caps is 64 bits wide: keep every bit, so an unknown high one still shows.
    const general = BigInt.asUintN(64, ex.odp_caps.general_caps);
    const t = ex.odp_caps.per_transport_caps;
    return {
      general: ibv.odpGeneralCapNames(general),
      rc: ibv.odpTransportCapNames(t.rc_odp_caps),
      uc: ibv.odpTransportCapNames(t.uc_odp_caps),
      ud: ibv.odpTransportCapNames(t.ud_odp_caps),
      supported: (general & BigInt(ibv.IBV_ODP_SUPPORT)) !== 0n,
    };
  }

  queryPort(port: number): ibv.IbvPortAttr {
    return ibv.queryPort(this.handle, port);
  }

  /** Every port (1…phys_port_cnt), decoded for display. */
  ports(portCount = this.queryDevice().phys_port_cnt): PortInfo[] {
    const out: PortInfo[] = [];
    for (let port = 1; port <= portCount; port++) {
      const a = this.queryPort(port);
      out.push({
        port,
        state: a.state,
        stateName: ibv.portStateStr(a.state),
        physState: a.phys_state,
        activeMtu: ibv.mtuBytes(a.active_mtu),
        maxMtu: ibv.mtuBytes(a.max_mtu),
        linkLayer: a.link_layer === ibv.IBV_LINK_LAYER_ETHERNET ? 'Ethernet' : a.link_layer === ibv.IBV_LINK_LAYER_INFINIBAND ? 'InfiniBand' : 'unspecified',
        lid: a.lid,
        gidTableLength: a.gid_tbl_len,
      });
    }
    return out;
  }

  /** GID table entry `index` of `port` (16 bytes, network order). */
  queryGid(port: number, index: number): Uint8Array {
    return ibv.queryGid(this.handle, port, index);
  }

  /** GID table entry with its type (IB / RoCE v1 / RoCE v2); null when empty or not answerable. */
  queryGidEntry(port: number, index: number): ibv.IbvGidEntry | null {
    return ibv.queryGidEntry(this.handle, port, index);
  }

  /** ibv_create_cq (no completion channel: polled). */
  createCq(cqe = 16): CompletionQueue {
    const cq = new CompletionQueue(this, ibv.createCq(this.handle, cqe), (child) => this.#cqs.delete(child));
    this.#cqs.add(cq);
    return cq;
  }

  allocPd(): ProtectionDomain {
    const pd = new ProtectionDomain(this, ibv.allocPd(this.handle), (child) => this.#pds.delete(child));
    this.#pds.add(pd);
    return pd;
  }

  /**
   * Deallocates live PDs (and their QPs and MRs) first, then destroys live CQs (no QP uses them
   * any more), then ibv_close_device. Idempotent.
   */
  protected release(handle: Pointer): void {
    closeAll(this.#pds, () => closeAll(this.#cqs, () => ibv.closeDevice(handle)));
  }
}

export class ProtectionDomain extends NativeObject<ProtectionDomain> {
  readonly context: DeviceContext;
  readonly #mrs = new Set<MemoryRegion>();
  readonly #qps = new Set<QueuePair>();

  constructor(context: DeviceContext, handle: Pointer, onClose: (pd: ProtectionDomain) => void) {
    super(handle, onClose);
    this.context = context;
  }

  protected closedMessage(): string {
    return `protection domain on ${this.context.deviceName} is closed`;
  }

  /**
   * ibv_reg_mr over the whole buffer. Failures stay SyscallErrors: ENOMEM (RLIMIT_MEMLOCK or
   * pinned_vm), EFAULT/EACCES (local-write on a read-only mapping), EINVAL (bad flags, no ODP).
   */
  register(buffer: MappedBuffer, access: number): MemoryRegion {
    return this.registerRange(buffer.addr, buffer.length, access);
  }

  /** ibv_reg_mr over [addr, addr+length) of memory the caller keeps mapped. */
  registerRange(addr: Pointer, length: number, access: number): MemoryRegion {
    const mr = new MemoryRegion(this, ibv.regMr(this.handle, addr, length, access), access, (child) => this.#mrs.delete(child));
    this.#mrs.add(mr);
    return mr;
  }

  /** ibv_create_qp on this PD, sending and receiving through the given CQs (RC by default). */
  createQp(opts: QueuePairOptions): QueuePair {
    const { qp, cap } = ibv.createQp(this.handle, {
      send_cq: opts.sendCq.handle,
      recv_cq: (opts.recvCq ?? opts.sendCq).handle,
      cap: {
        max_send_wr: opts.maxSendWr ?? 16,
        max_recv_wr: opts.maxRecvWr ?? 1,
        max_send_sge: opts.maxSendSge ?? 1,
        max_recv_sge: opts.maxRecvSge ?? 1,
        max_inline_data: 0,
      },
      qp_type: opts.qpType ?? ibv.IBV_QPT_RC,
      sq_sig_all: 0,
    });
    const child = new QueuePair(this, qp, cap, opts.sendCq, (q) => this.#qps.delete(q));
    this.#qps.add(child);
    return child;
  }

  /** Destroys live QPs, then deregisters live MRs, then ibv_dealloc_pd. Idempotent. */
  protected release(handle: Pointer): void {
    closeAll(this.#qps, () => closeAll(this.#mrs, () => ibv.deallocPd(handle)));
  }
}

export class MemoryRegion extends NativeObject<MemoryRegion> {
  readonly backend = 'verbs' as const;
  readonly pd: ProtectionDomain;
  readonly addr: Pointer;
  readonly length: number;
  readonly lkey: number;
  readonly rkey: number;
  readonly access: number;
  readonly details: Readonly<MemoryRegionDetails>;

  constructor(pd: ProtectionDomain, handle: Pointer, access: number, onClose: (mr: MemoryRegion) => void) {
    super(handle, onClose);
    this.pd = pd;
    const raw = ibv.readMr(handle);
    this.addr = raw.addr;
    this.length = raw.length;
    this.lkey = raw.lkey;
    this.rkey = raw.rkey;
    this.access = access;
    this.details = Object.freeze({
      device: pd.context.deviceName,
      lkey: raw.lkey,
      rkey: raw.rkey,
      access,
      accessFlags: formatAccessFlags(access).join(','),
    });
  }

  protected closedMessage(): string {
    return `memory region lkey 0x${this.lkey.toString(16)} is deregistered`;
  }

  /** ibv_dereg_mr (unpins the pages). */
  protected release(handle: Pointer): void {
    ibv.deregMr(handle);
  }
}

export class CompletionQueue extends NativeObject<CompletionQueue> {
  readonly context: DeviceContext;

  constructor(context: DeviceContext, handle: Pointer, onClose: (cq: CompletionQueue) => void) {
    super(handle, onClose);
    this.context = context;
  }

  protected closedMessage(): string {
    return `completion queue on ${this.context.deviceName} is destroyed`;
  }

  /** ibv_poll_cq: up to `max` completions, possibly none (never blocks). */
  poll(max = 1): ibv.IbvWc[] {
    return ibv.pollCq(this.handle, max);
  }

  /** ibv_destroy_cq (EBUSY while a QP still uses it). */
  protected release(handle: Pointer): void {
    ibv.destroyCq(handle);
  }
}

export interface QueuePairOptions {
  sendCq: CompletionQueue;
  /** Defaults to sendCq. */
  recvCq?: CompletionQueue;
  /** IBV_QPT_*; default RC. */
  qpType?: number;
  maxSendWr?: number;
  maxRecvWr?: number;
  maxSendSge?: number;
  maxRecvSge?: number;
}

/** Where an RC QP's RTR transition sends: the remote QP and the path to it. */
export interface RemoteEndpoint {
  qpNum: number;
  port: number;
  /** enum ibv_mtu of the path. */
  pathMtu: number;
  /** Routed (RoCE: always): dgid and the local GID index to send from. */
  gid?: { dgid: Uint8Array; sgidIndex: number };
  /** InfiniBand without GRH: the destination LID. */
  dlid?: number;
  rqPsn?: number;
}

export class QueuePair extends NativeObject<QueuePair> {
  readonly pd: ProtectionDomain;
  readonly qpNum: number;
  /** Capabilities the provider granted. */
  readonly cap: ibv.IbvQpCap;
  readonly sendCq: CompletionQueue;

  constructor(pd: ProtectionDomain, handle: Pointer, cap: ibv.IbvQpCap, sendCq: CompletionQueue, onClose: (qp: QueuePair) => void) {
    super(handle, onClose);
    this.pd = pd;
    this.cap = cap;
    this.sendCq = sendCq;
    this.qpNum = ibv.readQp(handle).qp_num;
  }

  protected closedMessage(): string {
    return `queue pair 0x${this.qpNum.toString(16)} is destroyed`;
  }

  /** The state libibverbs last recorded (struct ibv_qp.state). */
  get state(): number {
    return ibv.readQp(this.handle).state;
  }

  modify(attr: ibv.IbvQpAttr, mask: number, detail?: string): void {
    ibv.modifyQp(this.handle, attr, mask, detail);
  }

  /** RESET → INIT on `port`, allowing the remote side the given IBV_ACCESS_REMOTE_* rights. */
  toInit(port: number, accessFlags: number): void {
    this.modify(
      { qp_state: ibv.IBV_QPS_INIT, pkey_index: 0, port_num: port, qp_access_flags: accessFlags },
      ibv.IBV_QP_STATE | ibv.IBV_QP_PKEY_INDEX | ibv.IBV_QP_PORT | ibv.IBV_QP_ACCESS_FLAGS,
      'RESET → INIT',
    );
  }

  /** INIT → RTR (RC): connect to `remote`. */
  toRtr(remote: RemoteEndpoint): void {
    const ah: ibv.IbvAhAttr = remote.gid
      ? { is_global: 1, port_num: remote.port, grh: { dgid: { raw: remote.gid.dgid }, sgid_index: remote.gid.sgidIndex, hop_limit: 1 } }
      : { is_global: 0, port_num: remote.port, dlid: remote.dlid ?? 0 };
    this.modify(
      {
        qp_state: ibv.IBV_QPS_RTR, path_mtu: remote.pathMtu, dest_qp_num: remote.qpNum, rq_psn: remote.rqPsn ?? 0,
        max_dest_rd_atomic: 1, min_rnr_timer: 12, ah_attr: ah,
      },
      ibv.IBV_QP_STATE | ibv.IBV_QP_AV | ibv.IBV_QP_PATH_MTU | ibv.IBV_QP_DEST_QPN | ibv.IBV_QP_RQ_PSN
        | ibv.IBV_QP_MAX_DEST_RD_ATOMIC | ibv.IBV_QP_MIN_RNR_TIMER,
      'INIT → RTR',
    );
  }

  /** RTR → RTS (RC). */
  toRts(sqPsn = 0): void {
    this.modify(
      { qp_state: ibv.IBV_QPS_RTS, timeout: 14, retry_cnt: 7, rnr_retry: 7, sq_psn: sqPsn, max_rd_atomic: 1 },
      ibv.IBV_QP_STATE | ibv.IBV_QP_TIMEOUT | ibv.IBV_QP_RETRY_CNT | ibv.IBV_QP_RNR_RETRY | ibv.IBV_QP_SQ_PSN | ibv.IBV_QP_MAX_QP_RD_ATOMIC,
      'RTR → RTS',
    );
  }

  /** ibv_post_send of one work request with one SGE. */
  postSend(wr: ibv.IbvSendWr): void {
    ibv.postSend(this.handle, wr);
  }

  /** ibv_destroy_qp. */
  protected release(handle: Pointer): void {
    ibv.destroyQp(handle);
  }
}
