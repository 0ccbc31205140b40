// The registration engine's vocabulary: what a buffer is backed by, how it is registered, and the
// record a registration reports. Backends implement `Registration`; everything else composes them.

import type { Pointer } from '../ffi/libc.js';
import type { ForkStatus } from '../ffi/verbs/enums.js';

export type Backing = 'anon' | 'thp' | 'hugetlb' | 'memfd' | 'file-shared' | 'file-private';
export const BACKINGS: readonly Backing[] = ['anon', 'thp', 'hugetlb', 'memfd', 'file-shared', 'file-private'];

export type BackendName = 'verbs' | 'uring' | 'mlock';
export const BACKENDS: readonly BackendName[] = ['verbs', 'uring', 'mlock'];

/** What --backend accepts: a backend, or `auto` (verbs when an RDMA device exists, else uring). */
export type BackendChoice = BackendName | 'auto';

export type Protection = 'none' | 'dontfork' | 'wipeonfork' | 'fork-init';

/** A mapped range of memory that a backend registers. */
export interface MappedBuffer extends Disposable {
  readonly addr: Pointer;
  readonly length: number;
  readonly backing: Backing;
  readonly readOnly: boolean;
  /** The file behind a file-* backing, when there is one. */
  readonly path: string | null;
  /**
   * munmap the range now and mark it released; close() then never unmaps again — not even a new
   * mapping someone made at the same address since.
   */
  unmap?(): void;
  close(): void;
}

/** A verbs memory region's facts: the device, its keys, and the IBV_ACCESS_* bits (and their names). */
export interface MemoryRegionDetails {
  device: string;
  lkey: number;
  rkey: number;
  access: number;
  accessFlags: string;
}

/** What each backend reports about one registration; `reg --json` prints these keys in registrations[]. */
export interface RegistrationDetailsByBackend {
  /** Plus libibverbs' ibv_is_fork_initialized() after registering. */
  verbs: MemoryRegionDetails & { fork: ForkStatus };
  /** The ring's fd and how many fixed buffers it registered. */
  uring: { ringFd: number; fixedBuffers: number };
  /** Whether pages are locked as they fault in (MLOCK_ONFAULT) rather than all at once. */
  mlock: { onFault: boolean };
}

export type RegistrationDetails<B extends BackendName = BackendName> = Readonly<RegistrationDetailsByBackend[B]>;

/** One live registration of one range through backend B. `close()` releases it and is idempotent. */
export interface BackendRegistration<B extends BackendName> extends Disposable {
  readonly backend: B;
  readonly addr: Pointer;
  readonly length: number;
  readonly details: RegistrationDetails<B>;
  readonly closed: boolean;
  close(): void;
}

/** A registration through any backend; `backend` tells which details it carries. */
export type Registration = { [B in BackendName]: BackendRegistration<B> }[BackendName];

/**
 * A registration the kernel refused, with what else this process had charged to the same limit for it
 * that VmPin and VmLck do not show (io_uring: the memory of its rings), so an explanation adds up.
 */
export class RefusedRegistration extends Error {
  constructor(readonly refusal: unknown, readonly hiddenChargeBytes: number, readonly hiddenChargeWhat: string) {
    super(refusal instanceof Error ? refusal.message : String(refusal), { cause: refusal });
    this.name = 'RefusedRegistration';
  }
}
