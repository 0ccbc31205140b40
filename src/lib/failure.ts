// What a failure tells the user: its message, hints and exit code, whatever threw it. cli.ts prints it;
// a detached holder sends it to the command that started it, which rethrows it (failureError), so the
// user sees the same message and exit status either way.

import { EXIT, PermissionError, RdmactlError, UnsupportedError, UsageError, type ExitCode } from './errors.js';
import { SyscallError } from './errno.js';

export interface Failure {
  /** Which kind of error: an RdmactlError subclass's name, 'SyscallError', or 'internal' (a bug). */
  kind: string;
  /** One line, without the "rdmactl: " prefix. */
  message: string;
  hints: string[];
  exitCode: ExitCode;
}

export function failureOf(err: unknown): Failure {
  if (err instanceof RdmactlError) return { kind: err.name, message: err.message, hints: [...err.hints], exitCode: err.exitCode };
  if (err instanceof SyscallError) {
    return { kind: 'SyscallError', message: err.message, hints: [], exitCode: err.errnoName === 'EPERM' || err.errnoName === 'EACCES' ? EXIT.PERMISSION : EXIT.FAILURE };
  }
  return { kind: 'internal', message: `internal error: ${err instanceof Error ? err.message : String(err)}`, hints: [], exitCode: EXIT.FAILURE };
}

const EXIT_CODES: ReadonlySet<number> = new Set(Object.values(EXIT));

/** A failure read back from JSON (a holder's answer); null when it is not one. */
export function parseFailure(value: unknown): Failure | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return null;
  const { kind, message, hints, exitCode } = value as Record<string, unknown>;
  if (typeof kind !== 'string' || typeof message !== 'string' || typeof exitCode !== 'number' || !EXIT_CODES.has(exitCode) || exitCode === EXIT.OK) return null;
  if (!Array.isArray(hints) || !hints.every((h): h is string => typeof h === 'string')) return null;
  return { kind, message, hints, exitCode: exitCode as ExitCode };
}

/** The error to throw for a failure reported by another process: same class where there is one, same message, hints and exit code. */
export function failureError(failure: Failure): RdmactlError {
  const { kind, message, hints, exitCode } = failure;
  if (kind === 'UsageError' && exitCode === EXIT.USAGE) return new UsageError(message, hints);
  if (kind === 'UnsupportedError' && exitCode === EXIT.UNSUPPORTED) return new UnsupportedError(message, hints);
  if (kind === 'PermissionError' && exitCode === EXIT.PERMISSION) return new PermissionError(message, hints);
  return new RdmactlError(message, exitCode, hints);
}
