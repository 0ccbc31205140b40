// The registration engine's front door: map buffers, apply fork protections, register them through
// one backend, and measure what the kernel charged (from /proc/self/status, before and after).
// Every step that succeeded is undone when a later one fails.

import { performance } from 'node:perf_hooks';
import { MADV_DONTFORK, MADV_WIPEONFORK, getpid, madvise } from '../ffi/libc.js';
import { SyscallError } from '../lib/errno.js';
import { UsageError } from '../lib/errors.js';
import { procPath } from '../proc/procfs.js';
import { readStatus } from '../proc/status.js';
import { allocateBuffer } from './buffer.js';
import { explainRegistrationFailure, readMemlockRlimit } from './limits.js';
import { MlockRegistration } from './mlock.js';
import { UringRegistration } from './uring.js';
import type { Backing, BackendName, MappedBuffer, Registration } from './types.js';

export interface RegisterOptions {
  /** Bytes per buffer (rounded up to the page size by the mapping). */
  length: number;
  backend: BackendName;
  backing?: Backing;
  file?: string | null;
  readOnly?: boolean;
  /** verbs: device name (default: the first device). */
  device?: string | null;
  /** verbs: IBV_ACCESS_* bits. */
  access?: number;
  /** mlock: MLOCK_ONFAULT. */
  onFault?: boolean;
  dontfork?: boolean;
  wipeonfork?: boolean;
  /** verbs: call ibv_fork_init() before registering. */
  forkInit?: boolean;
  /** Number of separate buffers, each registered on its own. */
  count?: number;
  /** Register each buffer twice: two handles over one range, with separate lifetimes. */
  overlap?: boolean;
}

export interface Accounting {
  /** VmPin: mm->pinned_vm. */
  pinnedBytes: number;
  /** VmLck: mm->locked_vm. */
  lockedBytes: number;
}

export interface TimedRegistration {
  registration: Registration;
  buffer: MappedBuffer;
  /** Wall time of the registration call itself. */
  elapsedMicros: number;
}

export function readAccounting(): Accounting {
  const status = readStatus('self');
  if (!status) throw new Error(`${procPath('self', 'status')} is missing: is /proc mounted?`);
  return { pinnedBytes: status.pinnedBytes, lockedBytes: status.lockedBytes };
}

/** A set of live registrations and their buffers. `close()` releases registrations, then buffers. */
export class RegistrationSet implements Disposable {
  readonly pid = getpid();
  readonly buffers: MappedBuffer[] = [];
  readonly registrations: TimedRegistration[] = [];
  before: Accounting = { pinnedBytes: 0, lockedBytes: 0 };
  after: Accounting = { pinnedBytes: 0, lockedBytes: 0 };
  /** RLIMIT_MEMLOCK soft limit in bytes; null = unlimited. */
  memlockLimitBytes: number | null = null;
  private isClosed = false;

  constructor(readonly options: Readonly<RegisterOptions>) {}

  get closed(): boolean {
    return this.isClosed;
  }

  /** Release everything (idempotent). Keeps going past failures. readAccounting() tells what is left. */
  close(): void {
    if (!this.isClosed) {
      this.isClosed = true;
      const failures: unknown[] = [];
      for (const { registration } of [...this.registrations].reverse()) {
        try { registration.close(); } catch (err) { failures.push(err); }
      }
      for (const buffer of [...this.buffers].reverse()) {
        try { buffer.close(); } catch (err) { failures.push(err); }
      }
      if (failures.length > 0) throw failures[0];
    }
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** MADV_DONTFORK / MADV_WIPEONFORK on the whole buffer, as asked. */
export function applyProtections(buffer: MappedBuffer, options: Pick<RegisterOptions, 'dontfork' | 'wipeonfork'>): void {
  try {
    if (options.dontfork) madvise(buffer.addr, buffer.length, MADV_DONTFORK);
    if (options.wipeonfork) madvise(buffer.addr, buffer.length, MADV_WIPEONFORK);
  } catch (err) {
    if (err instanceof SyscallError && err.errnoName === 'EINVAL' && options.wipeonfork) {
      throw new UsageError(`--wipeonfork needs private anonymous memory (backing anon or thp), not ${buffer.backing}`);
    }
    throw err;
  }
}

async function registerOne(buffer: MappedBuffer, options: RegisterOptions): Promise<Registration> {
  switch (options.backend) {
    case 'mlock':
      return new MlockRegistration(buffer, { onFault: options.onFault ?? false });
    case 'uring':
      return new UringRegistration(buffer);
    case 'verbs': {
      const { openVerbsRegistration } = await import('./verbs/index.js');
      return openVerbsRegistration({
        device: options.device ?? undefined,
        access: options.access ?? 0,
        buffer,
        forkInit: options.forkInit ?? false,
      });
    }
  }
}

export function validateOptions(options: RegisterOptions): void {
  if (options.forkInit && options.backend !== 'verbs') throw new UsageError('--fork-init applies to --backend verbs only (it calls ibv_fork_init)');
  if (options.onFault && options.backend !== 'mlock') throw new UsageError('--on-fault applies to --backend mlock only (it is MLOCK_ONFAULT)');
  if (options.file && options.backing !== 'file-shared' && options.backing !== 'file-private') {
    throw new UsageError('--file needs --backing file-shared or file-private');
  }
  if (options.backend !== 'verbs' && (options.device || options.access !== undefined)) {
    throw new UsageError(`--device and --access apply to --backend verbs only (backend is ${options.backend})`);
  }
}

/** Map, protect and register as asked. On any failure, everything done so far is released. */
export async function register(options: RegisterOptions): Promise<RegistrationSet> {
  validateOptions(options);
  const set = new RegistrationSet(options);
  try {
    set.memlockLimitBytes = readMemlockRlimit().soft;
    set.before = readAccounting();
    const count = options.count ?? 1;
    for (let i = 0; i < count; i++) {
      const buffer = allocateBuffer({
        length: options.length,
        backing: options.backing ?? 'anon',
        readOnly: options.readOnly ?? false,
        file: options.file ?? null,
      });
      set.buffers.push(buffer);
      applyProtections(buffer, options);
      for (let handle = 0; handle < (options.overlap ? 2 : 1); handle++) {
        const started = performance.now();
        let registration: Registration;
        try {
          registration = await registerOne(buffer, options);
        } catch (err) {
          throw explainRegistrationFailure(err, options.backend, buffer.length);
        }
        set.registrations.push({ registration, buffer, elapsedMicros: Math.round((performance.now() - started) * 1000) });
      }
    }
    set.after = readAccounting();
    return set;
  } catch (err) {
    try { set.close(); } catch { /* the original failure is what the user needs */ }
    throw err;
  }
}
