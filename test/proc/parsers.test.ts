import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseStatus, unescapeProcName } from '../../src/proc/status.js';
import { parseLimits } from '../../src/proc/limits.js';
import {
  formatAddress,
  formatRange,
  isDeviceMapping,
  isDontFork,
  isHugePageAdvised,
  isHugetlb,
  isLocked,
  isWipeOnFork,
  parseSmaps,
  summarizeSmaps,
  vmaSizeBytes,
} from '../../src/proc/smaps.js';
import { parseUringFdinfo } from '../../src/proc/uringFdinfo.js';
import { parseMeminfo } from '../../src/proc/meminfo.js';
import { parsePinCounters } from '../../src/proc/vmstat.js';
import { parseTaskCounters } from '../../src/proc/loadavg.js';
import { parseStat, PF_EXITING, processEnded } from '../../src/proc/stat.js';
import { countMapsLines, parseMaxMapCount } from '../../src/proc/vm.js';
import { decodePagemap, decodePagemapEntry, parseAuxvPageSize } from '../../src/proc/pagemap.js';

const fixture = (name: string): string =>
  readFileSync(new URL(`../fixtures/proc/${name}`, import.meta.url), 'utf8');

describe('parseStatus', () => {
  it('reads identity, ids and the memory counters in bytes', () => {
    const status = parseStatus(fixture('status-pinner.txt'));
    expect(status).toEqual({
      name: 'rdma-app',
      state: 'S',
      pid: 4242,
      tgid: 4242,
      ppid: 4100,
      uid: 1000,
      euid: 1001,
      gid: 100,
      egid: 101,
      threads: 3,
      hasMm: true,
      isKernelThread: false,
      lockedBytes: 1024 * 1024,
      pinnedBytes: 64 * 1024 * 1024,
      rssBytes: 67804 * 1024,
      nsPids: [4242],
    });
  });

  it('gives 0 bytes and hasMm=false for a 6.x kernel thread (Kthread: 1)', () => {
    const status = parseStatus(fixture('status-kthread-6x.txt'));
    expect(status.name).toBe('kworker/0:1H-kblockd');
    expect(status.state).toBe('I');
    expect(status.isKernelThread).toBe(true);
    expect(status.hasMm).toBe(false);
    expect([status.lockedBytes, status.pinnedBytes, status.rssBytes]).toEqual([0, 0, 0]);
  });

  it('recognises a 5.x kernel thread without a Kthread line (no mm, child of kthreadd)', () => {
    const status = parseStatus(fixture('status-kthread-5x.txt'));
    expect(status.isKernelThread).toBe(true);
    expect(status.hasMm).toBe(false);
    expect(status.pinnedBytes).toBe(0);
  });

  it('does not mistake a zombie (no mm either) for a kernel thread', () => {
    const status = parseStatus(fixture('status-zombie.txt'));
    expect(status.state).toBe('Z');
    expect(status.hasMm).toBe(false);
    expect(status.isKernelThread).toBe(false);
    expect(status.uid).toBe(1000);
  });

  it('undoes the kernel escaping of Name', () => {
    expect(parseStatus(fixture('status-escaped-name.txt')).name).toBe('my\tjob\\x');
    expect(unescapeProcName('a\\nb\\011c')).toBe('a\nb\tc');
    expect(unescapeProcName('plain name')).toBe('plain name');
  });
});

describe('parseLimits', () => {
  it('maps unlimited to null', () => {
    const limits = parseLimits(fixture('limits-unlimited.txt'));
    expect(limits.lockedMemory).toEqual({ softBytes: null, hardBytes: null });
    expect(limits.all.get('Max open files')).toEqual({ soft: 1024, hard: 524288, units: 'files' });
    expect(limits.all.get('Max nice priority')).toEqual({ soft: 0, hard: 0, units: '' });
    expect(limits.all.size).toBe(16);
  });

  it('reads a numeric soft limit in bytes', () => {
    expect(parseLimits(fixture('limits-8mib-soft.txt')).lockedMemory).toEqual({
      softBytes: 8 * 1024 * 1024,
      hardBytes: null,
    });
  });

  it('reports a missing Max locked memory line as null', () => {
    expect(parseLimits('Limit                     Soft Limit           Hard Limit           Units\n').lockedMemory).toBeNull();
  });
});

describe('parseSmaps', () => {
  const vmas = parseSmaps(fixture('smaps-mixed.txt'));

  it('finds every VMA with bigint ranges, perms, offset and pathname', () => {
    expect(vmas).toHaveLength(8);
    const exe = vmas[0]!;
    expect(exe.start).toBe(0x55d0c0a00000n);
    expect(exe.end).toBe(0x55d0c0a04000n);
    expect(exe.perms).toBe('r-xp');
    expect(exe.offset).toBe(0n);
    expect(exe.device).toBe('08:01');
    expect(exe.inode).toBe(1835012);
    expect(exe.pathname).toBe('/opt/rdma app/bin/rdma-app (deleted)');
    expect(vmas[1]!.pathname).toBe('[heap]');
    expect(vmas[2]!.pathname).toBe('');
    expect(vmas[3]!.pathname).toBe(''); // header ends in a space, as the kernel prints it
  });

  it('keeps addresses above 2^53 exact', () => {
    const vsyscall = vmas[7]!;
    expect(vsyscall.start).toBe(0xffffffffff600000n);
    expect(formatRange(vsyscall)).toBe('ffffffffff600000-ffffffffff601000');
    expect(vmaSizeBytes(vsyscall)).toBe(4096);
  });

  it('reads the per-VMA counters in bytes', () => {
    const locked = vmas[3]!;
    expect(locked.sizeBytes).toBe(1024 * 1024);
    expect(locked.rssBytes).toBe(1024 * 1024);
    expect(locked.lockedBytes).toBe(1024 * 1024);
    expect(locked.anonymousBytes).toBe(1024 * 1024);
    expect(locked.kernelPageSizeBytes).toBe(4096);
    expect(vmas[2]!.anonHugePagesBytes).toBe(2 * 1024 * 1024);
    expect(vmas[4]!.kernelPageSizeBytes).toBe(2 * 1024 * 1024);
  });

  it('exposes VmFlags as a set with helpers for lo, dc, wf, ht, hg', () => {
    const locked = vmas[3]!;
    expect([...locked.flags]).toEqual(['rd', 'wr', 'mr', 'mw', 'me', 'lo', 'dc', 'ac', 'wf', 'hg']);
    expect(isLocked(locked)).toBe(true);
    expect(isDontFork(locked)).toBe(true);
    expect(isWipeOnFork(locked)).toBe(true);
    expect(isHugePageAdvised(locked)).toBe(true);
    expect(isHugetlb(locked)).toBe(false);
    expect(isHugetlb(vmas[4]!)).toBe(true);
    expect(isLocked(vmas[1]!)).toBe(false);
    expect(isDeviceMapping(vmas[5]!)).toBe(true);
    expect(isDontFork(vmas[5]!)).toBe(true);
  });

  it('summarises locked, don\'t-fork, wipe-on-fork and hugetlb bytes', () => {
    expect(summarizeSmaps(vmas)).toEqual({
      vmaCount: 8,
      rssBytes: (16 + 8 + 2048 + 1024 + 4096 + 0 + 12 + 0) * 1024,
      lockedBytes: 1024 * 1024,
      lockedVmaBytes: 1024 * 1024,
      dontForkVmaCount: 2,
      dontForkBytes: 1024 * 1024 + 4096,
      wipeOnForkBytes: 1024 * 1024,
      hugetlbBytes: 4 * 1024 * 1024,
    });
  });

  it('parses plain maps text as VMAs without counters', () => {
    const maps = parseSmaps(fixture('maps-mixed.txt'));
    expect(maps.map(formatRange)).toEqual(vmas.map(formatRange));
    expect(maps[3]!.flags.size).toBe(0);
  });

  it('returns [] for an empty file (zombie)', () => {
    expect(parseSmaps('')).toEqual([]);
  });

  it('pads hex like the kernel', () => {
    expect(formatAddress(0x1000n)).toBe('00001000');
  });
});

describe('parseUringFdinfo', () => {
  it('6.18: buffers and <none> slots', () => {
    const info = parseUringFdinfo(fixture('uring-fdinfo-6.18.txt'))!;
    expect(info.userBufsSlots).toBe(3);
    expect(info.listed).toBe(true);
    expect(info.buffers).toEqual([
      { index: 0, address: 0x7f6353a00000n, lengthBytes: 2097152 },
      { index: 2, address: 0x7f6340000000n, lengthBytes: 67108864 },
    ]);
    expect(info.emptySlots).toEqual([1]);
    expect(info.registeredBytes).toBe(2097152 + 67108864);
    expect(info.sqThreadPid).toBeNull();
  });

  it('6.1: skips SQE/CQE and file entries, stops before Personalities, reads SQPOLL pid', () => {
    const info = parseUringFdinfo(fixture('uring-fdinfo-6.1.txt'))!;
    expect(info.userFiles).toBe(2);
    expect(info.sqThreadPid).toBe(3120);
    expect(info.buffers.map((b) => b.index)).toEqual([0, 1]);
    expect(info.registeredBytes).toBe(1048576 + 4096);
    expect(info.emptySlots).toEqual([]);
  });

  it('5.15: a sparse slot printed as the dummy buffer (0xffffffffffffffff/1) is empty', () => {
    const info = parseUringFdinfo(fixture('uring-fdinfo-5.15.txt'))!;
    expect(info.buffers.map((b) => b.index)).toEqual([0, 2]);
    expect(info.emptySlots).toEqual([1]);
    expect(info.registeredBytes).toBe(8388608 + 65536);
  });

  it('5.10 with the ring busy: count without entries → listed=false', () => {
    const info = parseUringFdinfo(fixture('uring-fdinfo-5.10-busy.txt'))!;
    expect(info.userBufsSlots).toBe(4);
    expect(info.listed).toBe(false);
    expect(info.buffers).toEqual([]);
  });

  it('5.6 layout without SqThread', () => {
    const info = parseUringFdinfo(fixture('uring-fdinfo-5.6.txt'))!;
    expect(info.buffers).toEqual([{ index: 0, address: 0x7f00aa000000n, lengthBytes: 131072 }]);
    expect(info.userFiles).toBe(1);
    expect(info.sqThreadPid).toBeNull();
  });

  it('returns null for an fd that is not io_uring', () => {
    expect(parseUringFdinfo(fixture('fdinfo-regular.txt'))).toBeNull();
  });
});

describe('parseMeminfo', () => {
  it('converts kB to bytes and keeps HugePages_* as counts', () => {
    const info = parseMeminfo(fixture('meminfo.txt'));
    expect(info.memTotalBytes).toBe(8131284 * 1024);
    expect(info.memAvailableBytes).toBe(7011236 * 1024);
    expect(info.mlockedBytes).toBe(1024 * 1024);
    expect(info.unevictableBytes).toBe(66560 * 1024);
    expect(info.hugePagesTotal).toBe(16);
    expect(info.hugePagesFree).toBe(14);
    expect(info.hugePagesReserved).toBe(1);
    expect(info.hugepageSizeBytes).toBe(2 * 1024 * 1024);
    expect(info.all.get('VmallocTotal')).toBe(34359738367 * 1024);
  });

  it('reports a missing MemAvailable as null', () => {
    expect(parseMeminfo('MemTotal: 1000 kB\n').memAvailableBytes).toBeNull();
  });
});

describe('parsePinCounters', () => {
  it('reads nr_foll_pin_acquired and nr_foll_pin_released', () => {
    expect(parsePinCounters(fixture('vmstat-6.18.txt'))).toEqual({ acquired: 7878054, released: 7878054 });
  });

  it('is null on kernels before 5.7, which have no pin counters', () => {
    expect(parsePinCounters(fixture('vmstat-5.4.txt'))).toBeNull();
  });

  it('does not take a longer name that starts the same way', () => {
    expect(parsePinCounters('nr_foll_pin_acquired_x 1\nnr_foll_pin_released 2\n')).toBeNull();
  });
});

describe('parseTaskCounters', () => {
  it('reads the thread count and the last pid from /proc/loadavg', () => {
    expect(parseTaskCounters('0.20 0.18 0.12 1/80 11206\n')).toEqual({ threads: 80, lastPid: 11206 });
    expect(parseTaskCounters('12.01 8.50 4.00 17/2094 4194301\n')).toEqual({ threads: 2094, lastPid: 4194301 });
  });

  it('is null for anything else', () => {
    expect(parseTaskCounters('')).toBeNull();
    expect(parseTaskCounters('0.20 0.18 0.12 80 11206\n')).toBeNull();
  });
});

describe('parseStat', () => {
  it('splits after the last ")" when comm contains ") ("', () => {
    expect(parseStat(fixture('stat-paren-comm.txt'))).toEqual({
      pid: 4242,
      comm: 'a) (b',
      state: 'S',
      ppid: 4100,
      flags: 4194560,
      utimeTicks: 7,
      stimeTicks: 3,
      threads: 3,
      startTimeTicks: 123456,
    });
  });

  it('processEnded: gone, a zombie leader alone, or one whose other threads are gone or exiting; a zombie leader with a running thread is alive', () => {
    const stat = parseStat(fixture('stat-paren-comm.txt'));
    const zombie = { ...stat, state: 'Z', threads: 2 };
    const running = { ...stat, state: 'S', flags: 0x400000 };
    const exiting = { ...stat, state: 'R', flags: 0x400000 | PF_EXITING };
    expect(processEnded(null)).toBe(true);
    expect(processEnded(stat)).toBe(false);
    expect(processEnded({ ...stat, state: 'Z', threads: 1 })).toBe(true);
    expect(processEnded({ ...stat, state: 'X', threads: 1 })).toBe(true);
    expect(processEnded({ ...stat, state: 'D', threads: 1 })).toBe(false);
    expect(processEnded(zombie, [running])).toBe(false);
    expect(processEnded(zombie, [exiting])).toBe(true);
    expect(processEnded(zombie, [null])).toBe(true);
    expect(processEnded({ ...zombie, threads: 3 }, [exiting, running])).toBe(false);
  });

  it('reads an ordinary line', () => {
    const stat = parseStat(fixture('stat-simple.txt'));
    expect([stat.pid, stat.comm, stat.ppid, stat.utimeTicks, stat.stimeTicks, stat.startTimeTicks]).toEqual([1, 'systemd', 0, 40, 25, 5]);
  });

  it('throws on text without a comm', () => {
    expect(() => parseStat('garbage')).toThrow(/malformed/);
  });
});

describe('vm', () => {
  it('parses max_map_count and counts maps lines', () => {
    expect(parseMaxMapCount('65530\n')).toBe(65530);
    expect(() => parseMaxMapCount('x')).toThrow();
    expect(countMapsLines(fixture('maps-mixed.txt'))).toBe(8);
    expect(countMapsLines('')).toBe(0);
    expect(countMapsLines('a\nb')).toBe(2);
  });
});

describe('pagemap', () => {
  const entry = (bits: bigint): Buffer => {
    const buffer = Buffer.alloc(8);
    buffer.writeBigUInt64LE(bits);
    return buffer;
  };

  it('decodes present, exclusive, soft-dirty and the PFN', () => {
    const raw = (1n << 63n) | (1n << 56n) | (1n << 55n) | 0x12345n;
    const decoded = decodePagemapEntry(raw);
    expect(decoded).toMatchObject({ present: true, swapped: false, exclusive: true, softDirty: true, fileOrShared: false, pfn: 0x12345 });
  });

  it('reports a present page with hidden PFN (no CAP_SYS_ADMIN) as pfn null', () => {
    expect(decodePagemapEntry((1n << 63n) | (1n << 61n)).pfn).toBeNull();
    expect(decodePagemapEntry((1n << 63n) | (1n << 61n)).fileOrShared).toBe(true);
  });

  it('decodes swap type and offset', () => {
    const decoded = decodePagemapEntry((1n << 62n) | (0x400n << 5n) | 3n);
    expect(decoded).toMatchObject({ present: false, swapped: true, pfn: null, swapType: 3, swapOffset: 0x400 });
  });

  it('decodes a buffer of entries and ignores a trailing partial one', () => {
    const buffer = Buffer.concat([entry(0n), entry((1n << 63n) | 7n), Buffer.alloc(3)]);
    const entries = decodePagemap(buffer);
    expect(entries).toHaveLength(2);
    expect(entries[0]!.present).toBe(false);
    expect(entries[1]!.pfn).toBe(7);
  });

  it('finds AT_PAGESZ in auxv', () => {
    const auxv = Buffer.alloc(48);
    auxv.writeBigUInt64LE(33n, 0); // AT_SYSINFO_EHDR
    auxv.writeBigUInt64LE(0x7fff0000n, 8);
    auxv.writeBigUInt64LE(6n, 16); // AT_PAGESZ
    auxv.writeBigUInt64LE(16384n, 24);
    expect(parseAuxvPageSize(auxv)).toBe(16384);
    expect(parseAuxvPageSize(Buffer.alloc(16))).toBeNull();
  });
});
