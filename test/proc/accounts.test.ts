// Users and groups through the real C library (NSS), checked against getent and id, which ask NSS
// the same way; the buffer growth on ERANGE and the per-run cache on real lookups.

import { spawnSync } from 'node:child_process';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { getpwnamR } from '../../src/ffi/libc.js';
import { SyscallError } from '../../src/lib/errno.js';
import { groupByGid, groupsOfUser, growingLookup, nssCallCount, resolveUser, userByName, userName } from '../../src/proc/accounts.js';

/** getent's answer: the passwd line's fields, or null when it exits 2 ("not found"). */
function getent(database: 'passwd' | 'group', key: string): string[] | null {
  const r = spawnSync('getent', [database, key], { encoding: 'utf8' });
  if (r.error) throw new Error(`getent is needed for this test: ${r.error.message}`);
  if (r.status === 2) return null;
  expect(r.status).toBe(0);
  return r.stdout.trimEnd().split(':');
}

/** A uid at or above `from` that NSS has no name for (getent says so). */
function unknownUid(from: number): number {
  for (let uid = from; ; uid += 1) if (getent('passwd', String(uid)) === null) return uid;
}

describe('users through NSS', () => {
  it('uid → name agrees with getent for every uid of a running process', () => {
    const uids = new Set([0, 65534, process.getuid!()]);
    for (const uid of uids) {
      const entry = getent('passwd', String(uid));
      expect(userName(uid), `uid ${uid}`).toBe(entry ? entry[0] : String(uid));
    }
  });

  it('a uid NSS does not know prints as its number, as ps does', () => {
    const uid = unknownUid(987654);
    expect(userName(uid)).toBe(String(uid));
    expect(resolveUser(String(uid))).toBe(uid);
  });

  it('name → uid agrees with getent; unknown names, NUL and out-of-range numbers are null', () => {
    const root = getent('passwd', 'root')!;
    expect(resolveUser('root')).toBe(Number(root[2]));
    expect(userByName('root')).toEqual({ name: 'root', uid: Number(root[2]), gid: Number(root[3]) });
    expect(getent('passwd', 'rdmactl-no-such-user')).toBeNull();
    expect(resolveUser('rdmactl-no-such-user')).toBeNull();
    expect(resolveUser('root\0x')).toBeNull();
    expect(resolveUser('4294967295')).toBeNull();
  });

  it('the groups of a user are what id -G says (getgrouplist), with getent group names', () => {
    const user = userByName('root')!;
    const gids = spawnSync('id', ['-G', 'root'], { encoding: 'utf8' }).stdout.trim().split(/\s+/).map(Number);
    const groups = groupsOfUser(user);
    expect(groups.map((g) => g.gid).sort((a, b) => a - b)).toEqual([...new Set(gids)].sort((a, b) => a - b));
    expect(groups[0]!.gid).toBe(user.gid);
    for (const g of groups) expect(g.name).toBe(getent('group', String(g.gid))?.[0] ?? null);
    expect(groupByGid(0)?.name).toBe(getent('group', '0')![0]);
  });
});

describe('ERANGE: the buffer grows, up to a cap', () => {
  it('a buffer too small for the entry is doubled until it fits', () => {
    const before = nssCallCount();
    // root's passwd line is a few dozen bytes: 8 and 16 are too small for glibc, a later size is not.
    expect(growingLookup('getpwnam_r', (bytes) => getpwnamR('root', bytes), 8, 4096)?.name).toBe('root');
    expect(nssCallCount() - before).toBeGreaterThan(1);
  });

  it('past the cap it is an error naming the call and the cap, not a silent "no such user"', () => {
    let thrown: unknown;
    try {
      growingLookup('getpwnam_r', (bytes) => getpwnamR('root', bytes), 4, 16);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(SyscallError);
    expect((thrown as SyscallError).errnoName).toBe('ERANGE');
    expect((thrown as SyscallError).message).toBe('getpwnam_r: ERANGE (the entry does not fit in 16 bytes)');
  });
});

describe('one NSS call per uid and name per run', () => {
  it('thousands of lookups of one uid, known or not, ask NSS once', () => {
    const unknown = unknownUid(987700);
    const rootName = getent('passwd', '0')![0];
    const before = nssCallCount();
    for (let i = 0; i < 5000; i++) {
      expect(userName(unknown)).toBe(String(unknown));
      expect(userName(0)).toBe(rootName);
    }
    // userName(0) may be cached already by an earlier test: at most one call each.
    expect(nssCallCount() - before).toBeLessThanOrEqual(2);
    expect(nssCallCount() - before).toBeGreaterThanOrEqual(1);
    const again = nssCallCount();
    for (let i = 0; i < 1000; i++) expect(resolveUser('rdmactl-no-such-user-2')).toBeNull();
    expect(nssCallCount() - again).toBe(1);
  });
});

describe('answers age out for long runs (exporter, top)', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('an answer is asked again after 10 minutes, not before', () => {
    vi.useFakeTimers({ toFake: ['performance'] });
    const name = 'rdmactl-no-such-user-3';
    const before = nssCallCount();
    expect(resolveUser(name)).toBeNull();
    vi.advanceTimersByTime(9 * 60_000);
    expect(resolveUser(name)).toBeNull();
    expect(nssCallCount() - before).toBe(1);
    vi.advanceTimersByTime(61_000);
    expect(resolveUser(name)).toBeNull();
    expect(nssCallCount() - before).toBe(2);
  });
});
