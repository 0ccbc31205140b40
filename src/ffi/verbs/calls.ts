// The libibverbs loader and the raw calls (rdma-core). Bindings only: no object lifetimes, no policy.
// The library is loaded on first use; a missing libibverbs.so.1 is an UnsupportedError.
//
// Error conventions differ per call (see verbs.h and the ibv_* man pages):
//  - calls returning a pointer return NULL and set errno  → SyscallError(call, koffi.errno())
//  - calls returning int return 0 or an errno value        → SyscallError(call, ret)
//    (a few return -1 and set errno instead; both forms are handled)

import koffi from 'koffi';
import { SyscallError } from '../../lib/errno.js';
import { UnsupportedError } from '../../lib/errors.js';
import type { Pointer } from '../libc.js';
import { type ForkStatus, forkStatusName, wcStatusName } from './enums.js';
import {
  ATTR_U64,
  IBV_CONTEXT_OPS_FIELDS,
  IbvContextOpsStruct,
  IbvContextStruct,
  IbvCqStruct,
  IbvDeviceAttrExStruct,
  IbvDeviceAttrStruct,
  IbvDeviceStruct,
  IbvGidEntryStruct,
  IbvGidStruct,
  IbvPortAttrStruct,
  IbvMrStruct,
  IbvQpAttrStruct,
  IbvQpInitAttrStruct,
  IbvQpStruct,
  IbvSendWrStruct,
  IbvSgeStruct,
  IbvWcStruct,
  VERBS_ABI_IS_EXTENDED,
  VERBS_CONTEXT_FIELDS,
  VerbsContextStruct,
  be64ToHost,
  normaliseU64Fields,
  toBigInt,
  type IbvDeviceAttr,
  type IbvDeviceAttrEx,
  type IbvGidEntry,
  type IbvMr,
  type IbvPortAttr,
  type IbvQpAttr,
  type IbvQpCap,
  type IbvQpInfo,
  type IbvQpInitAttr,
  type IbvSendWr,
  type IbvWc,
} from './structs.js';

// Function-pointer prototypes of the verbs_context ops we call.
const QueryDeviceExFn = koffi.proto('rdmactl_ibv_query_device_ex_fn', 'int', [
  'void *', 'void *', koffi.out(koffi.pointer(IbvDeviceAttrExStruct)), 'size_t',
]);
const QueryPortFn = koffi.proto('rdmactl_ibv_query_port_fn', 'int', [
  'void *', 'uint8_t', koffi.out(koffi.pointer(IbvPortAttrStruct)), 'size_t',
]);

// struct ibv_context_ops members behind verbs.h's static inlines ibv_post_send and ibv_poll_cq.
const PostSendFn = koffi.proto('rdmactl_ibv_post_send_fn', 'int', ['void *', 'void *', koffi.out(koffi.pointer('void *'))]);
const PollCqFn = koffi.proto('rdmactl_ibv_poll_cq_fn', 'int', ['void *', 'int', 'void *']);

// ---------------------------------------------------------------------------------------------
// Loading

interface Bindings {
  ibv_get_device_list: (num: number[]) => Pointer | null;
  ibv_free_device_list: (list: Pointer) => void;
  ibv_get_device_name: (device: Pointer) => string | null;
  ibv_get_device_guid: (device: Pointer) => number | bigint;
  ibv_open_device: (device: Pointer) => Pointer | null;
  ibv_close_device: (context: Pointer) => number;
  ibv_query_device: (context: Pointer, attr: Record<string, unknown>) => number;
  ibv_query_port: (context: Pointer, port: number, attr: Record<string, unknown>) => number;
  ibv_alloc_pd: (context: Pointer) => Pointer | null;
  ibv_dealloc_pd: (pd: Pointer) => number;
  ibv_reg_mr_iova2: (pd: Pointer, addr: Pointer, length: number, iova: bigint, access: number) => Pointer | null;
  ibv_dereg_mr: (mr: Pointer) => number;
  ibv_fork_init: () => number;
  ibv_is_fork_initialized: () => number;
  ibv_node_type_str: (type: number) => string | null;
  ibv_port_state_str: (state: number) => string | null;
  ibv_create_cq: (context: Pointer, cqe: number, cqContext: Pointer | null, channel: Pointer | null, compVector: number) => Pointer | null;
  ibv_destroy_cq: (cq: Pointer) => number;
  ibv_create_qp: (pd: Pointer, attr: Record<string, unknown>) => Pointer | null;
  ibv_destroy_qp: (qp: Pointer) => number;
  ibv_modify_qp: (qp: Pointer, attr: Record<string, unknown>, mask: number) => number;
  ibv_query_gid: (context: Pointer, port: number, index: number, gid: { raw?: Uint8Array }) => number;
  ibv_wc_status_str: (status: number) => string | null;
  /** rdma-core >= 32 (IBVERBS_1.11); null when this libibverbs lacks it. */
  _ibv_query_gid_ex: ((context: Pointer, port: number, index: number, entry: Record<string, unknown>, flags: number, size: number) => number) | null;
}

export const LIBIBVERBS = 'libibverbs.so.1';
const MISSING_LIBRARY = 'libibverbs is not installed: install rdma-core / libibverbs1 and ibverbs-providers (apt-get install libibverbs1 ibverbs-providers)';

let bindings: Bindings | undefined;

function optionalFunc<T>(declare: () => T): T | null {
  try {
    return declare();
  } catch {
    return null;
  }
}

function lib(): Bindings {
  if (bindings) return bindings;
  let ibv: ReturnType<typeof koffi.load>;
  try {
    ibv = koffi.load(LIBIBVERBS);
  } catch (err) {
    throw new UnsupportedError(MISSING_LIBRARY, [], { cause: err });
  }
  const attrPtr = koffi.out(koffi.pointer(IbvDeviceAttrStruct));
  const portPtr = koffi.out(koffi.pointer(IbvPortAttrStruct));
  bindings = {
    ibv_get_device_list: ibv.func('void *ibv_get_device_list(_Out_ int *num_devices)'),
    ibv_free_device_list: ibv.func('void ibv_free_device_list(void *list)'),
    ibv_get_device_name: ibv.func('const char *ibv_get_device_name(void *device)'),
    ibv_get_device_guid: ibv.func('uint64_t ibv_get_device_guid(void *device)'),
    ibv_open_device: ibv.func('void *ibv_open_device(void *device)'),
    ibv_close_device: ibv.func('int ibv_close_device(void *context)'),
    ibv_query_device: ibv.func('ibv_query_device', 'int', ['void *', attrPtr]),
    // The exported symbol takes the compat port struct (struct ibv_port_attr without the trailing
    // port_cap_flags2); verbs.h wraps it in an inline that prefers the verbs_context op. queryPort()
    // below does the same; this binding is the fallback.
    ibv_query_port: ibv.func('ibv_query_port', 'int', ['void *', 'uint8_t', portPtr]),
    ibv_alloc_pd: ibv.func('void *ibv_alloc_pd(void *context)'),
    ibv_dealloc_pd: ibv.func('int ibv_dealloc_pd(void *pd)'),
    // ibv_reg_mr is a header macro; the exported entry point underneath is ibv_reg_mr_iova2.
    ibv_reg_mr_iova2: ibv.func('void *ibv_reg_mr_iova2(void *pd, void *addr, size_t length, uint64_t iova, unsigned int access)'),
    ibv_dereg_mr: ibv.func('int ibv_dereg_mr(void *mr)'),
    ibv_fork_init: ibv.func('int ibv_fork_init()'),
    ibv_is_fork_initialized: ibv.func('int ibv_is_fork_initialized()'),
    ibv_node_type_str: ibv.func('const char *ibv_node_type_str(int node_type)'),
    ibv_port_state_str: ibv.func('const char *ibv_port_state_str(int port_state)'),
    ibv_create_cq: ibv.func('void *ibv_create_cq(void *context, int cqe, void *cq_context, void *channel, int comp_vector)'),
    ibv_destroy_cq: ibv.func('int ibv_destroy_cq(void *cq)'),
    // ibv_create_qp writes the capabilities it actually granted back into init_attr->cap.
    ibv_create_qp: ibv.func('ibv_create_qp', 'void *', ['void *', koffi.inout(koffi.pointer(IbvQpInitAttrStruct))]),
    ibv_destroy_qp: ibv.func('int ibv_destroy_qp(void *qp)'),
    ibv_modify_qp: ibv.func('ibv_modify_qp', 'int', ['void *', koffi.pointer(IbvQpAttrStruct), 'int']),
    ibv_query_gid: ibv.func('ibv_query_gid', 'int', ['void *', 'uint8_t', 'int', koffi.out(koffi.pointer(IbvGidStruct))]),
    ibv_wc_status_str: ibv.func('const char *ibv_wc_status_str(int status)'),
    _ibv_query_gid_ex: optionalFunc(() => ibv.func('_ibv_query_gid_ex', 'int', [
      'void *', 'uint32_t', 'uint32_t', koffi.out(koffi.pointer(IbvGidEntryStruct)), 'uint32_t', 'size_t',
    ])),
  };
  return bindings;
}

/** True when libibverbs.so.1 can be loaded (it loads it). */
export function isAvailable(): boolean {
  try {
    lib();
    return true;
  } catch {
    return false;
  }
}

// int-returning verbs return 0, or an errno value, or (older paths) -1 with errno set.
function checkInt(call: string, ret: number, detail?: string): void {
  if (ret === 0) return;
  const errno = ret > 0 ? ret : koffi.errno();
  throw new SyscallError(call, errno, detail);
}

function isNull(p: Pointer | null | undefined): boolean {
  return p === null || p === undefined || p === 0n;
}

// ---------------------------------------------------------------------------------------------
// Calls

/**
 * ibv_get_device_list: the device pointers (valid until ibv_free_device_list) and the list pointer.
 * Throws SyscallError (ENOSYS when the kernel has no RDMA support at all).
 */
export function getDeviceList(): { list: Pointer; devices: Pointer[] } {
  const b = lib();
  const num = [0];
  const list = b.ibv_get_device_list(num);
  if (list === null || isNull(list)) throw new SyscallError('ibv_get_device_list', koffi.errno());
  const devices: Pointer[] = [];
  const count = num[0] ?? 0;
  for (let i = 0; i < count; i++) {
    const dev = koffi.decode(list, i * 8, 'void *') as Pointer | null;
    if (dev === null || isNull(dev)) break;
    devices.push(dev);
  }
  return { list, devices };
}

export function freeDeviceList(list: Pointer): void {
  lib().ibv_free_device_list(list);
}

export function getDeviceName(device: Pointer): string {
  const name = lib().ibv_get_device_name(device);
  if (name === null) throw new SyscallError('ibv_get_device_name', koffi.errno());
  return name;
}

/** ibv_get_device_guid, converted to host byte order. */
export function getDeviceGuid(device: Pointer): bigint {
  return be64ToHost(lib().ibv_get_device_guid(device));
}

/** struct ibv_device fields (node/transport type, sysfs names) read from the device pointer. */
export function readDevice(device: Pointer): { node_type: number; transport_type: number; name: string; dev_name: string; dev_path: string; ibdev_path: string } {
  return koffi.decode(device, IbvDeviceStruct);
}

export function nodeTypeStr(nodeType: number): string {
  return lib().ibv_node_type_str(nodeType) ?? 'unknown';
}

export function portStateStr(state: number): string {
  return lib().ibv_port_state_str(state) ?? 'unknown';
}

export function openDevice(device: Pointer): Pointer {
  const ctx = lib().ibv_open_device(device);
  if (ctx === null || isNull(ctx)) throw new SyscallError('ibv_open_device', koffi.errno());
  return ctx;
}

export function closeDevice(context: Pointer): void {
  checkInt('ibv_close_device', lib().ibv_close_device(context));
}

export function queryDevice(context: Pointer): IbvDeviceAttr {
  const attr: Record<string, unknown> = {};
  checkInt('ibv_query_device', lib().ibv_query_device(context, attr));
  return normaliseU64Fields(attr, ATTR_U64) as IbvDeviceAttr;
}

/**
 * The struct verbs_context around `context`, when libibverbs created an extended context
 * (abi_compat == __VERBS_ABI_IS_EXTENDED, as every provider since rdma-core v13 does). Null otherwise.
 */
export function verbsContextOf(context: Pointer): Pointer | null {
  const abi = koffi.decode(context, koffi.offsetof(IbvContextStruct, 'abi_compat'), 'void *') as Pointer | null;
  if (abi === null || BigInt.asUintN(64, abi) !== VERBS_ABI_IS_EXTENDED) return null;
  return context - BigInt(koffi.offsetof(VerbsContextStruct, 'context'));
}

/**
 * What verbs.h's verbs_get_ctx_op() does: the op's function pointer when the provider's
 * verbs_context is large enough to contain it and the op is set; null otherwise.
 */
export function verbsContextOp(context: Pointer, op: (typeof VERBS_CONTEXT_FIELDS)[number]): Pointer | null {
  const vctx = verbsContextOf(context);
  if (vctx === null) return null;
  const sz = Number(koffi.decode(vctx, koffi.offsetof(VerbsContextStruct, 'sz'), 'size_t') as number | bigint);
  const offset = koffi.offsetof(VerbsContextStruct, op);
  if (sz < koffi.sizeof(VerbsContextStruct) - offset) return null;
  const fn = koffi.decode(vctx, offset, 'void *') as Pointer | null;
  return fn === null || isNull(fn) ? null : fn;
}

const EOPNOTSUPP = 95;
const ENOSYS = 38;

/**
 * ibv_query_device_ex (a static inline in verbs.h): calls the provider's query_device_ex op.
 * Returns null when the context is not extended or the provider has no such op (the header would
 * fall back to plain ibv_query_device; callers should treat ODP as unknown then).
 */
export function queryDeviceEx(context: Pointer): IbvDeviceAttrEx | null {
  const fn = verbsContextOp(context, 'query_device_ex');
  if (fn === null) return null;
  const attr: Record<string, unknown> = {};
  const ret = koffi.call(fn, QueryDeviceExFn, context, null, attr, koffi.sizeof(IbvDeviceAttrExStruct)) as number;
  if (ret === EOPNOTSUPP || ret === ENOSYS) return null;
  checkInt('ibv_query_device_ex', ret);
  const ex = attr as unknown as IbvDeviceAttrEx;
  normaliseU64Fields(ex.orig_attr, ATTR_U64);
  normaliseU64Fields(ex, ['completion_timestamp_mask', 'hca_core_clock', 'device_cap_flags_ex', 'max_dm_size']);
  normaliseU64Fields(ex.odp_caps as unknown as Record<string, unknown>, ['general_caps']);
  return ex;
}

/** ibv_query_port as verbs.h's inline does it: the verbs_context op with the full struct, else the exported compat call. */
export function queryPort(context: Pointer, port: number): IbvPortAttr {
  const attr: Record<string, unknown> = {};
  const fn = verbsContextOp(context, 'query_port');
  if (fn !== null) {
    checkInt('ibv_query_port', koffi.call(fn, QueryPortFn, context, port, attr, koffi.sizeof(IbvPortAttrStruct)) as number, `port ${port}`);
  } else {
    checkInt('ibv_query_port', lib().ibv_query_port(context, port, attr), `port ${port}`);
  }
  return attr as IbvPortAttr;
}

export function allocPd(context: Pointer): Pointer {
  const pd = lib().ibv_alloc_pd(context);
  if (pd === null || isNull(pd)) throw new SyscallError('ibv_alloc_pd', koffi.errno());
  return pd;
}

export function deallocPd(pd: Pointer): void {
  checkInt('ibv_dealloc_pd', lib().ibv_dealloc_pd(pd));
}

/** ibv_reg_mr(pd, addr, length, access) — the header macro — is ibv_reg_mr_iova2 with iova = addr. */
export function regMr(pd: Pointer, addr: Pointer, length: number, access: number, iova: bigint = addr): Pointer {
  const mr = lib().ibv_reg_mr_iova2(pd, addr, length, iova, access >>> 0);
  if (mr === null || isNull(mr)) throw new SyscallError('ibv_reg_mr', koffi.errno(), `${length} bytes, access 0x${access.toString(16)}`);
  return mr;
}

export function readMr(mr: Pointer): IbvMr {
  const m = koffi.decode(mr, IbvMrStruct) as IbvMr & { length: number | bigint };
  return { ...m, length: Number(m.length) };
}

export function deregMr(mr: Pointer): void {
  checkInt('ibv_dereg_mr', lib().ibv_dereg_mr(mr));
}

/** ibv_fork_init: returns 0 or an errno value. Must run before the first registration to matter. */
export function forkInit(): void {
  checkInt('ibv_fork_init', lib().ibv_fork_init());
}

export function isForkInitialized(): ForkStatus {
  return forkStatusName(lib().ibv_is_fork_initialized());
}

// ---------------------------------------------------------------------------------------------
// Completion queues, queue pairs, GIDs, work requests

/** ibv_create_cq without a completion channel (polled only). */
export function createCq(context: Pointer, cqe: number): Pointer {
  const cq = lib().ibv_create_cq(context, cqe, null, null, 0);
  if (cq === null || isNull(cq)) throw new SyscallError('ibv_create_cq', koffi.errno(), `${cqe} entries`);
  return cq;
}

export function destroyCq(cq: Pointer): void {
  checkInt('ibv_destroy_cq', lib().ibv_destroy_cq(cq));
}

/** ibv_create_qp; returns the QP and the capabilities the provider granted. */
export function createQp(pd: Pointer, init: IbvQpInitAttr): { qp: Pointer; cap: IbvQpCap } {
  const attr: Record<string, unknown> = { qp_context: null, srq: null, sq_sig_all: 0, ...init, cap: { ...init.cap } };
  const qp = lib().ibv_create_qp(pd, attr);
  if (qp === null || isNull(qp)) throw new SyscallError('ibv_create_qp', koffi.errno(), `type ${init.qp_type}`);
  return { qp, cap: attr['cap'] as IbvQpCap };
}

export function destroyQp(qp: Pointer): void {
  checkInt('ibv_destroy_qp', lib().ibv_destroy_qp(qp));
}

/** ibv_modify_qp: fields the mask does not name are passed as zero. */
export function modifyQp(qp: Pointer, attr: IbvQpAttr, mask: number, detail?: string): void {
  checkInt('ibv_modify_qp', lib().ibv_modify_qp(qp, attr as Record<string, unknown>, mask), detail);
}

export function readQp(qp: Pointer): IbvQpInfo {
  const q = koffi.decode(qp, IbvQpStruct) as IbvQpInfo & Record<string, unknown>;
  return { context: q.context, pd: q.pd, send_cq: q.send_cq, recv_cq: q.recv_cq, handle: q.handle, qp_num: q.qp_num, state: q.state, qp_type: q.qp_type };
}

/** ibv_query_gid: the 16 GID bytes (network order) at `index`. */
export function queryGid(context: Pointer, port: number, index: number): Uint8Array {
  // An out-parameter union must be a koffi.Union instance (a plain object is refused).
  const UnionValue = koffi.Union as unknown as new (type: unknown) => { raw?: Uint8Array };
  const gid = new UnionValue(IbvGidStruct);
  checkInt('ibv_query_gid', lib().ibv_query_gid(context, port, index, gid), `port ${port} index ${index}`);
  return new Uint8Array(gid.raw ?? new Uint8Array(16));
}

/**
 * ibv_query_gid_ex (an inline over the exported _ibv_query_gid_ex): the GID entry with its type
 * (IB, RoCE v1, RoCE v2). Null when the entry is empty (ENODATA / EINVAL past the table) or when
 * this libibverbs predates the call.
 */
export function queryGidEntry(context: Pointer, port: number, index: number): IbvGidEntry | null {
  const fn = lib()._ibv_query_gid_ex;
  if (fn === null) return null;
  const entry: Record<string, unknown> = {};
  const ret = fn(context, port, index, entry, 0, koffi.sizeof(IbvGidEntryStruct));
  if (ret === 0) {
    const e = entry as unknown as Omit<IbvGidEntry, 'gid'> & { gid: { raw: Uint8Array } };
    return { ...e, gid: new Uint8Array(e.gid.raw) };
  }
  const errno = ret > 0 ? ret : koffi.errno();
  if (errno === 61 /* ENODATA */ || errno === 22 /* EINVAL */) return null;
  throw new SyscallError('ibv_query_gid_ex', errno, `port ${port} index ${index}`);
}

/** True when libibverbs has _ibv_query_gid_ex (GID types can be asked for). */
export function hasQueryGidEx(): boolean {
  return lib()._ibv_query_gid_ex !== null;
}

export function wcStatusStr(status: number): string {
  return lib().ibv_wc_status_str(status) ?? wcStatusName(status);
}

/** A function pointer of struct ibv_context_ops, as verbs.h's inlines read it (context->ops.NAME). */
function contextOp(context: Pointer, op: (typeof IBV_CONTEXT_OPS_FIELDS)[number], call: string): Pointer {
  const offset = koffi.offsetof(IbvContextStruct, 'ops') + koffi.offsetof(IbvContextOpsStruct, op);
  const fn = koffi.decode(context, offset, 'void *') as Pointer | null;
  if (fn === null || isNull(fn)) throw new SyscallError(call, EOPNOTSUPP, 'the provider has no such op');
  return fn;
}

/**
 * ibv_post_send (a static inline: qp->context->ops.post_send) of one work request with one SGE.
 * The WR and SGE are built in native memory for the duration of the call.
 */
export function postSend(qp: Pointer, wr: IbvSendWr): void {
  const context = koffi.decode(qp, koffi.offsetof(IbvQpStruct, 'context'), 'void *') as Pointer;
  const fn = contextOp(context, 'post_send', 'ibv_post_send');
  const sge = koffi.alloc(IbvSgeStruct, 1) as unknown as Pointer;
  const native = koffi.alloc(IbvSendWrStruct, 1) as unknown as Pointer;
  try {
    koffi.encode(sge, IbvSgeStruct, { addr: wr.sge.addr, length: wr.sge.length, lkey: wr.sge.lkey });
    koffi.encode(native, IbvSendWrStruct, {
      wr_id: wr.wr_id,
      next: null,
      sg_list: sge,
      num_sge: 1,
      opcode: wr.opcode,
      send_flags: wr.send_flags,
      imm_data: 0,
      wr: { rdma: { remote_addr: wr.rdma?.remote_addr ?? 0n, rkey: wr.rdma?.rkey ?? 0 } },
      qp_type: { xrc: { remote_srqn: 0 } },
      bind_mw: { mw: null, rkey: 0, bind_info: { mr: null, addr: 0, length: 0, mw_access_flags: 0 } },
    });
    const bad = [null];
    const ret = koffi.call(fn, PostSendFn, qp, native, bad) as number;
    checkInt('ibv_post_send', ret, `opcode ${wr.opcode}, ${wr.sge.length} bytes`);
  } finally {
    koffi.free(native as never);
    koffi.free(sge as never);
  }
}

/** ibv_poll_cq (a static inline: cq->context->ops.poll_cq): up to `max` completions, possibly none. */
export function pollCq(cq: Pointer, max = 1): IbvWc[] {
  const context = koffi.decode(cq, koffi.offsetof(IbvCqStruct, 'context'), 'void *') as Pointer;
  const fn = contextOp(context, 'poll_cq', 'ibv_poll_cq');
  const size = koffi.sizeof(IbvWcStruct);
  const wcs = koffi.alloc(IbvWcStruct, max) as unknown as Pointer;
  try {
    const n = koffi.call(fn, PollCqFn, cq, max, wcs) as number;
    if (n < 0) throw new SyscallError('ibv_poll_cq', n === -1 ? koffi.errno() : -n);
    const out: IbvWc[] = [];
    for (let i = 0; i < n; i++) {
      const w = koffi.decode(wcs, i * size, IbvWcStruct) as IbvWc & { wr_id: number | bigint };
      out.push({ wr_id: toBigInt(w.wr_id), status: w.status, opcode: w.opcode, vendor_err: w.vendor_err, byte_len: w.byte_len, qp_num: w.qp_num, src_qp: w.src_qp, wc_flags: w.wc_flags });
    }
    return out;
  } finally {
    koffi.free(wcs as never);
  }
}
