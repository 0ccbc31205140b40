// RDMA netlink SYS_GET, parsed from reply bytes laid out as the kernel builds them
// (nlmsghdr, then u8 attributes padded to 4 bytes): 5.10 sends no copy-on-fork attribute, 5.12+ do.
import { describe, expect, it } from 'vitest';
import { RDMA_NLDEV_SYS_ATTR_COPY_ON_FORK, RDMA_NLDEV_SYS_ATTR_NETNS_MODE, copyOnForkAttribute, parseSysGetReply, sysGetRequest } from '../../src/rdma/nldev.js';

/** A SYS_GET reply with the given u8 attributes. */
function reply(attrs: Array<[number, number]>): Buffer {
  const body = Buffer.concat(attrs.map(([type, value]) => {
    const a = Buffer.alloc(8); // nla_len 5, padded to 8
    a.writeUInt16LE(5, 0);
    a.writeUInt16LE(type, 2);
    a[4] = value;
    return a;
  }));
  const head = Buffer.alloc(16);
  head.writeUInt32LE(16 + body.length, 0);
  head.writeUInt16LE((5 << 10) | 6, 4);
  head.writeUInt32LE(1, 8);
  return Buffer.concat([head, body]);
}

describe('RDMA netlink SYS_GET', () => {
  it('the request is a bare header of type RDMA_NL_GET_TYPE(NLDEV, SYS_GET) = 5126 with NLM_F_REQUEST', () => {
    const req = sysGetRequest(7);
    expect([...req]).toEqual([16, 0, 0, 0, 0x06, 0x14, 1, 0, 7, 0, 0, 0, 0, 0, 0, 0]);
  });

  it('a 5.10 reply (netns mode only): copy-on-fork absent — not "off" as iproute2 prints', () => {
    const r = parseSysGetReply(reply([[RDMA_NLDEV_SYS_ATTR_NETNS_MODE, 1]]));
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect([...r.attributes.keys()]).toEqual([RDMA_NLDEV_SYS_ATTR_NETNS_MODE]);
    expect(copyOnForkAttribute(r)).toBe('absent');
  });

  it('a 5.12+ reply: copy-on-fork on or off as the kernel says', () => {
    for (const [value, want] of [[1, true], [0, false]] as const) {
      const r = parseSysGetReply(reply([[RDMA_NLDEV_SYS_ATTR_NETNS_MODE, 1], [RDMA_NLDEV_SYS_ATTR_COPY_ON_FORK, value]]));
      expect(r.ok && copyOnForkAttribute(r)).toBe(want);
    }
  });

  it('an NLMSG_ERROR reply gives its errno; a truncated or foreign reply is an error, not a guess', () => {
    const err = Buffer.alloc(36);
    err.writeUInt32LE(36, 0);
    err.writeUInt16LE(2, 4);
    err.writeInt32LE(-95, 16);
    expect(parseSysGetReply(err)).toEqual({ ok: false, errno: 95 });
    expect(() => parseSysGetReply(Buffer.alloc(8))).toThrow(/shorter than a header/);
    const other = reply([]);
    other.writeUInt16LE(0x10, 4);
    expect(() => parseSysGetReply(other)).toThrow(/unexpected RDMA netlink reply type 16/);
  });
});
