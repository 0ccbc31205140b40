// What every registered range sets up and tears down, written once (the fork runner's rows and the
// scenario engine's rows): map a buffer of the row's backing, register it through the row's backend,
// open the backend's device path, and release all of it in the right order (device path →
// registration → anything the caller added → buffer) on every path. A caller that munmaps the range
// says so (unmap()), and the release then never touches the address again: not munlock, not munmap —
// a new mapping may live there by then.

import { allocateBuffer } from '../engine/buffer.js';
import { applyProtections, register } from '../engine/register.js';
import { MlockRegistration } from '../engine/mlock.js';
import type { Backing, MappedBuffer, Registration } from '../engine/types.js';
import { SyscallError } from '../lib/errno.js';
import { munmap } from '../ffi/libc.js';
import { PermissionError, RdmactlError, UnsupportedError, UsageError } from '../lib/errors.js';
import { devicePathFor, type DevicePath } from './devicePath.js';
import type { ForkBackend } from './matrix.js';
import type { EvidenceTarget } from './observe.js';

/**
 * What verbs rows register with: local-write, remote-write, remote-read — the device path's RDMA
 * WRITE needs remote-write and its RDMA READ remote-read. ctx.verbsAccess adds to it (on-demand).
 */
export const VERBS_SCENARIO_ACCESS = 7;

export interface SetupOptions {
  /** MADV_DONTFORK / MADV_WIPEONFORK before registering; ibv_fork_init() (verbs). */
  dontfork?: boolean;
  wipeonfork?: boolean;
  forkInit?: boolean;
  /** Map the buffer read-only (the registration then asks for what the backend asks for). */
  readOnly?: boolean;
  /** file-shared / file-private: this file instead of a temporary one. */
  file?: string | null;
  /** Replace the registration's device path (tests). */
  devicePath?: (registration: Registration) => DevicePath | null;
  /** Do not open a device path at all. */
  noDevicePath?: boolean;
}

/** One row's buffer, its registration (none for plain) and the device path, owned until release(). */
export class RegisteredRange {
  /** The device path, or null (then devicePathText says why). */
  device: DevicePath | null = null;
  /** The device path's name, or why there is none (ScenarioRow.devicePath). */
  devicePathText: string | null = null;
  private readonly extra: Array<() => void> = [];
  private unmappedRange = false;
  private released = false;

  constructor(readonly backend: ForkBackend, readonly buffer: MappedBuffer, readonly registration: Registration | null) {}

  get addr(): bigint { return this.buffer.addr; }
  get length(): number { return this.buffer.length; }
  get unmapped(): boolean { return this.unmappedRange; }

  /** evidence.observe()'s target for this process (after unmap(): an unmapped one). */
  target(): EvidenceTarget {
    return { pid: 'self', addr: this.buffer.addr, length: this.buffer.length, device: this.device, unmapped: this.unmappedRange };
  }

  /**
   * munmap the registered range now. The registration stays (whatever it pins stays pinned); release()
   * will neither munlock nor munmap this address again.
   */
  unmap(): void {
    if (this.unmappedRange) return;
    if (this.buffer.unmap) this.buffer.unmap();
    else munmap(this.buffer.addr, this.buffer.length);
    this.unmappedRange = true;
    // munmap dropped an mlock with the mapping; a later munlock could hit a new mapping at this address.
    if (this.registration instanceof MlockRegistration) this.registration.rangeUnmapped();
  }

  /**
   * Close the device path and open a fresh one on the same registration (a verbs QP that failed is in
   * the error state for good: a later check needs a new one). Returns the new path's failure, or null.
   */
  reopenDevice(): string | null {
    if (!this.registration || !this.device) return 'no device path to reopen';
    const old = this.device;
    this.device = null;
    old.close();
    const found = devicePathFor(this.registration);
    this.device = found.path;
    return found.unavailable;
  }

  /** Run `fn` at release, after the registration and before the buffer (e.g. unmap a second mapping). */
  defer(fn: () => void): void {
    this.extra.push(fn);
  }

  /** Release the registration only (the device path first), keeping the buffer. Idempotent. */
  releaseRegistration(): void {
    let failure: unknown;
    try { this.device?.close(); } catch (err) { failure = err; }
    try { this.registration?.close(); } catch (err) { failure ??= err; }
    if (failure !== undefined) throw failure;
  }

  /** Release everything, in order, trying every step; throws the first failure afterwards. Idempotent. */
  release(): void {
    if (this.released) return;
    this.released = true;
    releaseInOrder([() => this.releaseRegistration(), ...[...this.extra].reverse(), () => {
      if (this.unmappedRange && !this.buffer.unmap) return; // unmapped by hand and nothing else to drop
      this.buffer.close();
    }]);
  }

  [Symbol.dispose](): void {
    this.release();
  }
}

/**
 * Map `c.backing` (ctx.length bytes, rounded up), register it through `c.backend` (plain: not at all),
 * and open the device path. On any failure everything done so far is released before it throws.
 */
export async function setUpRange(c: { backend: ForkBackend; backing: Backing }, ctx: { length: number; verbsAccess: number }, options: SetupOptions = {}): Promise<RegisteredRange> {
  let range: RegisteredRange;
  if (c.backend === 'plain') {
    const buffer = allocateBuffer({ length: ctx.length, backing: c.backing, readOnly: options.readOnly ?? false, file: options.file ?? null });
    try {
      applyProtections(buffer, options);
    } catch (err) {
      buffer.close();
      throw err;
    }
    range = new RegisteredRange('plain', buffer, null);
  } else {
    const set = await register({
      length: ctx.length, backend: c.backend, backing: c.backing,
      readOnly: options.readOnly ?? false, file: options.file ?? null,
      dontfork: options.dontfork ?? false, wipeonfork: options.wipeonfork ?? false, forkInit: options.forkInit ?? false,
      ...(c.backend === 'verbs' ? { access: VERBS_SCENARIO_ACCESS | ctx.verbsAccess } : {}),
    });
    const first = set.registrations[0]!;
    range = new RegisteredRange(c.backend, first.buffer, first.registration);
  }
  if (range.registration && !options.noDevicePath) {
    try {
      if (options.devicePath) {
        range.device = options.devicePath(range.registration);
        range.devicePathText = range.device ? range.device.name : 'no device path';
      } else {
        const found = devicePathFor(range.registration);
        range.device = found.path;
        range.devicePathText = found.path ? found.path.name : found.unavailable;
      }
    } catch (err) {
      range.release();
      throw err;
    }
  } else if (!range.registration) {
    range.devicePathText = 'plain memory pins nothing: there is no device path';
  }
  return range;
}

/**
 * Runs every release step in order (null ones are skipped), past failures; throws the first failure
 * once all have run. Every row's clean-up goes through here.
 */
export function releaseInOrder(steps: ReadonlyArray<(() => unknown) | null | undefined>): void {
  let failure: unknown;
  let failed = false;
  for (const step of steps) {
    if (!step) continue;
    try {
      step();
    } catch (err) {
      if (!failed) failure = err;
      failed = true;
    }
  }
  if (failed) throw failure;
}

/**
 * Why a set-up failure is the machine's (no hugepages, io_uring disabled, over a limit, the kernel
 * refuses to pin this mapping): the skip reason, or null when it is a real failure.
 */
export function setupSkipReason(err: unknown): string | null {
  if (err instanceof UnsupportedError || err instanceof PermissionError || err instanceof UsageError) return err.message;
  if (err instanceof RdmactlError || err instanceof SyscallError) return `cannot set up here: ${err.message}`;
  if (err instanceof Error && err.name === 'RefusedRegistration') return `the kernel refused the registration: ${err.message}`;
  return null;
}
