// io_uring through raw syscalls (no liburing): setup, fixed-buffer registration, and just enough of
// the submission/completion rings to run IORING_OP_READ_FIXED / WRITE_FIXED.
// Layouts follow include/uapi/linux/io_uring.h; syscall numbers 425–427 are the same on every arch.

import koffi from 'koffi';
import { SyscallError } from '../lib/errno.js';
import {
  MAP_POPULATE, MAP_SHARED, PROT_READ, PROT_WRITE, mmap, munmap, syscall, type Pointer,
} from './libc.js';
import { closeSync } from 'node:fs';

export const SYS_IO_URING_SETUP = 425;
export const SYS_IO_URING_ENTER = 426;
export const SYS_IO_URING_REGISTER = 427;

export const IORING_REGISTER_BUFFERS = 0;
export const IORING_UNREGISTER_BUFFERS = 1;

export const IORING_OP_READ_FIXED = 4;
export const IORING_OP_WRITE_FIXED = 5;

export const IORING_ENTER_GETEVENTS = 1;
export const IORING_FEAT_SINGLE_MMAP = 1;

const IORING_OFF_SQ_RING = 0;
const IORING_OFF_CQ_RING = 0x8000000;
const IORING_OFF_SQES = 0x10000000;

/** The kernel refuses a single fixed buffer larger than this (io_uring/rsrc.c). */
export const IORING_MAX_BUFFER_BYTES = 1024 * 1024 * 1024;
/** And more than this many buffers per ring. */
export const IORING_MAX_BUFFERS = 16384;

const SQE_BYTES = 64;
const CQE_BYTES = 16;

const SqOffsets = koffi.struct('rdmactl_io_sqring_offsets', {
  head: 'uint32_t', tail: 'uint32_t', ring_mask: 'uint32_t', ring_entries: 'uint32_t',
  flags: 'uint32_t', dropped: 'uint32_t', array: 'uint32_t', resv1: 'uint32_t', user_addr: 'uint64_t',
});
const CqOffsets = koffi.struct('rdmactl_io_cqring_offsets', {
  head: 'uint32_t', tail: 'uint32_t', ring_mask: 'uint32_t', ring_entries: 'uint32_t',
  overflow: 'uint32_t', cqes: 'uint32_t', flags: 'uint32_t', resv1: 'uint32_t', user_addr: 'uint64_t',
});
export const IoUringParams = koffi.struct('rdmactl_io_uring_params', {
  sq_entries: 'uint32_t', cq_entries: 'uint32_t', flags: 'uint32_t', sq_thread_cpu: 'uint32_t',
  sq_thread_idle: 'uint32_t', features: 'uint32_t', wq_fd: 'uint32_t', resv: koffi.array('uint32_t', 3),
  sq_off: SqOffsets, cq_off: CqOffsets,
});

const PARAMS_BYTES = koffi.sizeof(IoUringParams);

interface SqOff { head: number; tail: number; ring_mask: number; ring_entries: number; array: number }
interface CqOff { head: number; tail: number; ring_mask: number; ring_entries: number; cqes: number }
interface Params { sq_entries: number; cq_entries: number; features: number; sq_off: SqOff; cq_off: CqOff }

export interface FixedBuffer {
  addr: Pointer;
  length: number;
}

export interface Completion {
  userData: bigint;
  /** Bytes transferred, or -errno. */
  result: number;
}

interface MappedRings {
  ringAddr: Pointer;
  ringBytes: number;
  cqRingAddr: Pointer | null;
  cqRingBytes: number;
  sqesAddr: Pointer;
  sqesBytes: number;
  ring: DataView;
  cqRing: DataView;
  sqes: DataView;
}

/**
 * One io_uring instance: the fd, fixed-buffer registration, and (mapped on first use, since
 * registration alone does not need them) the submission and completion rings.
 */
export class IoUring {
  readonly fd: number;
  /** What io_uring_setup filled in; decoded on first use (mapping the rings, or sizing them after a refusal). */
  private readonly paramsBuf: Buffer;
  private decodedParams: Params | null = null;
  private rings: MappedRings | null = null;
  private closed = false;

  constructor(entries = 8) {
    this.paramsBuf = Buffer.alloc(PARAMS_BYTES);
    this.fd = syscall('io_uring_setup', SYS_IO_URING_SETUP, entries, koffi.address(this.paramsBuf));
  }

  // Decoding the nested struct costs about as much CPU as io_uring_setup itself, and registering
  // buffers (rdmactl's main use of a ring) never needs it.
  private get params(): Params {
    return (this.decodedParams ??= koffi.decode(this.paramsBuf, IoUringParams) as Params);
  }

  /** Bytes of the SQ/CQ rings and the SQE array, each rounded up to whole pages: the ring's own memory. */
  ringMemoryBytes(pageBytes: number): number {
    const { sq_off: sq, cq_off: cq } = this.params;
    const pages = (bytes: number): number => Math.ceil(bytes / pageBytes) * pageBytes;
    const sqBytes = sq.array + this.params.sq_entries * 4;
    const cqBytes = cq.cqes + this.params.cq_entries * CQE_BYTES;
    const single = (this.params.features & IORING_FEAT_SINGLE_MMAP) !== 0;
    const rings = single ? pages(Math.max(sqBytes, cqBytes)) : pages(sqBytes) + pages(cqBytes);
    return rings + pages(this.params.sq_entries * SQE_BYTES);
  }

  private mapRings(): MappedRings {
    if (this.rings) return this.rings;
    if (this.closed) throw new Error('io_uring is closed');
    const { sq_off: sq, cq_off: cq } = this.params;
    const sqBytes = sq.array + this.params.sq_entries * 4;
    const cqBytes = cq.cqes + this.params.cq_entries * CQE_BYTES;
    const single = (this.params.features & IORING_FEAT_SINGLE_MMAP) !== 0;
    const ringBytes = single ? Math.max(sqBytes, cqBytes) : sqBytes;
    const mapped: Array<[Pointer, number]> = [];
    const map = (bytes: number, offset: number): Pointer => {
      const addr = mmap(bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, this.fd, offset);
      mapped.push([addr, bytes]);
      return addr;
    };
    try {
      const ringAddr = map(ringBytes, IORING_OFF_SQ_RING);
      const cqRingAddr = single ? null : map(cqBytes, IORING_OFF_CQ_RING);
      const sqesBytes = this.params.sq_entries * SQE_BYTES;
      const sqesAddr = map(sqesBytes, IORING_OFF_SQES);
      const ring = new DataView(koffi.view(ringAddr, ringBytes));
      this.rings = {
        ringAddr, ringBytes, cqRingAddr, cqRingBytes: single ? 0 : cqBytes, sqesAddr, sqesBytes, ring,
        cqRing: cqRingAddr === null ? ring : new DataView(koffi.view(cqRingAddr, cqBytes)),
        sqes: new DataView(koffi.view(sqesAddr, sqesBytes)),
      };
      return this.rings;
    } catch (err) {
      for (const [addr, bytes] of mapped) munmap(addr, bytes);
      throw err;
    }
  }

  /** IORING_REGISTER_BUFFERS: pins every page of every buffer (FOLL_WRITE | FOLL_LONGTERM). */
  registerBuffers(buffers: readonly FixedBuffer[]): void {
    const iovecs = Buffer.alloc(16 * buffers.length);
    buffers.forEach((b, i) => {
      iovecs.writeBigUInt64LE(b.addr, i * 16);
      iovecs.writeBigUInt64LE(BigInt(b.length), i * 16 + 8);
    });
    syscall('io_uring_register', SYS_IO_URING_REGISTER, this.fd, IORING_REGISTER_BUFFERS, koffi.address(iovecs), buffers.length);
  }

  unregisterBuffers(): void {
    syscall('io_uring_register', SYS_IO_URING_REGISTER, this.fd, IORING_UNREGISTER_BUFFERS, null, 0);
  }

  /**
   * Run one fixed-buffer read or write on `fileFd` at `fileOffset` and wait for it.
   * READ_FIXED: the kernel writes into the registered buffer (the "device" writes memory).
   * WRITE_FIXED: the kernel reads the registered buffer (the "device" reads memory).
   */
  fixedIo(opcode: typeof IORING_OP_READ_FIXED | typeof IORING_OP_WRITE_FIXED, fileFd: number, addr: Pointer, length: number, bufIndex: number, fileOffset = 0): number {
    const { sq_off: sq } = this.params;
    const { ring, sqes } = this.mapRings();
    const tail = ring.getUint32(sq.tail, true);
    const mask = ring.getUint32(sq.ring_mask, true);
    const slot = tail & mask;
    const base = slot * SQE_BYTES;
    for (let i = 0; i < SQE_BYTES; i += 8) sqes.setBigUint64(base + i, 0n, true);
    sqes.setUint8(base + 0, opcode);
    sqes.setInt32(base + 4, fileFd, true);
    sqes.setBigUint64(base + 8, BigInt(fileOffset), true);
    sqes.setBigUint64(base + 16, addr, true);
    sqes.setUint32(base + 24, length, true);
    const userData = BigInt(tail) + 1n;
    sqes.setBigUint64(base + 32, userData, true);
    sqes.setUint16(base + 40, bufIndex, true);
    ring.setUint32(sq.array + slot * 4, slot, true);
    // The io_uring_enter syscall below orders this store before the kernel reads the tail.
    ring.setUint32(sq.tail, (tail + 1) >>> 0, true);
    syscall('io_uring_enter', SYS_IO_URING_ENTER, this.fd, 1, 1, IORING_ENTER_GETEVENTS, null, 0);
    const completion = this.reapOne();
    if (completion.result < 0) {
      throw new SyscallError(opcode === IORING_OP_READ_FIXED ? 'io_uring READ_FIXED' : 'io_uring WRITE_FIXED', -completion.result);
    }
    return completion.result;
  }

  private reapOne(): Completion {
    const { cq_off: cq } = this.params;
    const { cqRing } = this.mapRings();
    for (;;) {
      const head = cqRing.getUint32(cq.head, true);
      const tail = cqRing.getUint32(cq.tail, true);
      if (head !== tail) {
        const mask = cqRing.getUint32(cq.ring_mask, true);
        const base = cq.cqes + (head & mask) * CQE_BYTES;
        const completion = {
          userData: cqRing.getBigUint64(base, true),
          result: cqRing.getInt32(base + 8, true),
        };
        cqRing.setUint32(cq.head, (head + 1) >>> 0, true);
        return completion;
      }
      syscall('io_uring_enter', SYS_IO_URING_ENTER, this.fd, 0, 1, IORING_ENTER_GETEVENTS, null, 0);
    }
  }

  private unmapRings(): void {
    const rings = this.rings;
    this.rings = null;
    if (!rings) return;
    munmap(rings.sqesAddr, rings.sqesBytes);
    if (rings.cqRingAddr !== null) munmap(rings.cqRingAddr, rings.cqRingBytes);
    munmap(rings.ringAddr, rings.ringBytes);
  }

  /** Idempotent: unmaps the rings and closes the fd, which also releases any registered buffers. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.unmapRings();
    } finally {
      closeSync(this.fd);
    }
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
