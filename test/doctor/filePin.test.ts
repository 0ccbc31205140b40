// doctor's file.longterm-pin: `doctor --size … --backing file-shared --backend uring --try` on a disk
// file system this host's kernel refuses long-term write pins of (ext4/xfs/btrfs on Linux ≥ 6.5) and on
// tmpfs, where shmem pages may be pinned. The finding rests on doctor's own one-page probe; --try then
// registers the real buffer in a child (rdmactl reg, the engine's path, not the probe's), and the test
// reads the file system itself (statfs) and the kernel release: all three must agree.
import { statfsSync } from 'node:fs';
import { release, tmpdir } from 'node:os';
import { describe, expect, it } from 'vitest';
import { BIN, ROOT, builtOrThrow, runSync } from '../helpers/spawn.js';
import { findingOf, type DoctorJson } from './helpers.js';

const TMPFS_MAGIC = 0x01021994;
/** File systems whose shared mappings need dirty tracking (they have page_mkwrite): ext2/3/4, xfs, btrfs. */
const DISK_FILESYSTEMS = new Map([[0xef53, 'ext2/3/4'], [0x58465342, 'xfs'], [0x9123683e, 'btrfs']]);

const magicOf = (dir: string): number | null => { try { return Number(statfsSync(dir).type); } catch { return null; } };
/** Linux 6.5 started refusing FOLL_LONGTERM write pins of such files (mm/gup.c, writable_file_mapping_allowed). */
const kernelRefuses = ((m) => m !== null && (Number(m[1]) > 6 || (Number(m[1]) === 6 && Number(m[2]) >= 5)))(/^(\d+)\.(\d+)/.exec(release()));

/** A writable directory on a disk file system of this host (nothing is mounted or changed for it). */
const diskDir = [tmpdir(), ROOT].find((d) => DISK_FILESYSTEMS.has(magicOf(d) ?? -1)) ?? null;
const tmpfsDir = ['/dev/shm', '/run'].find((d) => magicOf(d) === TMPFS_MAGIC) ?? null;

function doctor(dir: string, args: string[]): { status: number | null; json: DoctorJson } {
  builtOrThrow();
  const r = runSync([process.execPath, BIN, 'doctor', ...args, '--json'], { env: { ...process.env, TMPDIR: dir } });
  return { status: r.status, json: JSON.parse(r.stdout) as DoctorJson };
}

describe('doctor file.longterm-pin', () => {
  it('a shared file on a disk file system: the probe, the real registration (--try) and the kernel agree', (ctx) => {
    if (diskDir === null) {
      const why = `no writable directory on ext4/xfs/btrfs here (${tmpdir()} and the checkout are on other file systems)`;
      console.warn(`SKIPPED doctor file.longterm-pin on a disk file system: ${why}`);
      ctx.skip(why);
      return;
    }
    const { status, json } = doctor(diskDir, ['--size', '64KiB', '--backing', 'file-shared', '--backend', 'uring', '--try']);
    const f = findingOf(json, 'file.longterm-pin');
    expect(f.evidence['directory']).toBe(diskDir);
    expect(f.evidence['filesystem']).toBe(DISK_FILESYSTEMS.get(magicOf(diskDir)!));
    expect(f.evidence['kernelRelease']).toBe(release());
    expect(json.try).not.toBeNull();
    if (kernelRefuses) {
      expect(f.status).toBe('fail');
      expect(f.evidence).toMatchObject({ probe: 'refused', call: 'io_uring_register', errno: 'EFAULT' });
      expect(f.summary).toContain(release());
      expect(f.fix.join('\n')).toMatch(/--backing memfd/);
      expect(f.fix.join('\n')).toMatch(/file-private/);
      expect(json.prediction).toMatchObject({ outcome: 'refused', cause: 'file.longterm-pin' });
      // The child's real registration of the whole buffer was refused with the same errno.
      expect(json.try).toMatchObject({ outcome: 'refused', errno: 'EFAULT' });
      expect(status).toBe(1);
    } else {
      expect(f).toMatchObject({ status: 'ok', evidence: { probe: 'allowed' } });
      expect(json.try!.outcome).toBe('registered');
    }
    expect(findingOf(json, 'try.outcome').status).toBe('ok');
  });

  it('a shared file on tmpfs: shmem pages may be pinned, and the real registration says so', (ctx) => {
    if (tmpfsDir === null) {
      console.warn('SKIPPED doctor file.longterm-pin on tmpfs: neither /dev/shm nor /run is tmpfs here');
      ctx.skip('no tmpfs directory here');
      return;
    }
    const { status, json } = doctor(tmpfsDir, ['--size', '64KiB', '--backing', 'file-shared', '--backend', 'uring', '--try']);
    const f = findingOf(json, 'file.longterm-pin');
    expect(f).toMatchObject({ status: 'ok', evidence: { directory: tmpfsDir, filesystem: 'tmpfs (shmem)', probe: 'allowed', errno: null } });
    expect(json.prediction).toMatchObject({ outcome: 'registered', cause: null });
    expect(json.try).toMatchObject({ outcome: 'registered' });
    expect(json.try!.pinnedBytes).toBe(64 * 1024);
    expect(findingOf(json, 'try.outcome').status).toBe('ok');
    expect(status).toBe(0);
  });

  it('requests that take no long-term write pin are exempt (no probe); other backings get no finding', () => {
    const dir = diskDir ?? tmpdir();
    const odp = doctor(dir, ['--size', '64KiB', '--backing', 'file-shared', '--backend', 'verbs', '--access', 'local-write,on-demand']).json;
    expect(findingOf(odp, 'file.longterm-pin')).toMatchObject({ status: 'ok', evidence: { directory: dir } });
    expect(findingOf(odp, 'file.longterm-pin').summary).toMatch(/on-demand/);
    expect(findingOf(odp, 'file.longterm-pin').evidence['probe']).toBeUndefined();
    const readOnly = doctor(dir, ['--size', '64KiB', '--backing', 'file-shared', '--backend', 'verbs', '--access', 'remote-read']).json;
    expect(findingOf(readOnly, 'file.longterm-pin').summary).toMatch(/without FOLL_WRITE/);
    const mlock = doctor(dir, ['--size', '64KiB', '--backing', 'file-shared', '--backend', 'mlock']).json;
    expect(findingOf(mlock, 'file.longterm-pin').summary).toMatch(/mlock takes no long-term pin/);
    const anon = doctor(dir, ['--size', '64KiB', '--backing', 'anon', '--backend', 'uring']).json;
    expect(anon.findings.map((x) => x.id)).not.toContain('file.longterm-pin');
  });
});
