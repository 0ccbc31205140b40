// libibverbs constants and enums, copied from <infiniband/verbs.h> (test/ffi/verbs-layout.test.ts
// compares every value with the installed header), plus pure value-to-name helpers.
// Declarations only: no koffi, so importing a constant does not load the FFI.


export const IBV_ACCESS_LOCAL_WRITE = 1;
export const IBV_ACCESS_REMOTE_WRITE = 1 << 1;
export const IBV_ACCESS_REMOTE_READ = 1 << 2;
export const IBV_ACCESS_REMOTE_ATOMIC = 1 << 3;
export const IBV_ACCESS_MW_BIND = 1 << 4;
export const IBV_ACCESS_ZERO_BASED = 1 << 5;
export const IBV_ACCESS_ON_DEMAND = 1 << 6;
export const IBV_ACCESS_HUGETLB = 1 << 7;
export const IBV_ACCESS_RELAXED_ORDERING = 1 << 20;

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

/** enum ibv_odp_general_caps */
export const IBV_ODP_SUPPORT = 1 << 0;
export const IBV_ODP_SUPPORT_IMPLICIT = 1 << 1;

/** enum ibv_odp_transport_cap_bits (FLUSH and ATOMIC_WRITE since rdma-core 58; kernels set them before that). */
export const IBV_ODP_SUPPORT_SEND = 1 << 0;
export const IBV_ODP_SUPPORT_RECV = 1 << 1;
export const IBV_ODP_SUPPORT_WRITE = 1 << 2;
export const IBV_ODP_SUPPORT_READ = 1 << 3;
export const IBV_ODP_SUPPORT_ATOMIC = 1 << 4;
export const IBV_ODP_SUPPORT_SRQ_RECV = 1 << 5;
export const IBV_ODP_SUPPORT_FLUSH = 1 << 6;
export const IBV_ODP_SUPPORT_ATOMIC_WRITE = 1 << 7;

/** One named bit of a capability mask: its value, its enumerator in verbs.h, and the word rdmactl prints. */
export interface CapBit {
  readonly value: number;
  readonly header: string;
  readonly name: string;
}

/** Every bit of enum ibv_odp_general_caps. */
export const ODP_GENERAL_CAP_BITS: readonly CapBit[] = [
  { value: IBV_ODP_SUPPORT, header: 'IBV_ODP_SUPPORT', name: 'odp' },
  { value: IBV_ODP_SUPPORT_IMPLICIT, header: 'IBV_ODP_SUPPORT_IMPLICIT', name: 'implicit' },
];

/** Every bit of enum ibv_odp_transport_cap_bits. */
export const ODP_TRANSPORT_CAP_BITS: readonly CapBit[] = [
  { value: IBV_ODP_SUPPORT_SEND, header: 'IBV_ODP_SUPPORT_SEND', name: 'send' },
  { value: IBV_ODP_SUPPORT_RECV, header: 'IBV_ODP_SUPPORT_RECV', name: 'recv' },
  { value: IBV_ODP_SUPPORT_WRITE, header: 'IBV_ODP_SUPPORT_WRITE', name: 'write' },
  { value: IBV_ODP_SUPPORT_READ, header: 'IBV_ODP_SUPPORT_READ', name: 'read' },
  { value: IBV_ODP_SUPPORT_ATOMIC, header: 'IBV_ODP_SUPPORT_ATOMIC', name: 'atomic' },
  { value: IBV_ODP_SUPPORT_SRQ_RECV, header: 'IBV_ODP_SUPPORT_SRQ_RECV', name: 'srq-recv' },
  { value: IBV_ODP_SUPPORT_FLUSH, header: 'IBV_ODP_SUPPORT_FLUSH', name: 'flush' },
  { value: IBV_ODP_SUPPORT_ATOMIC_WRITE, header: 'IBV_ODP_SUPPORT_ATOMIC_WRITE', name: 'atomic-write' },
];

/**
 * The set bits of a mask as words: the named ones in table order, then each bit the table does not
 * name as its own hex value (`0x100`), lowest first, so a newer kernel's capability is never dropped.
 */
export function capBitNames(mask: bigint | number, bits: readonly CapBit[]): string[] {
  let rest = BigInt.asUintN(64, BigInt(mask));
  const names: string[] = [];
  for (const bit of bits) {
    const value = BigInt(bit.value);
    if ((rest & value) !== 0n) {
      names.push(bit.name);
      rest &= ~value;
    }
  }
  for (let bit = 1n; rest !== 0n; bit <<= 1n) {
    if ((rest & bit) === 0n) continue;
    names.push(`0x${bit.toString(16)}`);
    rest &= ~bit;
  }
  return names;
}

/** ibv_odp_caps.general_caps (a 64-bit mask) as words. */
export function odpGeneralCapNames(caps: bigint | number): string[] {
  return capBitNames(caps, ODP_GENERAL_CAP_BITS);
}

/** rc/uc/ud_odp_caps (uint32_t) as words. */
export function odpTransportCapNames(caps: number): string[] {
  return capBitNames(caps >>> 0, ODP_TRANSPORT_CAP_BITS);
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
