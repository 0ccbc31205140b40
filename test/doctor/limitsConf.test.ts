// pam_limits semantics on fixtures: domains (*, @group, %, uid ranges), types (soft/hard/-), values
// (KiB, unlimited), precedence (user > group > *; later wins among equals), "domain -" exemptions.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { accountFromFiles, memlockValueBytes, parseLimitsConf, resolvePamMemlock, type Account } from '../../src/doctor/limitsConf.js';

const fixture = (name: string): string => readFileSync(new URL(`../fixtures/etc/${name}`, import.meta.url), 'utf8');
const conf = parseLimitsConf(fixture('limits.conf'), '/etc/security/limits.conf');
const noLimits = parseLimitsConf(fixture('limits.d-90-nolimits.conf'), '/etc/security/limits.d/90-nolimits.conf');

const account = (name: string, uid: number, groups: string[] = [], gids: number[] = [uid]): Account => ({ name, uid, gid: uid, groups, gids });

describe('limits.conf parsing', () => {
  it('keeps four-word lines and "domain -" lines, strips comments, lowercases type/item/value', () => {
    expect(conf.map((l) => [l.line, l.domain, l.type, l.item, l.value])).toEqual([
      [3, '*', 'soft', 'core', '0'],
      [4, '*', 'hard', 'memlock', '65536'],
      [5, '@rdma', '-', 'memlock', 'unlimited'],
      [6, '%', '-', 'memlock', '1024'],
      [7, 'alice', 'soft', 'memlock', '131072'],
      [8, '1000:1999', 'hard', 'memlock', 'infinity'],
      [9, '@students', 'soft', 'memlock', 'bogus'],
    ]);
    expect(noLimits.map((l) => [l.domain, l.type, l.item])).toEqual([['carol', '-', ''], ['*', '-', 'memlock']]);
  });

  it('reads memlock values in KiB; unlimited, infinity, -1 and - are no limit', () => {
    expect(memlockValueBytes('64')).toBe(65536);
    for (const v of ['unlimited', 'infinity', '-1', '-']) expect(memlockValueBytes(v)).toBeNull();
    expect(memlockValueBytes('bogus')).toBeUndefined();
  });
});

describe('pam_limits resolution', () => {
  it('"*" applies to anyone not named or grouped', () => {
    const r = resolvePamMemlock([conf], account('bob', 500));
    expect([r.softBytes, r.hardBytes]).toEqual([undefined, 64 * 1024 * 1024]);
    expect(r.hardLine?.line).toBe(4);
  });

  it('a group entry beats "*" whatever the order; "-" sets soft and hard; % is ignored for memlock', () => {
    const r = resolvePamMemlock([conf], account('dave', 500, ['rdma']));
    expect([r.softBytes, r.hardBytes]).toEqual([null, null]);
    expect(r.softLine?.domain).toBe('@rdma');
  });

  it('a user entry beats the group; the soft limit is lowered to the hard one', () => {
    const r = resolvePamMemlock([conf], account('alice', 500, ['rdma']));
    expect(r.softBytes).toBe(128 * 1024 * 1024);
    expect(r.softLine?.domain).toBe('alice');
    expect(r.hardBytes).toBeNull(); // from @rdma: user entries only set soft
    const capped = resolvePamMemlock([parseLimitsConf('alice soft memlock 1000\nalice hard memlock 10\n', 'x')], account('alice', 500));
    expect([capped.softBytes, capped.hardBytes]).toEqual([10 * 1024, 10 * 1024]);
  });

  it('uid ranges count as user entries; bad values are skipped', () => {
    const r = resolvePamMemlock([conf], account('erin', 1500, ['students']));
    expect(r.hardBytes).toBeNull();
    expect(r.hardLine?.domain).toBe('1000:1999');
    expect(r.softBytes).toBeUndefined();
  });

  it('among entries of the same kind the later file wins', () => {
    const r = resolvePamMemlock([conf, noLimits], account('bob', 500));
    expect([r.softBytes, r.hardBytes]).toEqual([4 * 1024 * 1024, 4 * 1024 * 1024]);
    expect(r.hardLine?.file).toBe('/etc/security/limits.d/90-nolimits.conf');
  });

  it('a "USER -" line exempts the user: pam_limits stops and sets nothing', () => {
    const r = resolvePamMemlock([noLimits], account('carol', 500));
    expect(r.noLimitsLine?.domain).toBe('carol');
    expect([r.softBytes, r.hardBytes]).toEqual([undefined, undefined]);
  });

  it('"@:gid" is membership of that gid, named or not; "@min:max" compares the primary gid', () => {
    const lines = parseLimitsConf('@:990 - memlock 1\n@100:200 soft memlock 2\n', 'x');
    // 990 has no name (NSS knows the gid only): membership still counts.
    const r = resolvePamMemlock([lines], account('fay', 1002, [], [1002, 990]));
    expect([r.softBytes, r.hardBytes]).toEqual([1024, 1024]);
    expect(r.softLine?.line).toBe(1);
    const primary = resolvePamMemlock([lines], { ...account('fay', 1002), gid: 150, gids: [150] });
    expect([primary.softBytes, primary.hardBytes]).toEqual([2048, undefined]);
  });

  it('another root: the account and its groups (primary and supplementary) from its passwd/group text', () => {
    const found = accountFromFiles(1001, 'root:x:0:0::/root:/bin/sh\nann:x:1001:100::/home/ann:/bin/sh\n', 'users:x:100:\nrdma:x:990:bob,ann\nwheel:x:10:root\n');
    expect(found).toEqual({ name: 'ann', uid: 1001, gid: 100, groups: ['users', 'rdma'], gids: [100, 990] });
    expect(accountFromFiles(4242, 'root:x:0:0::/root:/bin/sh\n', '')).toBeNull();
  });
});
