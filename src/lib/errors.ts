// Every failure rdmactl reports is one of these. main.ts turns them into a one-line message and
// an exit code in exactly one place; anything else is a bug and gets a stack only with RDMACTL_DEBUG=1.

export const EXIT = {
  OK: 0,
  /** A runtime failure: the kernel or a library said no. */
  FAILURE: 1,
  /** Bad command line: unknown flag, bad size, bad value. */
  USAGE: 2,
  /** The machine cannot do it: no RDMA device, no ODP, io_uring disabled, no hugepages reserved. */
  UNSUPPORTED: 3,
  /** Not permitted: EPERM/EACCES, or a limit only root can raise. */
  PERMISSION: 4,
  /** A check the user asked for (e.g. `fork --expect coherent`) did not hold. */
  EXPECTATION: 5,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export class RdmactlError extends Error {
  readonly exitCode: ExitCode;
  /** Extra lines printed after the message (how to fix it). */
  readonly hints: readonly string[];
  constructor(message: string, exitCode: ExitCode = EXIT.FAILURE, hints: readonly string[] = [], options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RdmactlError';
    this.exitCode = exitCode;
    this.hints = hints;
  }
}

export class UsageError extends RdmactlError {
  constructor(message: string, hints: readonly string[] = []) {
    super(message, EXIT.USAGE, hints);
    this.name = 'UsageError';
  }
}

export class UnsupportedError extends RdmactlError {
  constructor(message: string, hints: readonly string[] = [], options?: { cause?: unknown }) {
    super(message, EXIT.UNSUPPORTED, hints, options);
    this.name = 'UnsupportedError';
  }
}

export class PermissionError extends RdmactlError {
  constructor(message: string, hints: readonly string[] = [], options?: { cause?: unknown }) {
    super(message, EXIT.PERMISSION, hints, options);
    this.name = 'PermissionError';
  }
}
