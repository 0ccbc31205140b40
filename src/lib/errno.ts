// errno numbers → names (Linux, identical on x86-64 and aarch64 for these), and the error type
// every binding throws so callers can match on `errnoName` instead of numbers. It sits with the
// other error types at the bottom of lib/: the bindings (src/ffi) import it, it imports nothing.

const ERRNO_NAMES: Record<number, string> = {
  1: 'EPERM', 2: 'ENOENT', 3: 'ESRCH', 4: 'EINTR', 5: 'EIO', 6: 'ENXIO', 7: 'E2BIG', 9: 'EBADF',
  10: 'ECHILD', 11: 'EAGAIN', 12: 'ENOMEM', 13: 'EACCES', 14: 'EFAULT', 16: 'EBUSY', 17: 'EEXIST',
  18: 'EXDEV', 19: 'ENODEV', 20: 'ENOTDIR', 21: 'EISDIR', 22: 'EINVAL', 23: 'ENFILE', 24: 'EMFILE', 27: 'EFBIG', 28: 'ENOSPC', 30: 'EROFS',
  34: 'ERANGE', 36: 'ENAMETOOLONG', 38: 'ENOSYS', 40: 'ELOOP', 61: 'ENODATA', 75: 'EOVERFLOW', 95: 'EOPNOTSUPP', 110: 'ETIMEDOUT',
};

export function errnoName(errno: number): string {
  return ERRNO_NAMES[errno] ?? `errno ${errno}`;
}

/** A failed native call: which call, and the errno it left. */
export class SyscallError extends Error {
  readonly call: string;
  readonly errno: number;
  readonly errnoName: string;
  constructor(call: string, errno: number, detail?: string) {
    const name = errnoName(errno);
    super(`${call}: ${name}${detail ? ` (${detail})` : ''}`);
    this.name = 'SyscallError';
    this.call = call;
    this.errno = errno;
    this.errnoName = name;
  }
}
