// The io_uring backend: IORING_REGISTER_BUFFERS pins with FOLL_WRITE | FOLL_LONGTERM, the same
// long-term pin RDMA's ib_umem_get takes, so it shows RDMA-style pinning on any kernel.
// io_uring charges RLIMIT_MEMLOCK against the *user's* locked_vm and adds to the process's pinned_vm.

import { IORING_MAX_BUFFER_BYTES, IORING_MAX_BUFFERS, IoUring, type FixedBuffer } from '../ffi/io_uring.js';
import { UsageError } from '../lib/errors.js';
import { formatBytes } from '../lib/size.js';
import { pageSize } from '../proc/pagemap.js';
import { RefusedRegistration, type BackendRegistration, type MappedBuffer, type RegistrationDetails } from './types.js';

/** Split a range into pieces the kernel accepts (≤ 1 GiB each). */
export function splitFixedBuffers(addr: bigint, length: number, maxBytes = IORING_MAX_BUFFER_BYTES): FixedBuffer[] {
  const pieces: FixedBuffer[] = [];
  for (let offset = 0; offset < length; offset += maxBytes) {
    pieces.push({ addr: addr + BigInt(offset), length: Math.min(maxBytes, length - offset) });
  }
  return pieces;
}

export class UringRegistration implements BackendRegistration<'uring'> {
  readonly backend = 'uring' as const;
  readonly addr: bigint;
  readonly length: number;
  /** The ring that holds the buffers: its fixed-buffer I/O is this backend's "device" data path. */
  readonly ring: IoUring;
  readonly buffers: readonly FixedBuffer[];
  private isClosed = false;

  constructor(buffer: MappedBuffer) {
    this.addr = buffer.addr;
    this.length = buffer.length;
    this.buffers = splitFixedBuffers(buffer.addr, buffer.length);
    if (this.buffers.length > IORING_MAX_BUFFERS) {
      throw new UsageError(`${formatBytes(buffer.length)} needs ${this.buffers.length} io_uring buffers of at most 1 GiB; the kernel allows ${IORING_MAX_BUFFERS}`);
    }
    this.ring = new IoUring(8);
    try {
      this.ring.registerBuffers(this.buffers);
    } catch (err) {
      // Current kernels charge the ring's own memory to the user's locked memory too (seen on 6.18:
      // with an 8 MiB limit, 8 MiB − 8 KiB registers and 8 MiB does not), and no counter shows it.
      const ringBytes = this.ring.ringMemoryBytes(pageSize());
      this.ring.close();
      throw new RefusedRegistration(err, ringBytes, `the ring itself (${formatBytes(ringBytes)} of SQ/CQ rings and SQEs, which current kernels charge to the same per-user limit)`);
    }
  }

  get details(): RegistrationDetails<'uring'> {
    return { ringFd: this.ring.fd, fixedBuffers: this.buffers.length };
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** Index of the fixed buffer that holds `addr`, and the offset-adjusted address, for READ/WRITE_FIXED. */
  bufferIndexOf(addr: bigint): number {
    const index = this.buffers.findIndex((b) => addr >= b.addr && addr < b.addr + BigInt(b.length));
    if (index < 0) throw new RangeError(`address 0x${addr.toString(16)} is not inside this registration`);
    return index;
  }

  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    try {
      this.ring.unregisterBuffers();
    } finally {
      this.ring.close(); // closing the ring releases the pins even if unregister failed
    }
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
