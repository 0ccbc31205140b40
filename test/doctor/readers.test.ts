// The small /proc and /sys parsers doctor adds, on fixtures.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseEnviron } from '../../src/proc/environ.js';
import { hugepageDirBytes, parseThpMode } from '../../src/proc/sysctl.js';
import { parseUringFdinfo } from '../../src/proc/uringFdinfo.js';
import { parseStatusGroups } from '../../src/doctor/target.js';
import { ringBytes } from '../../src/doctor/uring.js';

const fixture = (name: string, encoding: BufferEncoding = 'utf8'): string => readFileSync(new URL(`../fixtures/proc/${name}`, import.meta.url), encoding);

describe('doctor readers', () => {
  it('environ: NUL-separated, first value of a name wins, entries without "=" kept empty', () => {
    const env = parseEnviron(fixture('environ-fork-safe.bin', 'latin1'));
    expect([...env]).toEqual([['HOME', '/root'], ['RDMAV_FORK_SAFE', '1'], ['EMPTY', ''], ['NOEQUALS', ''], ['PATH', '/usr/bin:/bin']]);
  });

  it('THP mode is the bracketed word; hugepage directories name their size in kB', () => {
    expect(parseThpMode('always [madvise] never\n')).toBe('madvise');
    expect(parseThpMode('[never]')).toBe('never');
    expect(parseThpMode('always madvise never')).toBeNull();
    expect(hugepageDirBytes('hugepages-2048kB')).toBe(2 * 1024 * 1024);
    expect(hugepageDirBytes('hugepages-1048576kB')).toBe(1024 ** 3);
    expect(hugepageDirBytes('README')).toBeNull();
  });

  it('io_uring fdinfo: ring sizes from SqMask/CqMask on 6.1 and 6.18', () => {
    expect(parseUringFdinfo(fixture('uring-fdinfo-6.1.txt'))).toMatchObject({ sqEntries: 8, cqEntries: 16 });
    expect(parseUringFdinfo(fixture('uring-fdinfo-6.18.txt'))).toMatchObject({ sqEntries: 4, cqEntries: 8 });
  });

  it('status Groups: line, empty or not', () => {
    expect(parseStatusGroups('Name:\tx\nGroups:\t4 24 27 \nVmPin:\t0 kB\n')).toEqual([4, 24, 27]);
    expect(parseStatusGroups('Name:\tx\nGroups:\t\n')).toEqual([]);
  });

  it('ring memory: one page of rings and one of SQEs for 8 entries', () => {
    expect(ringBytes(8, 16, 4096)).toBe(8192);
    // 192 + 8192 CQEs × 16 + 4096 × 4 = 147648 bytes → 37 pages; 4096 SQEs × 64 → 64 pages.
    expect(ringBytes(4096, 8192, 4096)).toBe((37 + 64) * 4096);
  });
});
