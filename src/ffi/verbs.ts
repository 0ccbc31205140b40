// Typed bindings to libibverbs (rdma-core). Bindings only: no object lifetimes, no policy.
// The library is loaded on first use; a missing libibverbs.so.1 is an UnsupportedError.
//
// Error conventions differ per call (see verbs.h and the ibv_* man pages):
//  - calls returning a pointer return NULL and set errno  → SyscallError(call, koffi.errno())
//  - calls returning int return 0 or an errno value        → SyscallError(call, ret)
//    (a few return -1 and set errno instead; both forms are handled)
//
// Struct layouts mirror <infiniband/verbs.h>; test/ffi/verbs-layout.test.ts compiles a C program
// against the installed header and compares every size and offset declared here.

import koffi from 'koffi';
import { SyscallError } from './errno.js';
import { UnsupportedError, UsageError } from '../lib/errors.js';
import type { Pointer } from './libc.js';

export type { Pointer };

// ---------------------------------------------------------------------------------------------
// Constants

export const IBV_ACCESS_LOCAL_WRITE = 1;
export const IBV_ACCESS_REMOTE_WRITE = 1 << 1;
export const IBV_ACCESS_REMOTE_READ = 1 << 2;
export const IBV_ACCESS_REMOTE_ATOMIC = 1 << 3;
export const IBV_ACCESS_MW_BIND = 1 << 4;
export const IBV_ACCESS_ZERO_BASED = 1 << 5;
export const IBV_ACCESS_ON_DEMAND = 1 << 6;
export const IBV_ACCESS_HUGETLB = 1 << 7;
export const IBV_ACCESS_RELAXED_ORDERING = 1 << 20;

/** Command-line names of the access flags, in the order they are listed to users. */
export const ACCESS_FLAGS: Readonly<Record<string, number>> = {
  'local-write': IBV_ACCESS_LOCAL_WRITE,
  'remote-write': IBV_ACCESS_REMOTE_WRITE,
  'remote-read': IBV_ACCESS_REMOTE_READ,
  'remote-atomic': IBV_ACCESS_REMOTE_ATOMIC,
  'mw-bind': IBV_ACCESS_MW_BIND,
  'zero-based': IBV_ACCESS_ZERO_BASED,
  'on-demand': IBV_ACCESS_ON_DEMAND,
  hugetlb: IBV_ACCESS_HUGETLB,
  'relaxed-ordering': IBV_ACCESS_RELAXED_ORDERING,
};

/** "local-write,remote-read" → IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ. Empty string → 0. */
export function parseAccessFlags(spec: string): number {
  let flags = 0;
  for (const raw of spec.split(',')) {
    const name = raw.trim().toLowerCase();
    if (name === '') continue;
    const bit = ACCESS_FLAGS[name];
    if (bit === undefined) {
      throw new UsageError(`unknown access flag '${raw.trim()}'`, [`valid access flags: ${Object.keys(ACCESS_FLAGS).join(', ')}`]);
    }
    flags |= bit;
  }
  return flags;
}

/** IBV_ACCESS_* bits → their command-line names (unknown bits as hex). */
export function formatAccessFlags(access: number): string[] {
  const names: string[] = [];
  let rest = access;
  for (const [name, bit] of Object.entries(ACCESS_FLAGS)) {
    if (access & bit) {
      names.push(name);
      rest &= ~bit;
    }
  }
  if (rest !== 0) names.push(`0x${(rest >>> 0).toString(16)}`);
  return names;
}

export const IBV_FORK_DISABLED = 0;
export const IBV_FORK_ENABLED = 1;
export const IBV_FORK_UNNEEDED = 2;
export type ForkStatus = 'disabled' | 'enabled' | 'unneeded';

export function forkStatusName(status: number): ForkStatus {
  switch (status) {
    case IBV_FORK_ENABLED: return 'enabled';
    case IBV_FORK_UNNEEDED: return 'unneeded';
    default: return 'disabled';
  }
}

export const IBV_ODP_SUPPORT = 1 << 0;
export const IBV_ODP_SUPPORT_IMPLICIT = 1 << 1;

export const IBV_ODP_SUPPORT_SEND = 1 << 0;
export const IBV_ODP_SUPPORT_RECV = 1 << 1;
export const IBV_ODP_SUPPORT_WRITE = 1 << 2;
export const IBV_ODP_SUPPORT_READ = 1 << 3;
export const IBV_ODP_SUPPORT_ATOMIC = 1 << 4;
export const IBV_ODP_SUPPORT_SRQ_RECV = 1 << 5;

export function odpGeneralCapNames(caps: number): string[] {
  const names: string[] = [];
  if (caps & IBV_ODP_SUPPORT) names.push('odp');
  if (caps & IBV_ODP_SUPPORT_IMPLICIT) names.push('implicit');
  return names;
}

export function odpTransportCapNames(caps: number): string[] {
  const names: string[] = [];
  if (caps & IBV_ODP_SUPPORT_SEND) names.push('send');
  if (caps & IBV_ODP_SUPPORT_RECV) names.push('recv');
  if (caps & IBV_ODP_SUPPORT_WRITE) names.push('write');
  if (caps & IBV_ODP_SUPPORT_READ) names.push('read');
  if (caps & IBV_ODP_SUPPORT_ATOMIC) names.push('atomic');
  if (caps & IBV_ODP_SUPPORT_SRQ_RECV) names.push('srq-recv');
  return names;
}

export const IBV_LINK_LAYER_UNSPECIFIED = 0;
export const IBV_LINK_LAYER_INFINIBAND = 1;
export const IBV_LINK_LAYER_ETHERNET = 2;

/** enum ibv_mtu → bytes (0 when unknown). */
export function mtuBytes(mtu: number): number {
  return mtu >= 1 && mtu <= 5 ? 128 << mtu : 0;
}

/** enum ibv_qp_type */
export const IBV_QPT_RC = 2;
export const IBV_QPT_UC = 3;
export const IBV_QPT_UD = 4;

/** enum ibv_qp_state */
export const IBV_QPS_RESET = 0;
export const IBV_QPS_INIT = 1;
export const IBV_QPS_RTR = 2;
export const IBV_QPS_RTS = 3;
export const IBV_QPS_SQD = 4;
export const IBV_QPS_SQE = 5;
export const IBV_QPS_ERR = 6;

/** enum ibv_qp_attr_mask */
export const IBV_QP_STATE = 1 << 0;
export const IBV_QP_ACCESS_FLAGS = 1 << 3;
export const IBV_QP_PKEY_INDEX = 1 << 4;
export const IBV_QP_PORT = 1 << 5;
export const IBV_QP_AV = 1 << 7;
export const IBV_QP_PATH_MTU = 1 << 8;
export const IBV_QP_TIMEOUT = 1 << 9;
export const IBV_QP_RETRY_CNT = 1 << 10;
export const IBV_QP_RNR_RETRY = 1 << 11;
export const IBV_QP_RQ_PSN = 1 << 12;
export const IBV_QP_MAX_QP_RD_ATOMIC = 1 << 13;
export const IBV_QP_MIN_RNR_TIMER = 1 << 15;
export const IBV_QP_SQ_PSN = 1 << 16;
export const IBV_QP_MAX_DEST_RD_ATOMIC = 1 << 17;
export const IBV_QP_DEST_QPN = 1 << 20;

/** enum ibv_wr_opcode (the ones used here) */
export const IBV_WR_RDMA_WRITE = 0;
export const IBV_WR_SEND = 2;
export const IBV_WR_RDMA_READ = 4;

/** enum ibv_send_flags */
export const IBV_SEND_FENCE = 1 << 0;
export const IBV_SEND_SIGNALED = 1 << 1;
export const IBV_SEND_INLINE = 1 << 3;

/** enum ibv_wc_opcode (the ones used here) */
export const IBV_WC_RDMA_WRITE = 1;
export const IBV_WC_RDMA_READ = 2;

/** enum ibv_wc_status, by value: IBV_WC_SUCCESS = 0, IBV_WC_REM_ACCESS_ERR = 10, … */
export const IBV_WC_STATUS_NAMES: readonly string[] = [
  'IBV_WC_SUCCESS', 'IBV_WC_LOC_LEN_ERR', 'IBV_WC_LOC_QP_OP_ERR', 'IBV_WC_LOC_EEC_OP_ERR', 'IBV_WC_LOC_PROT_ERR',
  'IBV_WC_WR_FLUSH_ERR', 'IBV_WC_MW_BIND_ERR', 'IBV_WC_BAD_RESP_ERR', 'IBV_WC_LOC_ACCESS_ERR', 'IBV_WC_REM_INV_REQ_ERR',
  'IBV_WC_REM_ACCESS_ERR', 'IBV_WC_REM_OP_ERR', 'IBV_WC_RETRY_EXC_ERR', 'IBV_WC_RNR_RETRY_EXC_ERR',
  'IBV_WC_LOC_RDD_VIOL_ERR', 'IBV_WC_REM_INV_RD_REQ_ERR', 'IBV_WC_REM_ABORT_ERR', 'IBV_WC_INV_EECN_ERR',
  'IBV_WC_INV_EEC_STATE_ERR', 'IBV_WC_FATAL_ERR', 'IBV_WC_RESP_TIMEOUT_ERR', 'IBV_WC_GENERAL_ERR', 'IBV_WC_TM_ERR',
  'IBV_WC_TM_RNDV_INCOMPLETE',
];
export const IBV_WC_SUCCESS = 0;
export const IBV_WC_REM_ACCESS_ERR = 10;

export function wcStatusName(status: number): string {
  return IBV_WC_STATUS_NAMES[status] ?? `IBV_WC status ${status}`;
}

/** enum ibv_gid_type (struct ibv_gid_entry.gid_type) */
export const IBV_GID_TYPE_IB = 0;
export const IBV_GID_TYPE_ROCE_V1 = 1;
export const IBV_GID_TYPE_ROCE_V2 = 2;

// ---------------------------------------------------------------------------------------------
// Struct layouts (exported so the layout test can compare them with the C compiler's view)

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
// Decoded struct shapes

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

function toBigInt(v: number | bigint): bigint {
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

function normaliseU64Fields<T extends Record<string, unknown>>(obj: T, fields: readonly string[]): T {
  const rec = obj as Record<string, unknown>;
  for (const f of fields) {
    const v = rec[f];
    if (typeof v === 'number' || typeof v === 'bigint') rec[f] = toBigInt(v);
  }
  return obj;
}

const ATTR_U64 = ['node_guid', 'sys_image_guid', 'max_mr_size', 'page_size_cap'] as const;

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
