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
  /** The errno behind it (ENOMEM, EPERM, …): a failed call's, or the one it was explained from (its cause); null when none. */
  errno: string | null;
}

/** The errno name of the failed call that `err` is, or was made from (its chain of causes); null when none. */
export function errnoOf(err: unknown): string | null {
  for (let at = err, depth = 0; at instanceof Error && depth < 8; at = at.cause, depth++) {
    if (at instanceof SyscallError) return at.errnoName;
  }
  return null;
}

export function failureOf(err: unknown): Failure {
  const errno = errnoOf(err);
  if (err instanceof RdmactlError) return { kind: err.name, message: err.message, hints: [...err.hints], exitCode: err.exitCode, errno };
  if (err instanceof SyscallError) {
    return { kind: 'SyscallError', message: err.message, hints: [], exitCode: err.errnoName === 'EPERM' || err.errnoName === 'EACCES' ? EXIT.PERMISSION : EXIT.FAILURE, errno };
  }
  return { kind: 'internal', message: `internal error: ${err instanceof Error ? err.message : String(err)}`, hints: [], exitCode: EXIT.FAILURE, errno };
}

const EXIT_CODES: ReadonlySet<number> = new Set(Object.values(EXIT));

/** A failure read back from JSON (a holder's answer; errno may be absent: null); null when it is not one. */
export function parseFailure(value: unknown): Failure | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return null;
  const { kind, message, hints, exitCode } = value as Record<string, unknown>;
  const errno = (value as Record<string, unknown>)['errno'] ?? null;
  if (typeof kind !== 'string' || typeof message !== 'string' || typeof exitCode !== 'number' || !EXIT_CODES.has(exitCode) || exitCode === EXIT.OK) return null;
  if (!Array.isArray(hints) || !hints.every((h): h is string => typeof h === 'string')) return null;
  if (errno !== null && (typeof errno !== 'string' || !/^E[A-Z0-9]+$|^errno \d+$/.test(errno))) return null;
  return { kind, message, hints, exitCode: exitCode as ExitCode, errno };
}

/** The error to throw for a failure reported by another process: same class where there is one, same message, hints and exit code. */
export function failureError(failure: Failure): RdmactlError {
  const { kind, message, hints, exitCode } = failure;
  if (kind === 'UsageError' && exitCode === EXIT.USAGE) return new UsageError(message, hints);
  if (kind === 'UnsupportedError' && exitCode === EXIT.UNSUPPORTED) return new UnsupportedError(message, hints);
  if (kind === 'PermissionError' && exitCode === EXIT.PERMISSION) return new PermissionError(message, hints);
  return new RdmactlError(message, exitCode, hints);
}
