// Struct layouts of <infiniband/verbs.h> as koffi types, the decoded shapes calls hand back, and
// the decoders that normalise them (byte order, 64-bit fields). test/ffi/verbs-layout.test.ts
// compiles a C program against the installed header and compares every size and offset declared here.

import koffi from 'koffi';
import type { Pointer } from '../libc.js';

const IBV_SYSFS_NAME_MAX = 64;
const IBV_SYSFS_PATH_MAX = 256;

// pthread_mutex_t is 40 bytes on x86-64 and 48 on aarch64 (glibc), 8-byte aligned on both.
const PTHREAD_MUTEX_WORDS = process.arch === 'arm64' ? 6 : 5;

export const IbvDeviceStruct = koffi.struct('rdmactl_ibv_device', {
  _ops_ctx: 'void *',
  _ops_free: 'void *',
  node_type: 'int',
  transport_type: 'int',
  name: koffi.array('char', IBV_SYSFS_NAME_MAX, 'String'),
  dev_name: koffi.array('char', IBV_SYSFS_NAME_MAX, 'String'),
  dev_path: koffi.array('char', IBV_SYSFS_PATH_MAX, 'String'),
  ibdev_path: koffi.array('char', IBV_SYSFS_PATH_MAX, 'String'),
});

export const IbvDeviceAttrStruct = koffi.struct('rdmactl_ibv_device_attr', {
  fw_ver: koffi.array('char', 64, 'String'),
  node_guid: 'uint64_t',
  sys_image_guid: 'uint64_t',
  max_mr_size: 'uint64_t',
  page_size_cap: 'uint64_t',
  vendor_id: 'uint32_t',
  vendor_part_id: 'uint32_t',
  hw_ver: 'uint32_t',
  max_qp: 'int',
  max_qp_wr: 'int',
  device_cap_flags: 'unsigned int',
  max_sge: 'int',
  max_sge_rd: 'int',
  max_cq: 'int',
  max_cqe: 'int',
  max_mr: 'int',
  max_pd: 'int',
  max_qp_rd_atom: 'int',
  max_ee_rd_atom: 'int',
  max_res_rd_atom: 'int',
  max_qp_init_rd_atom: 'int',
  max_ee_init_rd_atom: 'int',
  atomic_cap: 'int',
  max_ee: 'int',
  max_rdd: 'int',
  max_mw: 'int',
  max_raw_ipv6_qp: 'int',
  max_raw_ethy_qp: 'int',
  max_mcast_grp: 'int',
  max_mcast_qp_attach: 'int',
  max_total_mcast_qp_attach: 'int',
  max_ah: 'int',
  max_fmr: 'int',
  max_map_per_fmr: 'int',
  max_srq: 'int',
  max_srq_wr: 'int',
  max_srq_sge: 'int',
  max_pkeys: 'uint16_t',
  local_ca_ack_delay: 'uint8_t',
  phys_port_cnt: 'uint8_t',
});

export const IbvOdpCapsStruct = koffi.struct('rdmactl_ibv_odp_caps', {
  general_caps: 'uint64_t',
  per_transport_caps: koffi.struct('rdmactl_ibv_odp_per_transport_caps', {
    rc_odp_caps: 'uint32_t',
    uc_odp_caps: 'uint32_t',
    ud_odp_caps: 'uint32_t',
  }),
});

export const IbvTsoCapsStruct = koffi.struct('rdmactl_ibv_tso_caps', {
  max_tso: 'uint32_t',
  supported_qpts: 'uint32_t',
});

export const IbvRssCapsStruct = koffi.struct('rdmactl_ibv_rss_caps', {
  supported_qpts: 'uint32_t',
  max_rwq_indirection_tables: 'uint32_t',
  max_rwq_indirection_table_size: 'uint32_t',
  rx_hash_fields_mask: 'uint64_t',
  rx_hash_function: 'uint8_t',
});

export const IbvPacketPacingCapsStruct = koffi.struct('rdmactl_ibv_packet_pacing_caps', {
  qp_rate_limit_min: 'uint32_t',
  qp_rate_limit_max: 'uint32_t',
  supported_qpts: 'uint32_t',
});

export const IbvTmCapsStruct = koffi.struct('rdmactl_ibv_tm_caps', {
  max_rndv_hdr_size: 'uint32_t',
  max_num_tags: 'uint32_t',
  flags: 'uint32_t',
  max_ops: 'uint32_t',
  max_sge: 'uint32_t',
});

export const IbvCqModerationCapsStruct = koffi.struct('rdmactl_ibv_cq_moderation_caps', {
  max_cq_count: 'uint16_t',
  max_cq_period: 'uint16_t',
});

export const IbvPciAtomicCapsStruct = koffi.struct('rdmactl_ibv_pci_atomic_caps', {
  fetch_add: 'uint16_t',
  swap: 'uint16_t',
  compare_swap: 'uint16_t',
});

export const IbvDeviceAttrExStruct = koffi.struct('rdmactl_ibv_device_attr_ex', {
  orig_attr: IbvDeviceAttrStruct,
  comp_mask: 'uint32_t',
  odp_caps: IbvOdpCapsStruct,
  completion_timestamp_mask: 'uint64_t',
  hca_core_clock: 'uint64_t',
  device_cap_flags_ex: 'uint64_t',
  tso_caps: IbvTsoCapsStruct,
  rss_caps: IbvRssCapsStruct,
  max_wq_type_rq: 'uint32_t',
  packet_pacing_caps: IbvPacketPacingCapsStruct,
  raw_packet_caps: 'uint32_t',
  tm_caps: IbvTmCapsStruct,
  cq_mod_caps: IbvCqModerationCapsStruct,
  max_dm_size: 'uint64_t',
  pci_atomic_caps: IbvPciAtomicCapsStruct,
  xrc_odp_caps: 'uint32_t',
  phys_port_cnt_ex: 'uint32_t',
});

export const IbvPortAttrStruct = koffi.struct('rdmactl_ibv_port_attr', {
  state: 'int',
  max_mtu: 'int',
  active_mtu: 'int',
  gid_tbl_len: 'int',
  port_cap_flags: 'uint32_t',
  max_msg_sz: 'uint32_t',
  bad_pkey_cntr: 'uint32_t',
  qkey_viol_cntr: 'uint32_t',
  pkey_tbl_len: 'uint16_t',
  lid: 'uint16_t',
  sm_lid: 'uint16_t',
  lmc: 'uint8_t',
  max_vl_num: 'uint8_t',
  sm_sl: 'uint8_t',
  subnet_timeout: 'uint8_t',
  init_type_reply: 'uint8_t',
  active_width: 'uint8_t',
  active_speed: 'uint8_t',
  phys_state: 'uint8_t',
  link_layer: 'uint8_t',
  flags: 'uint8_t',
  port_cap_flags2: 'uint16_t',
});

export const IbvMrStruct = koffi.struct('rdmactl_ibv_mr', {
  context: 'void *',
  pd: 'void *',
  addr: 'void *',
  length: 'size_t',
  handle: 'uint32_t',
  lkey: 'uint32_t',
  rkey: 'uint32_t',
});

// pthread_cond_t is 48 bytes, 8-byte aligned, on x86-64 and aarch64 (glibc).
const PTHREAD_COND_WORDS = 6;

/** union ibv_gid: raw[16], or the same bytes as two __be64 (which make the union 8-byte aligned). */
export const IbvGidStruct = koffi.union('rdmactl_ibv_gid', {
  raw: koffi.array('uint8_t', 16, 'Typed'),
  global: koffi.struct('rdmactl_ibv_gid_global', { subnet_prefix: 'uint64_t', interface_id: 'uint64_t' }),
});

export const IbvGidEntryStruct = koffi.struct('rdmactl_ibv_gid_entry', {
  gid: IbvGidStruct,
  gid_index: 'uint32_t',
  port_num: 'uint32_t',
  gid_type: 'uint32_t',
  ndev_ifindex: 'uint32_t',
});

export const IbvGlobalRouteStruct = koffi.struct('rdmactl_ibv_global_route', {
  dgid: IbvGidStruct,
  flow_label: 'uint32_t',
  sgid_index: 'uint8_t',
  hop_limit: 'uint8_t',
  traffic_class: 'uint8_t',
});

export const IbvAhAttrStruct = koffi.struct('rdmactl_ibv_ah_attr', {
  grh: IbvGlobalRouteStruct,
  dlid: 'uint16_t',
  sl: 'uint8_t',
  src_path_bits: 'uint8_t',
  static_rate: 'uint8_t',
  is_global: 'uint8_t',
  port_num: 'uint8_t',
});

export const IbvQpCapStruct = koffi.struct('rdmactl_ibv_qp_cap', {
  max_send_wr: 'uint32_t',
  max_recv_wr: 'uint32_t',
  max_send_sge: 'uint32_t',
  max_recv_sge: 'uint32_t',
  max_inline_data: 'uint32_t',
});

export const IbvQpInitAttrStruct = koffi.struct('rdmactl_ibv_qp_init_attr', {
  qp_context: 'void *',
  send_cq: 'void *',
  recv_cq: 'void *',
  srq: 'void *',
  cap: IbvQpCapStruct,
  qp_type: 'int',
  sq_sig_all: 'int',
});

export const IbvQpAttrStruct = koffi.struct('rdmactl_ibv_qp_attr', {
  qp_state: 'int',
  cur_qp_state: 'int',
  path_mtu: 'int',
  path_mig_state: 'int',
  qkey: 'uint32_t',
  rq_psn: 'uint32_t',
  sq_psn: 'uint32_t',
  dest_qp_num: 'uint32_t',
  qp_access_flags: 'unsigned int',
  cap: IbvQpCapStruct,
  ah_attr: IbvAhAttrStruct,
  alt_ah_attr: IbvAhAttrStruct,
  pkey_index: 'uint16_t',
  alt_pkey_index: 'uint16_t',
  en_sqd_async_notify: 'uint8_t',
  sq_draining: 'uint8_t',
  max_rd_atomic: 'uint8_t',
  max_dest_rd_atomic: 'uint8_t',
  min_rnr_timer: 'uint8_t',
  port_num: 'uint8_t',
  timeout: 'uint8_t',
  retry_cnt: 'uint8_t',
  rnr_retry: 'uint8_t',
  alt_port_num: 'uint8_t',
  alt_timeout: 'uint8_t',
  rate_limit: 'uint32_t',
});

export const IbvSgeStruct = koffi.struct('rdmactl_ibv_sge', {
  addr: 'uint64_t',
  length: 'uint32_t',
  lkey: 'uint32_t',
});

export const IbvMwBindInfoStruct = koffi.struct('rdmactl_ibv_mw_bind_info', {
  mr: 'void *',
  addr: 'uint64_t',
  length: 'uint64_t',
  mw_access_flags: 'unsigned int',
});

/** The `wr` union of struct ibv_send_wr: rdma (READ/WRITE), atomic, ud. */
export const IbvSendWrWrUnion = koffi.union('rdmactl_ibv_send_wr_wr', {
  rdma: koffi.struct('rdmactl_ibv_send_wr_rdma', { remote_addr: 'uint64_t', rkey: 'uint32_t' }),
  atomic: koffi.struct('rdmactl_ibv_send_wr_atomic', { remote_addr: 'uint64_t', compare_add: 'uint64_t', swap: 'uint64_t', rkey: 'uint32_t' }),
  ud: koffi.struct('rdmactl_ibv_send_wr_ud', { ah: 'void *', remote_qpn: 'uint32_t', remote_qkey: 'uint32_t' }),
});

/**
 * struct ibv_send_wr. Its two anonymous unions are declared by their first member: `imm_data`
 * (imm_data / invalidate_rkey, both 32-bit) and `bind_mw` (the larger of bind_mw / tso).
 */
export const IbvSendWrStruct = koffi.struct('rdmactl_ibv_send_wr', {
  wr_id: 'uint64_t',
  next: 'void *',
  sg_list: 'void *',
  num_sge: 'int',
  opcode: 'int',
  send_flags: 'unsigned int',
  imm_data: 'uint32_t',
  wr: IbvSendWrWrUnion,
  qp_type: koffi.union('rdmactl_ibv_send_wr_qp_type', {
    xrc: koffi.struct('rdmactl_ibv_send_wr_xrc', { remote_srqn: 'uint32_t' }),
  }),
  bind_mw: koffi.struct('rdmactl_ibv_send_wr_bind_mw', { mw: 'void *', rkey: 'uint32_t', bind_info: IbvMwBindInfoStruct }),
});

/** struct ibv_wc; `imm_data` stands for its anonymous union (imm_data / invalidated_rkey). */
export const IbvWcStruct = koffi.struct('rdmactl_ibv_wc', {
  wr_id: 'uint64_t',
  status: 'int',
  opcode: 'int',
  vendor_err: 'uint32_t',
  byte_len: 'uint32_t',
  imm_data: 'uint32_t',
  qp_num: 'uint32_t',
  src_qp: 'uint32_t',
  wc_flags: 'unsigned int',
  pkey_index: 'uint16_t',
  slid: 'uint16_t',
  sl: 'uint8_t',
  dlid_path_bits: 'uint8_t',
});

export const IbvCqStruct = koffi.struct('rdmactl_ibv_cq', {
  context: 'void *',
  channel: 'void *',
  cq_context: 'void *',
  handle: 'uint32_t',
  cqe: 'int',
  mutex: koffi.array('uint64_t', PTHREAD_MUTEX_WORDS),
  cond: koffi.array('uint64_t', PTHREAD_COND_WORDS),
  comp_events_completed: 'uint32_t',
  async_events_completed: 'uint32_t',
});

export const IbvQpStruct = koffi.struct('rdmactl_ibv_qp', {
  context: 'void *',
  qp_context: 'void *',
  pd: 'void *',
  send_cq: 'void *',
  recv_cq: 'void *',
  srq: 'void *',
  handle: 'uint32_t',
  qp_num: 'uint32_t',
  state: 'int',
  qp_type: 'int',
  mutex: koffi.array('uint64_t', PTHREAD_MUTEX_WORDS),
  cond: koffi.array('uint64_t', PTHREAD_COND_WORDS),
  events_completed: 'uint32_t',
});

/** Field names of struct ibv_context_ops, in order (all function pointers). */
export const IBV_CONTEXT_OPS_FIELDS = [
  '_compat_query_device', '_compat_query_port', '_compat_alloc_pd', '_compat_dealloc_pd', '_compat_reg_mr',
  '_compat_rereg_mr', '_compat_dereg_mr', 'alloc_mw', 'bind_mw', 'dealloc_mw', '_compat_create_cq', 'poll_cq',
  'req_notify_cq', '_compat_cq_event', '_compat_resize_cq', '_compat_destroy_cq', '_compat_create_srq',
  '_compat_modify_srq', '_compat_query_srq', '_compat_destroy_srq', 'post_srq_recv', '_compat_create_qp',
  '_compat_query_qp', '_compat_modify_qp', '_compat_destroy_qp', 'post_send', 'post_recv', '_compat_create_ah',
  '_compat_destroy_ah', '_compat_attach_mcast', '_compat_detach_mcast', '_compat_async_event',
] as const;

export const IbvContextOpsStruct = koffi.struct(
  'rdmactl_ibv_context_ops',
  Object.fromEntries(IBV_CONTEXT_OPS_FIELDS.map((name) => [name, 'void *'])),
);

export const IbvContextStruct = koffi.struct('rdmactl_ibv_context', {
  device: 'void *',
  ops: IbvContextOpsStruct,
  cmd_fd: 'int',
  async_fd: 'int',
  num_comp_vectors: 'int',
  mutex: koffi.array('uint64_t', PTHREAD_MUTEX_WORDS),
  abi_compat: 'void *',
});

/**
 * Field names of struct verbs_context before its embedded `context`: function pointers, plus
 * `priv` (a pointer), `_ABI_placeholder3` (uint64_t) and `sz` (size_t). verbs_context "grows up":
 * libibverbs allocates it so that `struct ibv_context` (what the public API hands out) is its last
 * member, and the extended ops live at negative offsets from the ibv_context pointer.
 */
export const VERBS_CONTEXT_FIELDS = [
  'query_port', 'advise_mr', 'alloc_null_mr', 'read_counters', 'attach_counters_point_flow', 'create_counters',
  'destroy_counters', 'reg_dm_mr', 'alloc_dm', 'free_dm', 'modify_flow_action_esp', 'destroy_flow_action',
  'create_flow_action_esp', 'modify_qp_rate_limit', 'alloc_parent_domain', 'dealloc_td', 'alloc_td', 'modify_cq',
  'post_srq_ops', 'destroy_rwq_ind_table', 'create_rwq_ind_table', 'destroy_wq', 'modify_wq', 'create_wq',
  'query_rt_values', 'create_cq_ex', 'priv', 'query_device_ex', 'ibv_destroy_flow', 'ABI_placeholder2',
  'ibv_create_flow', 'ABI_placeholder1', 'open_qp', 'create_qp_ex', 'get_srq_num', 'create_srq_ex', 'open_xrcd',
  'close_xrcd',
] as const;

export const VerbsContextStruct = koffi.struct('rdmactl_verbs_context', {
  ...Object.fromEntries(VERBS_CONTEXT_FIELDS.map((name) => [name, 'void *'])),
  _ABI_placeholder3: 'uint64_t',
  sz: 'size_t',
  context: IbvContextStruct,
});

/** ctx->abi_compat holds this value when the context is embedded in a struct verbs_context. */
export const VERBS_ABI_IS_EXTENDED: Pointer = 0xffffffffffffffffn;

export interface IbvDeviceAttr {
  fw_ver: string;
  node_guid: bigint;
  sys_image_guid: bigint;
  max_mr_size: bigint;
  page_size_cap: bigint;
  vendor_id: number;
  vendor_part_id: number;
  hw_ver: number;
  max_qp: number;
  max_qp_wr: number;
  device_cap_flags: number;
  max_sge: number;
  max_cq: number;
  max_cqe: number;
  max_mr: number;
  max_pd: number;
  max_mw: number;
  max_srq: number;
  atomic_cap: number;
  max_pkeys: number;
  phys_port_cnt: number;
  [field: string]: string | number | bigint;
}

export interface IbvOdpCaps {
  general_caps: bigint;
  per_transport_caps: { rc_odp_caps: number; uc_odp_caps: number; ud_odp_caps: number };
}

export interface IbvDeviceAttrEx {
  orig_attr: IbvDeviceAttr;
  comp_mask: number;
  odp_caps: IbvOdpCaps;
  completion_timestamp_mask: bigint;
  hca_core_clock: bigint;
  device_cap_flags_ex: bigint;
  max_dm_size: bigint;
  xrc_odp_caps: number;
  phys_port_cnt_ex: number;
  [field: string]: unknown;
}

export interface IbvPortAttr {
  state: number;
  max_mtu: number;
  active_mtu: number;
  gid_tbl_len: number;
  port_cap_flags: number;
  max_msg_sz: number;
  pkey_tbl_len: number;
  lid: number;
  sm_lid: number;
  lmc: number;
  active_width: number;
  active_speed: number;
  phys_state: number;
  link_layer: number;
  flags: number;
  port_cap_flags2: number;
  [field: string]: number;
}

export interface IbvMr {
  context: Pointer;
  pd: Pointer;
  addr: Pointer;
  length: number;
  handle: number;
  lkey: number;
  rkey: number;
}

export interface IbvQpCap {
  max_send_wr: number;
  max_recv_wr: number;
  max_send_sge: number;
  max_recv_sge: number;
  max_inline_data: number;
}

export interface IbvQpInitAttr {
  qp_context?: Pointer | null;
  send_cq: Pointer;
  recv_cq: Pointer;
  srq?: Pointer | null;
  cap: IbvQpCap;
  qp_type: number;
  sq_sig_all?: number;
}

export interface IbvGlobalRoute {
  /** 16 bytes, network order. */
  dgid: { raw: Uint8Array };
  flow_label?: number;
  sgid_index: number;
  hop_limit: number;
  traffic_class?: number;
}

export interface IbvAhAttr {
  grh?: IbvGlobalRoute;
  dlid?: number;
  sl?: number;
  src_path_bits?: number;
  static_rate?: number;
  is_global: number;
  port_num: number;
}

/** The fields of struct ibv_qp_attr that ibv_modify_qp reads for the bits set in the mask; the rest may be left out (zero). */
export interface IbvQpAttr {
  qp_state?: number;
  cur_qp_state?: number;
  path_mtu?: number;
  path_mig_state?: number;
  qkey?: number;
  rq_psn?: number;
  sq_psn?: number;
  dest_qp_num?: number;
  qp_access_flags?: number;
  cap?: IbvQpCap;
  ah_attr?: IbvAhAttr;
  pkey_index?: number;
  max_rd_atomic?: number;
  max_dest_rd_atomic?: number;
  min_rnr_timer?: number;
  port_num?: number;
  timeout?: number;
  retry_cnt?: number;
  rnr_retry?: number;
}

/** The fields of struct ibv_qp that stay fixed after creation. */
export interface IbvQpInfo {
  context: Pointer;
  pd: Pointer;
  send_cq: Pointer;
  recv_cq: Pointer;
  handle: number;
  qp_num: number;
  state: number;
  qp_type: number;
}

export interface IbvGidEntry {
  gid: Uint8Array;
  gid_index: number;
  port_num: number;
  gid_type: number;
  ndev_ifindex: number;
}

/** One work request with one scatter/gather element (what post_send builds into native memory). */
export interface IbvSendWr {
  wr_id: bigint;
  opcode: number;
  send_flags: number;
  sge: { addr: Pointer; length: number; lkey: number };
  /** For RDMA READ/WRITE: the remote (responder's) address and rkey. */
  rdma?: { remote_addr: bigint; rkey: number };
}

export interface IbvWc {
  wr_id: bigint;
  status: number;
  opcode: number;
  vendor_err: number;
  byte_len: number;
  qp_num: number;
  src_qp: number;
  wc_flags: number;
}

// ---------------------------------------------------------------------------------------------
// Decoders

export function toBigInt(v: number | bigint): bigint {
  return typeof v === 'bigint' ? v : BigInt(v);
}

/** Byte-swap a 64-bit value: __be64 fields read on a little-endian host. */
export function be64ToHost(v: number | bigint): bigint {
  let x = BigInt.asUintN(64, toBigInt(v));
  if (!isLittleEndian) return x;
  let out = 0n;
  for (let i = 0; i < 8; i++) {
    out = (out << 8n) | (x & 0xffn);
    x >>= 8n;
  }
  return out;
}

const isLittleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** A node GUID as ibv_devices prints it: 0011:2233:4455:6677 (host order). */
export function formatGuid(hostOrder: bigint): string {
  const hex = hostOrder.toString(16).padStart(16, '0');
  return `${hex.slice(0, 4)}:${hex.slice(4, 8)}:${hex.slice(8, 12)}:${hex.slice(12, 16)}`;
}

export function normaliseU64Fields<T extends Record<string, unknown>>(obj: T, fields: readonly string[]): T {
  const rec = obj as Record<string, unknown>;
  for (const f of fields) {
    const v = rec[f];
    if (typeof v === 'number' || typeof v === 'bigint') rec[f] = toBigInt(v);
  }
  return obj;
}

export const ATTR_U64 = ['node_guid', 'sys_image_guid', 'max_mr_size', 'page_size_cap'] as const;
