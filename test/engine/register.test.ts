// The registration engine against the real kernel: what it pins and locks, read back from /proc
// independently of rdmactl's own parsers.
import { readFileSync, readdirSync, readlinkSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readAccounting, register } from '../../src/engine/register.js';
import { splitFixedBuffers } from '../../src/engine/uring.js';
import { RdmactlError, UsageError } from '../../src/lib/errors.js';
import { statusKb } from '../helpers/proc.js';

const MiB = 1024 * 1024;

function uringFdinfoBuffers(): string[] {
  const lines: string[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    let target: string;
    try { target = readlinkSync(`/proc/self/fd/${fd}`); } catch { continue; }
    if (target !== 'anon_inode:[io_uring]') continue;
    const info = readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8');
    for (const m of info.matchAll(/^\s*\d+: (0x[0-9a-f]+\/\d+)$/gm)) lines.push(m[1]!);
  }
  return lines;
}

describe('uring backend', () => {
  it('pins exactly 64 MiB: VmPin rises by 65536 kB, fdinfo lists the buffer, release restores it', async () => {
    const pinBefore = statusKb('self', 'VmPin');
    const set = await register({ length: 64 * MiB, backend: 'uring' });
    expect(statusKb('self', 'VmPin') - pinBefore).toBe(65536);
    expect(set.after.pinnedBytes - set.before.pinnedBytes).toBe(64 * MiB);
    const addr = set.registrations[0]!.buffer.addr;
    expect(uringFdinfoBuffers()).toContain(`0x${addr.toString(16)}/${64 * MiB}`);
    set.close();
    const after = readAccounting();
    expect(statusKb('self', 'VmPin')).toBe(pinBefore);
    expect(after.pinnedBytes).toBe(pinBefore * 1024);
    expect(uringFdinfoBuffers()).toEqual([]);
    set.close(); // idempotent
  });

  it('--overlap: two rings over one range are counted twice in VmPin', async () => {
    const pinBefore = statusKb('self', 'VmPin');
    using set = await register({ length: 4 * MiB, backend: 'uring', overlap: true });
    expect(set.registrations).toHaveLength(2);
    expect(set.registrations[0]!.buffer).toBe(set.registrations[1]!.buffer);
    expect(statusKb('self', 'VmPin') - pinBefore).toBe(2 * 4096);
  });

  it('splits a buffer above the 1 GiB per-buffer cap into pieces the kernel accepts', () => {
    const GiB = 1024 * MiB;
    const pieces = splitFixedBuffers(0x7f0000000000n, 2 * GiB + 4096);
    expect(pieces).toEqual([
      { addr: 0x7f0000000000n, length: GiB },
      { addr: 0x7f0000000000n + BigInt(GiB), length: GiB },
      { addr: 0x7f0000000000n + BigInt(2 * GiB), length: 4096 },
    ]);
  });

  it('--count registers separate buffers', async () => {
    const pinBefore = statusKb('self', 'VmPin');
    using set = await register({ length: MiB, backend: 'uring', count: 3 });
    expect(new Set(set.buffers.map((b) => b.addr)).size).toBe(3);
    expect(statusKb('self', 'VmPin') - pinBefore).toBe(3 * 1024);
  });
});

describe('mlock backend', () => {
  it('locks: VmLck rises by the length, VmPin does not move; release restores both', async () => {
    const pinBefore = statusKb('self', 'VmPin');
    const lckBefore = statusKb('self', 'VmLck');
    const set = await register({ length: 8 * MiB, backend: 'mlock' });
    expect(statusKb('self', 'VmLck') - lckBefore).toBe(8192);
    expect(statusKb('self', 'VmPin')).toBe(pinBefore);
    set.close();
    expect(statusKb('self', 'VmLck')).toBe(lckBefore);
  });

  it('--overlap: locking one range twice counts once (locked is a property of the VMA)', async () => {
    const lckBefore = statusKb('self', 'VmLck');
    using set = await register({ length: 2 * MiB, backend: 'mlock', overlap: true });
    expect(set.registrations).toHaveLength(2);
    expect(statusKb('self', 'VmLck') - lckBefore).toBe(2048);
  });
});

describe('backings', () => {
  it.each(['anon', 'thp', 'memfd', 'file-shared', 'file-private'] as const)('%s: mlock locks and uring pins the whole buffer', async (backing) => {
    const lckBefore = statusKb('self', 'VmLck');
    {
      using set = await register({ length: 4 * MiB, backend: 'mlock', backing });
      expect(set.buffers[0]!.backing).toBe(backing);
      expect(statusKb('self', 'VmLck') - lckBefore).toBe(4096);
    }
    expect(statusKb('self', 'VmLck')).toBe(lckBefore);
    const pinBefore = statusKb('self', 'VmPin');
    try {
      using set = await register({ length: 4 * MiB, backend: 'uring', backing });
      expect(statusKb('self', 'VmPin') - pinBefore).toBe(4096);
    } catch (err) {
      // Long-term pins of shared file mappings on filesystems with writeback are refused by newer
      // kernels; that refusal must be the explained error, and nothing may stay pinned.
      expect(backing).toBe('file-shared');
      expect(err).toBeInstanceOf(RdmactlError);
      expect((err as Error).message).toMatch(/cannot register 4 MiB with uring/);
    }
    expect(statusKb('self', 'VmPin')).toBe(pinBefore);
  });

  it('thp: the buffer is rounded up to and aligned on the kernel\'s own huge page size, not an assumed 2 MiB', async () => {
    const sysfs = '/sys/kernel/mm/transparent_hugepage/hpage_pmd_size';
    let hugePage: number;
    try {
      hugePage = Number(readFileSync(sysfs, 'ascii'));
    } catch {
      console.warn(`SKIPPING the THP size check: ${sysfs} is missing (no transparent huge pages here)`);
      return;
    }
    using set = await register({ length: 4096, backend: 'mlock', backing: 'thp' });
    const buffer = set.buffers[0]!;
    expect(buffer.length).toBe(hugePage);
    expect(buffer.addr % BigInt(hugePage)).toBe(0n);
  });

  it('hugetlb without reserved huge pages is a clear "not supported" error, or works when some are reserved', async () => {
    const free = Number(/^HugePages_Free:\s+(\d+)/m.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? 0);
    if (free === 0) {
      await expect(register({ length: 2 * MiB, backend: 'mlock', backing: 'hugetlb' })).rejects.toThrow(/huge pages .* are free.*needed/);
    } else {
      using set = await register({ length: 2 * MiB, backend: 'mlock', backing: 'hugetlb' });
      expect(set.buffers[0]!.backing).toBe('hugetlb');
    }
  });

  describe('a read-only MAP_PRIVATE file mapping', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rdmactl-test-'));
    const file = join(dir, 'data');
    writeFileSync(file, Buffer.alloc(MiB, 7));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it('can be mlocked', async () => {
      using set = await register({ length: MiB, backend: 'mlock', backing: 'file-private', file, readOnly: true });
      expect(set.buffers[0]!.readOnly).toBe(true);
    });

    it('cannot be pinned by io_uring (it pins for writing): explained error, nothing left pinned', async () => {
      const pinBefore = statusKb('self', 'VmPin');
      await expect(register({ length: MiB, backend: 'uring', backing: 'file-private', file, readOnly: true }))
        .rejects.toThrow(/cannot register 1 MiB with uring \(io_uring_register: EFAULT\).*refused to pin/);
      expect(statusKb('self', 'VmPin')).toBe(pinBefore);
    });
  });
});

describe('validation', () => {
  it('rejects options that do not apply to the backend', async () => {
    await expect(register({ length: MiB, backend: 'uring', forkInit: true })).rejects.toThrow(UsageError);
    await expect(register({ length: MiB, backend: 'uring', onFault: true })).rejects.toThrow(UsageError);
    await expect(register({ length: MiB, backend: 'mlock', backing: 'anon', file: '/etc/passwd' })).rejects.toThrow(UsageError);
  });

  it('--wipeonfork on a shared mapping is a usage error and leaves nothing behind', async () => {
    const lckBefore = statusKb('self', 'VmLck');
    await expect(register({ length: MiB, backend: 'mlock', backing: 'memfd', wipeonfork: true })).rejects.toThrow(/--wipeonfork needs private anonymous memory/);
    expect(statusKb('self', 'VmLck')).toBe(lckBefore);
  });
});
