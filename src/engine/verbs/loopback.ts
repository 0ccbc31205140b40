// An RC queue pair connected to itself: the smallest real RDMA data path. A signaled RDMA WRITE or
// READ posted on it is executed by the device (Soft-RoCE: the rxe driver) against the target MR
// through the pages that MR registered — the same way a remote peer's operation would reach it —
// and completes on the loopback's own CQ. The local side of each transfer is a small "bounce"
// buffer registered with local-write, owned by the connection.

import * as ibv from '../../ffi/verbs/index.js';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE, mmap, munmap, view, type Pointer } from '../../ffi/libc.js';
import { pageSize } from '../../proc/pagemap.js';
import type { CompletionQueue, MemoryRegion, ProtectionDomain, QueuePair } from './objects.js';

export interface LoopbackOptions {
  /** Port number (default 1). */
  port?: number;
  /** GID index to send from and to; chosen from the GID table when omitted (RoCE v2, IPv4-mapped first). */
  gidIndex?: number;
  /** Bytes of the bounce buffer (rounded up to pages; default 1 MiB). Longer transfers are split. */
  bounceLength?: number;
  /** How long to wait for each completion (default 10 s: Soft-RoCE under emulation is slow). */
  timeoutMs?: number;
  /**
   * Path MTU: 'active' (the port's active MTU, what a connection to a peer would use; default),
   * 'max' (the port's max MTU: fine for loopback, whose packets never reach the wire), or an
   * enum ibv_mtu value (1 = 256 … 5 = 4096).
   */
  pathMtu?: 'active' | 'max' | number;
}

/** A work completion with a status other than IBV_WC_SUCCESS. */
export class WorkCompletionError extends Error {
  readonly status: number;
  readonly statusName: string;
  readonly vendorErr: number;
  constructor(operation: string, wc: ibv.IbvWc, detail: string) {
    const statusName = ibv.wcStatusName(wc.status);
    super(`${operation} failed: ${statusName} (${ibv.wcStatusStr(wc.status)}, vendor error 0x${wc.vendor_err.toString(16)}) — ${detail}`);
    this.name = 'WorkCompletionError';
    this.status = wc.status;
    this.statusName = statusName;
    this.vendorErr = wc.vendor_err;
  }
}

/** A GID table choice for a routed (RoCE) connection. */
export interface GidChoice {
  index: number;
  gid: Uint8Array;
  /** 'RoCE v2', 'RoCE v1', 'IB' or 'unknown' (old libibverbs without ibv_query_gid_ex). */
  type: string;
}

const GID_TYPE_NAMES: Record<number, string> = {
  [ibv.IBV_GID_TYPE_IB]: 'IB',
  [ibv.IBV_GID_TYPE_ROCE_V1]: 'RoCE v1',
  [ibv.IBV_GID_TYPE_ROCE_V2]: 'RoCE v2',
};

function isZero(gid: Uint8Array): boolean {
  return gid.every((b) => b === 0);
}

/** ::ffff:a.b.c.d — the GID rxe derives from an IPv4 address of its netdev. */
export function isIpv4Mapped(gid: Uint8Array): boolean {
  return gid.slice(0, 10).every((b) => b === 0) && gid[10] === 0xff && gid[11] === 0xff;
}

export function formatGid(gid: Uint8Array): string {
  const words: string[] = [];
  for (let i = 0; i < 16; i += 2) words.push(((gid[i]! << 8) | gid[i + 1]!).toString(16).padStart(4, '0'));
  return words.join(':');
}

/**
 * The GID to use on a RoCE port: the first RoCE v2 entry with an IPv4-mapped address, else the first
 * RoCE v2 entry, else the first non-empty entry. Without ibv_query_gid_ex (no types), the first
 * non-empty IPv4-mapped entry, else the first non-empty one.
 */
export function chooseGid(pd: ProtectionDomain, port: number, tableLength: number): GidChoice {
  const ctx = pd.context;
  const candidates: Array<GidChoice & { score: number }> = [];
  const typed = ibv.hasQueryGidEx();
  for (let index = 0; index < Math.min(tableLength, 64); index++) {
    let gid: Uint8Array;
    let type = 'unknown';
    if (typed) {
      const entry = ctx.queryGidEntry(port, index);
      if (entry === null) continue;
      gid = entry.gid;
      type = GID_TYPE_NAMES[entry.gid_type] ?? `type ${entry.gid_type}`;
    } else {
      try {
        gid = ctx.queryGid(port, index);
      } catch {
        continue;
      }
    }
    if (isZero(gid)) continue;
    const score = (type === 'RoCE v2' ? 2 : 0) + (isIpv4Mapped(gid) ? 1 : 0);
    candidates.push({ index, gid, type, score });
  }
  const best = candidates.sort((a, b) => b.score - a.score || a.index - b.index)[0];
  if (!best) throw new Error(`${ctx.deviceName} port ${port}: the GID table has no usable entry (is the netdev up with an address?)`);
  return { index: best.index, gid: best.gid, type: best.type };
}

let nextWrId = 1n;

/** A CQ + RC QP on `pd`, connected to itself, with a bounce MR for the local side of each transfer. */
export class LoopbackConnection implements Disposable {
  readonly pd: ProtectionDomain;
  readonly cq: CompletionQueue;
  readonly qp: QueuePair;
  readonly port: number;
  /** The GID used (RoCE), or null on InfiniBand (LID routed). */
  readonly gid: GidChoice | null;
  /** Path MTU in bytes. */
  readonly mtu: number;
  readonly bounceAddr: Pointer;
  readonly bounceLength: number;
  readonly bounceMr: MemoryRegion;
  readonly timeoutMs: number;
  #closed = false;

  private constructor(parts: {
    pd: ProtectionDomain; cq: CompletionQueue; qp: QueuePair; port: number; gid: GidChoice | null; mtu: number;
    bounceAddr: Pointer; bounceLength: number; bounceMr: MemoryRegion; timeoutMs: number;
  }) {
    this.pd = parts.pd;
    this.cq = parts.cq;
    this.qp = parts.qp;
    this.port = parts.port;
    this.gid = parts.gid;
    this.mtu = parts.mtu;
    this.bounceAddr = parts.bounceAddr;
    this.bounceLength = parts.bounceLength;
    this.bounceMr = parts.bounceMr;
    this.timeoutMs = parts.timeoutMs;
  }

  /**
   * Create the CQ, the QP (RESET → INIT → RTR → RTS, its destination being itself) and the bounce
   * buffer + MR. Everything created is released again if a step fails.
   */
  static open(pd: ProtectionDomain, opts: LoopbackOptions = {}): LoopbackConnection {
    const port = opts.port ?? 1;
    const page = pageSize();
    const bounceLength = Math.ceil((opts.bounceLength ?? 1 << 20) / page) * page;
    const undo: Array<() => void> = [];
    try {
      const attr = pd.context.queryPort(port);
      if (attr.state !== 4 /* IBV_PORT_ACTIVE */) {
        throw new Error(`${pd.context.deviceName} port ${port} is ${ibv.portStateStr(attr.state)}, not PORT_ACTIVE`);
      }
      const roce = attr.link_layer === ibv.IBV_LINK_LAYER_ETHERNET;
      let gid: GidChoice | null = null;
      if (opts.gidIndex !== undefined) {
        gid = { index: opts.gidIndex, gid: pd.context.queryGid(port, opts.gidIndex), type: 'unknown' };
        const entry = ibv.hasQueryGidEx() ? pd.context.queryGidEntry(port, opts.gidIndex) : null;
        if (entry) gid.type = GID_TYPE_NAMES[entry.gid_type] ?? gid.type;
      } else if (roce) {
        gid = chooseGid(pd, port, attr.gid_tbl_len);
      }

      const cq = pd.context.createCq(16);
      undo.push(() => cq.close());
      const qp = pd.createQp({ sendCq: cq, maxSendWr: 16, maxRecvWr: 1 });
      undo.push(() => qp.close());
      qp.toInit(port, ibv.IBV_ACCESS_LOCAL_WRITE | ibv.IBV_ACCESS_REMOTE_WRITE | ibv.IBV_ACCESS_REMOTE_READ);
      const pathMtu = opts.pathMtu === undefined || opts.pathMtu === 'active' ? attr.active_mtu : opts.pathMtu === 'max' ? attr.max_mtu : opts.pathMtu;
      qp.toRtr({
        qpNum: qp.qpNum,
        port,
        pathMtu,
        ...(gid ? { gid: { dgid: gid.gid, sgidIndex: gid.index } } : { dlid: attr.lid }),
      });
      qp.toRts();

      const bounceAddr = mmap(bounceLength, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
      undo.push(() => munmap(bounceAddr, bounceLength));
      const bounceMr = pd.registerRange(bounceAddr, bounceLength, ibv.IBV_ACCESS_LOCAL_WRITE);
      undo.push(() => bounceMr.close());

      return new LoopbackConnection({
        pd, cq, qp, port, gid, mtu: ibv.mtuBytes(pathMtu), bounceAddr, bounceLength, bounceMr, timeoutMs: opts.timeoutMs ?? 10_000,
      });
    } catch (err) {
      for (const step of undo.reverse()) {
        try { step(); } catch { /* the first failure is the one to report */ }
      }
      throw err;
    }
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** One line for evidence: device, port, GID, QP number. */
  describe(): string {
    const route = this.gid ? `GID ${this.gid.index} ${this.gid.type} ${formatGid(this.gid.gid)}` : 'LID routed';
    return `${this.pd.context.deviceName} port ${this.port}, ${route}, QP 0x${this.qp.qpNum.toString(16)}, MTU ${this.mtu}`;
  }

  /** RDMA WRITE `length` bytes from local [localAddr] (in localMr) to remote [remoteAddr] (rkey). */
  rdmaWrite(localMr: { lkey: number }, localAddr: Pointer, remoteAddr: Pointer, rkey: number, length: number): void {
    this.#transfer('RDMA WRITE', ibv.IBV_WR_RDMA_WRITE, localMr, localAddr, remoteAddr, rkey, length);
  }

  /** RDMA READ `length` bytes from remote [remoteAddr] (rkey) into local [localAddr] (in localMr). */
  rdmaRead(localMr: { lkey: number }, localAddr: Pointer, remoteAddr: Pointer, rkey: number, length: number): void {
    this.#transfer('RDMA READ', ibv.IBV_WR_RDMA_READ, localMr, localAddr, remoteAddr, rkey, length);
  }

  /** RDMA WRITE of `bytes` to remoteAddr through the bounce buffer (split at its size). */
  writeBytes(bytes: Uint8Array, remoteAddr: Pointer, rkey: number): void {
    const bounce = view(this.bounceAddr, this.bounceLength);
    for (let done = 0; done < bytes.length; done += this.bounceLength) {
      const n = Math.min(this.bounceLength, bytes.length - done);
      bounce.set(bytes.subarray(done, done + n), 0);
      this.rdmaWrite(this.bounceMr, this.bounceAddr, remoteAddr + BigInt(done), rkey, n);
    }
  }

  /** RDMA READ of `length` bytes at remoteAddr through the bounce buffer; returns a copy. */
  readBytes(remoteAddr: Pointer, rkey: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    const bounce = view(this.bounceAddr, this.bounceLength);
    for (let done = 0; done < length; done += this.bounceLength) {
      const n = Math.min(this.bounceLength, length - done);
      this.rdmaRead(this.bounceMr, this.bounceAddr, remoteAddr + BigInt(done), rkey, n);
      out.set(bounce.subarray(0, n), done);
    }
    return out;
  }

  #transfer(operation: string, opcode: number, localMr: { lkey: number }, localAddr: Pointer, remoteAddr: Pointer, rkey: number, length: number): void {
    if (this.#closed) throw new Error('loopback connection is closed');
    const detail = `${length} bytes, local 0x${localAddr.toString(16)} lkey 0x${localMr.lkey.toString(16)}, remote 0x${remoteAddr.toString(16)} rkey 0x${rkey.toString(16)}`;
    const wrId = nextWrId++;
    this.qp.postSend({
      wr_id: wrId,
      opcode,
      send_flags: ibv.IBV_SEND_SIGNALED,
      sge: { addr: localAddr, length, lkey: localMr.lkey },
      rdma: { remote_addr: remoteAddr, rkey },
    });
    const wc = this.#waitCompletion(operation, wrId, detail);
    if (wc.status !== ibv.IBV_WC_SUCCESS) throw new WorkCompletionError(operation, wc, detail);
  }

  #waitCompletion(operation: string, wrId: bigint, detail: string): ibv.IbvWc {
    const deadline = performance.now() + this.timeoutMs;
    const nap = new Int32Array(new SharedArrayBuffer(4));
    let polls = 0;
    for (;;) {
      for (const wc of this.cq.poll(4)) {
        if (wc.wr_id === wrId) return wc;
        // A completion of an earlier request that timed out: drop it.
      }
      if (performance.now() > deadline) {
        throw new Error(`${operation}: no completion within ${this.timeoutMs} ms (${detail})`);
      }
      // Spin briefly, then yield the CPU: the device (a kernel thread for Soft-RoCE) needs it.
      if (++polls > 200) Atomics.wait(nap, 0, 0, 1);
    }
  }

  /** Destroys the QP, the CQ and the bounce MR, and unmaps the bounce buffer. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    let first: unknown;
    for (const step of [() => this.qp.close(), () => this.cq.close(), () => this.bounceMr.close(), () => munmap(this.bounceAddr, this.bounceLength)]) {
      try { step(); } catch (err) { first ??= err; }
    }
    if (first !== undefined) throw first;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
