// RDMA netlink (NETLINK_RDMA, the nldev interface) asked directly, for what iproute2 cannot tell:
// whether the kernel's RDMA_NLDEV_CMD_SYS_GET reply carries the copy-on-fork attribute at all
// (added in Linux 5.12). iproute2 prints "copy-on-fork off" when the attribute is missing, so on
// 5.10 its answer looks like "off" although the kernel said nothing. Parsers are pure; querySys is the I/O.

import { AF_NETLINK, MSG_DONTWAIT, NETLINK_RDMA, SOCK_CLOEXEC, SOCK_RAW, close, recv, send, socket } from '../ffi/libc.js';
import { SyscallError } from '../lib/errno.js';

// <rdma/rdma_netlink.h>: RDMA_NL_GET_TYPE(RDMA_NL_NLDEV = 5, RDMA_NLDEV_CMD_SYS_GET = 6).
const RDMA_NLDEV_SYS_GET_TYPE = (5 << 10) | 6;
export const RDMA_NLDEV_SYS_ATTR_NETNS_MODE = 66;
export const RDMA_NLDEV_SYS_ATTR_COPY_ON_FORK = 93;
// <linux/netlink.h>
const NLM_F_REQUEST = 0x1;
const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
const NLMSG_HDRLEN = 16;
const NLA_HDRLEN = 4;
const NLA_TYPE_MASK = 0x3fff; // without NLA_F_NESTED / NLA_F_NET_BYTEORDER

/** The SYS_GET request: a bare netlink header (the kernel's doit takes no attributes). */
export function sysGetRequest(seq: number): Buffer {
  const buf = Buffer.alloc(NLMSG_HDRLEN);
  buf.writeUInt32LE(NLMSG_HDRLEN, 0);
  buf.writeUInt16LE(RDMA_NLDEV_SYS_GET_TYPE, 4);
  buf.writeUInt16LE(NLM_F_REQUEST, 6);
  buf.writeUInt32LE(seq >>> 0, 8);
  return buf;
}

export type SysGetReply =
  | { ok: true; /** attribute type → payload */ attributes: Map<number, Buffer> }
  | { ok: false; errno: number };

/** The kernel's reply to sysGetRequest (host byte order: little-endian on the machines we run on). */
export function parseSysGetReply(buf: Buffer): SysGetReply {
  if (buf.length < NLMSG_HDRLEN) throw new Error(`RDMA netlink reply of ${buf.length} bytes is shorter than a header`);
  const len = Math.min(buf.readUInt32LE(0), buf.length);
  const type = buf.readUInt16LE(4);
  if (type === NLMSG_ERROR) return { ok: false, errno: -buf.readInt32LE(NLMSG_HDRLEN) };
  if (type === NLMSG_DONE || type !== RDMA_NLDEV_SYS_GET_TYPE) throw new Error(`unexpected RDMA netlink reply type ${type}`);
  const attributes = new Map<number, Buffer>();
  for (let off = NLMSG_HDRLEN; off + NLA_HDRLEN <= len; ) {
    const alen = buf.readUInt16LE(off);
    if (alen < NLA_HDRLEN || off + alen > len) break;
    attributes.set(buf.readUInt16LE(off + 2) & NLA_TYPE_MASK, buf.subarray(off + NLA_HDRLEN, off + alen));
    off += (alen + 3) & ~3;
  }
  return { ok: true, attributes };
}

/** What the reply says about copy-on-fork: on/off when the attribute is there, 'absent' when not. */
export function copyOnForkAttribute(reply: SysGetReply & { ok: true }): boolean | 'absent' {
  const value = reply.attributes.get(RDMA_NLDEV_SYS_ATTR_COPY_ON_FORK);
  return value === undefined || value.length < 1 ? 'absent' : value[0] !== 0;
}

/**
 * One SYS_GET round trip. The kernel answers NETLINK_RDMA requests inside send(), so the reply is
 * waiting when recv runs (MSG_DONTWAIT: never block). Throws SyscallError (e.g. EPROTONOSUPPORT
 * without RDMA support loaded) or Error for a reply it cannot read.
 */
export function querySys(): SysGetReply {
  const fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_RDMA);
  try {
    send(fd, sysGetRequest(1));
    const buf = Buffer.alloc(8192);
    const n = recv(fd, buf, MSG_DONTWAIT);
    return parseSysGetReply(buf.subarray(0, n));
  } finally {
    close(fd);
  }
}

/** querySys reduced to the copy-on-fork attribute; null when RDMA netlink could not be asked. */
export function readCopyOnForkAttribute(): boolean | 'absent' | null {
  try {
    const reply = querySys();
    return reply.ok ? copyOnForkAttribute(reply) : null;
  } catch (err) {
    if (err instanceof SyscallError) return null;
    throw err;
  }
}
