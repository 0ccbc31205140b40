// What to do on a machine without an RDMA device: one text, used by the "no device" error and by
// `rdmactl devices` (which treats no device as a normal answer). No koffi here.

export const NO_DEVICE_HINTS: readonly string[] = [
  'Soft-RoCE turns any Ethernet interface into an RDMA device: modprobe rdma_rxe && rdma link add rxe0 type rxe netdev eth0',
  'that needs a kernel built with CONFIG_INFINIBAND, CONFIG_INFINIBAND_USER_ACCESS and CONFIG_RDMA_RXE',
  'without RDMA, rdmactl reg --backend uring pins memory the same long-term way (FOLL_LONGTERM) and --backend mlock locks it',
];
