// The mlock backend: the locked_vm baseline. mlock raises VmLck and keeps pages resident, but pins
// nothing — mlocked pages can still migrate and are shared copy-on-write at fork.

import { MLOCK_ONFAULT, mlock2, munlock } from '../ffi/libc.js';
import type { BackendRegistration, MappedBuffer, RegistrationDetails } from './types.js';

export class MlockRegistration implements BackendRegistration<'mlock'> {
  readonly backend = 'mlock' as const;
  readonly addr: bigint;
  readonly length: number;
  readonly details: RegistrationDetails<'mlock'>;
  private isClosed = false;

  constructor(buffer: MappedBuffer, options: { onFault?: boolean } = {}) {
    this.addr = buffer.addr;
    this.length = buffer.length;
    const onFault = options.onFault ?? false;
    mlock2(this.addr, this.length, onFault ? MLOCK_ONFAULT : 0);
    this.details = { onFault };
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /**
   * The range was munmapped: the kernel dropped the lock with the mapping. close() must not munlock
   * the address again — it may hold a new mapping by now.
   */
  rangeUnmapped(): void {
    this.isClosed = true;
  }

  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    munlock(this.addr, this.length);
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
