// reg --fork-init: ibv_fork_init() before registering. libibverbs then marks each MR's range
// MADV_DONTFORK (VmFlags dc in /proc/PID/smaps) — when the kernel lacks copy-on-fork. Both lab kernels
// have copy-on-fork, so ibv_is_fork_initialized() says 'unneeded'; what smaps really shows for the MR
// range is asserted here (observed with libibverbs 44: the range IS marked dc even though the status is
// 'unneeded'), and compared with a plain registration, which verbs-reg.test.ts checks has no dc.
import { beforeAll, describe, expect, it } from 'vitest';
import { inLab, labKernel, rdmaSys } from './helpers.js';
import {
  bytesWithFlag, holderScope, lsRows, MiB, releaseHolder, vmasOver, vmPinOf, type RegRecord,
} from './verbs-helpers.js';

const LENGTH = 16 * MiB;

describe.skipIf(!inLab)(`verbs --fork-init on ${labKernel.name || '?'} (${labKernel.release})`, () => {
  const scope = holderScope();
  let rec: RegRecord;

  beforeAll(() => {
    rec = scope.detach(['reg', '16MiB', '--backend', 'verbs', '--fork-init', '--detach', '--json'], 'reg --fork-init --detach');
  });

  it('fork status follows the kernel’s copy-on-fork: unneeded when rdma sys show says on', () => {
    const cof = rdmaSys()['copy-on-fork'];
    expect(rec.protections).toEqual(['fork-init']);
    expect(rec.registrations[0]!.fork).toBe(cof === 'on' ? 'unneeded' : 'enabled');
    expect(vmPinOf(rec.pid)).toBe(rec.pinnedBytesBefore / 1024 + LENGTH / 1024);
  });

  it('smaps: the MR range carries VmFlags dc (MADV_DONTFORK) after ibv_fork_init, even when unneeded', () => {
    const addr = BigInt(rec.addr);
    const vmas = vmasOver(rec.pid, addr, LENGTH);
    const dc = bytesWithFlag(vmas, addr, LENGTH, 'dc');
    console.log(`[${labKernel.name} ${labKernel.release}] --fork-init, fork status '${rec.registrations[0]!.fork}': `
      + `${dc}/${LENGTH} bytes of the MR range have VmFlags dc; VMAs: ${vmas.map((v) => `${v.start.toString(16)}-${v.end.toString(16)} [${v.flags.join(' ')}]`).join('; ')}`);
    expect(dc).toBe(LENGTH);
  });

  it('ls reports the same fork protection as smaps, for the rdma row and the held row', () => {
    const rows = lsRows(scope.env).filter((r) => r.pid === rec.pid);
    expect(rows.map((r) => [r.source, r.forkProtection])).toEqual([['rdma', 'dontfork'], ['held', 'dontfork']]);
  });

  it('the holder releases it on SIGTERM', async () => {
    expect(await releaseHolder(rec.pid)).toBe(true);
    expect(vmPinOf(rec.pid)).toBeNull();
    scope.forget(rec.pid);
  });
});
