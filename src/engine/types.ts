// The registration engine's vocabulary: what a buffer is backed by, how it is registered, and the
// record a registration reports. Backends implement `Registration`; everything else composes them.

import type { Pointer } from '../ffi/libc.js';

export type Backing = 'anon' | 'thp' | 'hugetlb' | 'memfd' | 'file-shared' | 'file-private';
export const BACKINGS: readonly Backing[] = ['anon', 'thp', 'hugetlb', 'memfd', 'file-shared', 'file-private'];

export type BackendName = 'verbs' | 'uring' | 'mlock';
export const BACKENDS: readonly BackendName[] = ['verbs', 'uring', 'mlock'];

export type Protection = 'none' | 'dontfork' | 'wipeonfork' | 'fork-init';

/** A mapped range of memory that a backend registers. */
export interface MappedBuffer extends Disposable {
  readonly addr: Pointer;
  readonly length: number;
  readonly backing: Backing;
  readonly readOnly: boolean;
  /** The file behind a file-* backing, when there is one. */
  readonly path: string | null;
  close(): void;
}

/** One live registration of one range through one backend. `close()` releases it and is idempotent. */
export interface Registration extends Disposable {
  readonly backend: BackendName;
  readonly addr: Pointer;
  readonly length: number;
  /** Backend-specific facts for the record (verbs: device, lkey, rkey; uring: ringFd, buffers). */
  readonly details: Readonly<Record<string, string | number | boolean | null>>;
  readonly closed: boolean;
  close(): void;
}

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
