// isGone: the one test of "what this file described is gone" every /proc, sysfs and cgroup reader
// applies; checked on made-up errors, then on the kernel's own ENODEV from a removed cgroup.
import { closeSync, mkdirSync, openSync, readSync, rmdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { isGone, procTry } from '../../src/proc/procfs.js';
import { memoryCgroupPlacement, removeCgroups } from '../helpers/cgroup.js';

function errno(code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(code), { code });
}

describe('isGone', () => {
  it('ENOENT, ESRCH and ENODEV are gone; EINVAL only when the file no longer exists; refusals and I/O errors are not', () => {
    for (const code of ['ENOENT', 'ESRCH', 'ENODEV']) expect(isGone(errno(code)), code).toBe(true);
    expect(isGone(errno('EINVAL'), '/proc/self/status')).toBe(false);
    expect(isGone(errno('EINVAL'), `/proc/${2 ** 22 + 1}/status`)).toBe(true);
    expect(isGone(errno('EINVAL'))).toBe(false);
    for (const code of ['EACCES', 'EPERM', 'EIO', 'EBUSY']) expect(isGone(errno(code)), code).toBe(false);
    expect(isGone(new Error('no code'))).toBe(false);
    expect(isGone(null)).toBe(false);
  });

  const { skipReason, parentPath, dir } = memoryCgroupPlacement();
  it('a cgroup file opened before its group was removed reads as gone (null), not as an error', { skip: skipReason !== null }, async () => {
    const path = `${parentPath}/rdmactl-gone-test-${process.pid}`;
    mkdirSync(dir(path));
    const file = `${dir(path)}/memory.stat`;
    const fd = openSync(file, 'r');
    try {
      rmdirSync(dir(path));
      // The kernel's answer to a read of a removed cgroup's open file.
      expect(() => readSync(fd, Buffer.alloc(4096))).toThrow(expect.objectContaining({ code: 'ENODEV' }));
      expect(procTry(file, () => readSync(fd, Buffer.alloc(4096)))).toBeNull();
    } finally {
      closeSync(fd);
      await removeCgroups([dir(path)]);
    }
  });
});
