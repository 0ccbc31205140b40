// One verbs registration as the engine sees it: open a device, allocate a PD, register one buffer.
// The result owns all three and releases them MR → PD → context on close().

import * as ibv from '../../ffi/verbs/index.js';
import { SyscallError } from '../../lib/errno.js';
import { EXIT, RdmactlError, UnsupportedError } from '../../lib/errors.js';
import type { Pointer } from '../../ffi/libc.js';
import type { BackendRegistration, MappedBuffer, RegistrationDetails } from '../types.js';
import { DeviceContext, DeviceList, MemoryRegion, ProtectionDomain, getDeviceList } from './objects.js';
import { NO_DEVICE_HINTS } from './hints.js';

export interface VerbsRegistrationOptions {
  /** Device name (e.g. rxe0); the first device when omitted. */
  device?: string;
  /** IBV_ACCESS_* bits. */
  access: number;
  buffer: MappedBuffer;
  /** Call ibv_fork_init() before anything else touches libibverbs. */
  forkInit: boolean;
}

function describeListErrno(err: SyscallError): string {
  if (err.errnoName === 'ENOSYS') return 'the kernel has no RDMA support loaded (no /sys/class/infiniband_verbs)';
  return err.message;
}

/** The UnsupportedError for "this machine has no RDMA device", with the Soft-RoCE hint. */
export function noDeviceError(cause?: SyscallError): UnsupportedError {
  const why = cause ? `${cause.call}: ${cause.errnoName} — ${describeListErrno(cause)}` : 'ibv_get_device_list returned no devices';
  return new UnsupportedError(`no RDMA device found (${why})`, NO_DEVICE_HINTS, cause ? { cause } : undefined);
}

/** ibv_get_device_list errnos that mean "no devices" rather than a failure. */
export function isNoDeviceErrno(err: unknown): err is SyscallError {
  return err instanceof SyscallError && err.call === 'ibv_get_device_list' && (err.errnoName === 'ENOSYS' || err.errnoName === 'ENODEV');
}

/** getDeviceList(), turning "no RDMA in this kernel" into the UnsupportedError with hints. */
export function openDeviceListOrExplain(): DeviceList {
  try {
    return getDeviceList();
  } catch (err) {
    if (isNoDeviceErrno(err)) throw noDeviceError(err);
    throw err;
  }
}

let forkInitDone = false;

/**
 * ibv_fork_init() once per process. libibverbs refuses it (EINVAL) once any memory was registered
 * without it, even when the kernel copies pinned pages at fork and it would be unneeded; a second
 * call after our own successful one would hit the same check, so it is remembered here.
 */
export function ensureForkInit(): ibv.ForkStatus {
  if (!forkInitDone) {
    try {
      ibv.forkInit();
    } catch (err) {
      if (err instanceof SyscallError && err.errnoName === 'EINVAL') {
        throw new RdmactlError('ibv_fork_init: EINVAL — memory was already registered in this process without fork support', EXIT.FAILURE, [
          'ibv_fork_init() only works before the first ibv_reg_mr of the process (or set RDMAV_FORK_SAFE=1 before start)',
          `fork status now: ${ibv.isForkInitialized()}`,
        ], { cause: err });
      }
      throw err;
    }
    forkInitDone = true;
  }
  return ibv.isForkInitialized();
}

/** A registration through libibverbs: context + PD + MR, released in reverse order. */
export class VerbsRegistration implements BackendRegistration<'verbs'> {
  readonly backend = 'verbs' as const;
  readonly addr: Pointer;
  readonly length: number;
  readonly details: RegistrationDetails<'verbs'>;
  readonly context: DeviceContext;
  readonly pd: ProtectionDomain;
  readonly mr: MemoryRegion;

  constructor(context: DeviceContext, pd: ProtectionDomain, mr: MemoryRegion, extra: { fork: ibv.ForkStatus }) {
    this.context = context;
    this.pd = pd;
    this.mr = mr;
    this.addr = mr.addr;
    this.length = mr.length;
    this.details = Object.freeze({ ...mr.details, ...extra });
  }

  get closed(): boolean {
    return this.context.closed;
  }

  get lkey(): number {
    return this.mr.lkey;
  }

  get rkey(): number {
    return this.mr.rkey;
  }

  /** ibv_dereg_mr → ibv_dealloc_pd → ibv_close_device. Idempotent. */
  close(): void {
    let first: unknown;
    for (const step of [this.mr, this.pd, this.context]) {
      try {
        step.close();
      } catch (err) {
        first ??= err;
      }
    }
    if (first !== undefined) throw first;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * Open `device` (or the first device), allocate a PD and register `buffer` with `access`.
 * Errors: UnsupportedError (no libibverbs, no device, unknown device, on-demand without ODP);
 * DeviceOpenError (the uverbs device node does not open: EACCES/EPERM exit 4); SyscallError from ibv_open_device
 * (a refused device context, e.g. EAGAIN from an rdma cgroup) and from ibv_reg_mr as is
 * (ENOMEM: memlock/pinning limit, EFAULT/EACCES: write access to a read-only mapping).
 */
export function openVerbsRegistration(opts: VerbsRegistrationOptions): VerbsRegistration {
  // Before any registration, and before providers are loaded: that is when it can take effect.
  if (opts.forkInit) ensureForkInit();

  let context: DeviceContext;
  {
    using list = openDeviceListOrExplain();
    if (list.devices.length === 0) throw noDeviceError();
    const device = opts.device ? list.find(opts.device) : list.devices[0];
    if (!device) {
      throw new UnsupportedError(`RDMA device ${opts.device} not found`, [
        `devices on this machine: ${list.devices.map((d) => d.name).join(', ')}`,
      ]);
    }
    context = device.open();
  }

  try {
    if (opts.access & ibv.IBV_ACCESS_ON_DEMAND) {
      const odp = context.odpCaps();
      // null = the provider cannot say (no query_device_ex): let ibv_reg_mr decide.
      if (odp !== null && !odp.supported) {
        throw new UnsupportedError(
          `device ${context.deviceName} has no ODP support (on-demand paging); drop on-demand from the access flags to register pinned memory`,
          ['ODP needs driver support: mlx5, and rdma_rxe only on recent kernels (check `ibv_devinfo -v` for ODP_SUPPORT)'],
        );
      }
    }
    const pd = context.allocPd();
    const mr = pd.register(opts.buffer, opts.access);
    return new VerbsRegistration(context, pd, mr, { fork: ibv.isForkInitialized() });
  } catch (err) {
    // Releases the PD too, if it was allocated.
    try {
      context.close();
    } catch {
      // the original failure is the one worth reporting
    }
    throw err;
  }
}
