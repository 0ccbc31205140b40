// The "device's" view of registered memory, through the backend's own data path.
// uring: IORING_OP_WRITE_FIXED from the registered buffer to a memfd is the device reading memory;
// IORING_OP_READ_FIXED from a memfd into it is the device writing memory. Both go through the pages
// the kernel pinned at registration, not through the process's page tables — exactly like DMA.
// verbs: an RC QP connected to itself on the MR's own context and PD. RDMA WRITE from a bounce buffer
// into the MR is the device writing memory; RDMA READ from the MR into the bounce buffer is the device
// reading it. The device (Soft-RoCE: the rxe driver) reaches the MR through the pages it registered
// (or, for an on-demand MR, through the pages it faults in from the process's page tables now).

import { closeSync, readSync } from 'node:fs';
import { pwriteAll } from '../lib/writeAll.js';
import { IORING_OP_READ_FIXED, IORING_OP_WRITE_FIXED } from '../ffi/io_uring.js';
import { memfdCreate } from '../ffi/libc.js';
import { pageSize } from '../proc/pagemap.js';
import type { Registration } from '../engine/types.js';
import { UringRegistration } from '../engine/uring.js';
import { IBV_ACCESS_ON_DEMAND } from '../ffi/verbs/enums.js';
import { LoopbackConnection } from '../engine/verbs/loopback.js';
import { VerbsRegistration } from '../engine/verbs/registration.js';

export { pwriteAll } from '../lib/writeAll.js';

/** A device's access to one registration, by offset into the registered range. */
export interface DevicePath extends Disposable {
  /** Short description for evidence, e.g. "io_uring fixed buffer". */
  readonly name: string;
  /** The device writes `bytes` into registered memory at `offset` (DMA to host memory). */
  deviceWrite(bytes: Uint8Array, offset: number): void;
  /** The device reads `length` bytes of registered memory at `offset` (DMA from host memory). */
  deviceRead(offset: number, length: number): Uint8Array;
  close(): void;
}

/** Why a registration has no device path here, when it has none. */
export type DevicePathResult = { path: DevicePath; unavailable: null } | { path: null; unavailable: string };

export const VERBS_PATH_UNAVAILABLE = 'device data path not available (needs RDMA WRITE/READ over a loopback QP)';

/** The data path of `registration`'s backend, or why there is none. */
export function devicePathFor(registration: Registration): DevicePathResult {
  if (registration instanceof UringRegistration) return { path: new UringDevicePath(registration), unavailable: null };
  if (registration instanceof VerbsRegistration) {
    try {
      return { path: new VerbsDevicePath(registration), unavailable: null };
    } catch (err) {
      return { path: null, unavailable: `${VERBS_PATH_UNAVAILABLE}: ${err instanceof Error ? err.message : String(err)}` };
    }
  }
  if (registration.backend === 'verbs') return { path: null, unavailable: VERBS_PATH_UNAVAILABLE };
  return { path: null, unavailable: `${registration.backend} pins nothing: there is no device path` };
}

/** Largest bounce buffer a verbs device path allocates; longer transfers are split. */
const VERBS_BOUNCE_MAX = 1 << 20;

/** RDMA WRITE/READ between a bounce buffer and the registration's MR over a loopback RC QP. */
export class VerbsDevicePath implements DevicePath {
  readonly name: string;
  readonly connection: LoopbackConnection;

  private readonly onDemand: boolean;

  constructor(private readonly registration: VerbsRegistration) {
    // Path MTU = the port's max MTU: loopback packets never reach the wire, so the netdev's MTU does
    // not apply, and with page-sized packets every packet of a page-aligned transfer starts on a page
    // boundary (see deviceWrite for why that matters to on-demand MRs).
    this.connection = LoopbackConnection.open(registration.pd, { bounceLength: Math.min(registration.length, VERBS_BOUNCE_MAX), pathMtu: 'max' });
    this.onDemand = (registration.mr.access & IBV_ACCESS_ON_DEMAND) !== 0;
    this.name = `verbs RDMA WRITE/READ over a loopback RC QP (${this.connection.describe()}, ${this.onDemand ? 'on-demand MR' : 'pinned MR'})`;
  }

  private check(offset: number, length: number): void {
    if (offset < 0 || length < 0 || offset + length > this.registration.length) {
      throw new RangeError(`[${offset}, ${offset + length}) is outside the ${this.registration.length}-byte registration`);
    }
    // Soft-RoCE on Linux 7.2 drops the offset within the page for on-demand MRs: a packet aimed at
    // page + 1024 lands at page + 0 (seen in the lab for both WRITE and READ). Transfers that start
    // on a page boundary, with page-sized packets, are unaffected; refuse the others rather than
    // report a wrong answer.
    if (this.onDemand && (offset % pageSize() !== 0 || this.connection.mtu % pageSize() !== 0)) {
      throw new RangeError(`on-demand MR: device transfers must start on a page boundary with a page-sized path MTU (offset ${offset}, MTU ${this.connection.mtu})`);
    }
  }

  deviceWrite(bytes: Uint8Array, offset: number): void {
    this.check(offset, bytes.length);
    this.connection.writeBytes(bytes, this.registration.addr + BigInt(offset), this.registration.rkey);
  }

  deviceRead(offset: number, length: number): Uint8Array {
    this.check(offset, length);
    return this.connection.readBytes(this.registration.addr + BigInt(offset), this.registration.rkey, length);
  }

  close(): void {
    this.connection.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** io_uring fixed-buffer I/O between the registered buffer and two memfds. */
export class UringDevicePath implements DevicePath {
  readonly name = 'io_uring fixed buffer';
  private readonly source: number;
  private readonly sink: number;
  private isClosed = false;

  constructor(private readonly registration: UringRegistration) {
    this.source = memfdCreate('rdmactl-fork-device-src');
    try {
      this.sink = memfdCreate('rdmactl-fork-device-sink');
    } catch (err) {
      closeSync(this.source);
      throw err;
    }
  }

  /** Split [offset, offset+length) at fixed-buffer boundaries: one I/O per piece. */
  private pieces(offset: number, length: number): Array<{ addr: bigint; length: number; index: number; at: number }> {
    const out = [];
    let done = 0;
    while (done < length) {
      const addr = this.registration.addr + BigInt(offset + done);
      const index = this.registration.bufferIndexOf(addr);
      const buf = this.registration.buffers[index]!;
      const room = Number(buf.addr + BigInt(buf.length) - addr);
      const n = Math.min(room, length - done);
      out.push({ addr, length: n, index, at: done });
      done += n;
    }
    return out;
  }

  deviceWrite(bytes: Uint8Array, offset: number): void {
    pwriteAll(this.source, bytes);
    for (const p of this.pieces(offset, bytes.length)) {
      const n = this.registration.ring.fixedIo(IORING_OP_READ_FIXED, this.source, p.addr, p.length, p.index, p.at);
      if (n !== p.length) throw new Error(`io_uring READ_FIXED moved ${n} of ${p.length} bytes`);
    }
  }

  deviceRead(offset: number, length: number): Uint8Array {
    for (const p of this.pieces(offset, length)) {
      const n = this.registration.ring.fixedIo(IORING_OP_WRITE_FIXED, this.sink, p.addr, p.length, p.index, p.at);
      if (n !== p.length) throw new Error(`io_uring WRITE_FIXED moved ${n} of ${p.length} bytes`);
    }
    const out = Buffer.alloc(length);
    let got = 0;
    while (got < length) {
      const n = readSync(this.sink, out, got, length - got, got);
      if (n === 0) throw new Error(`device read came back short: ${got} of ${length} bytes`);
      got += n;
    }
    return out;
  }

  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    try { closeSync(this.source); } finally { closeSync(this.sink); }
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
