// On-demand paging: where rdma_rxe has ODP (ibv_devinfo: ODP_SUPPORT) an MR registers without pinning
// anything; where it has none rdmactl refuses before calling ibv_reg_mr, with exit 3.
import { existsSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { RXE_DEVICE, inLab, labKernel, rxeHasOdp } from './helpers.js';
import { holderScope, kernelMrs, keyHex, MiB, rdmactl, vmPinOf } from './verbs-helpers.js';

const ARGS = ['reg', '64MiB', '--backend', 'verbs', '--access', 'local-write,remote-read,remote-write,on-demand', '--detach', '--json'];
const odp = inLab && rxeHasOdp();

describe.skipIf(!inLab)(`verbs on-demand paging on ${labKernel.name || '?'} (${labKernel.release})`, () => {
  const scope = holderScope();

  it.runIf(odp)('registers 64 MiB with VmPin unchanged (nothing pinned), and the MR is in the kernel table', async () => {
    const rec = scope.detach(ARGS, 'reg on-demand --detach');
    expect(rec.registrations[0]!.accessFlags).toBe('local-write,remote-write,remote-read,on-demand');
    expect(vmPinOf(rec.pid)).toBe(rec.pinnedBytesBefore / 1024);
    expect(vmPinOf(rec.pid)).toBe(0);
    expect(rec.pinnedBytesAfter).toBe(rec.pinnedBytesBefore);
    const mrs = kernelMrs().filter((mr) => mr.pid === rec.pid);
    expect(mrs).toHaveLength(1);
    expect(mrs[0]).toMatchObject({ ifname: RXE_DEVICE, mrlen: 64 * MiB, lkey: keyHex(rec.lkey) });
    expect(await scope.release(rec.pid)).toBe(true);
    expect(kernelMrs().filter((mr) => mr.pid === rec.pid)).toEqual([]);
  });

  it.runIf(!odp)('fails with "no ODP support" and exit 3; nothing registered, nothing held', () => {
    const before = kernelMrs().length;
    const r = rdmactl(ARGS, scope.env);
    expect(r.status, r.stdout + r.stderr).toBe(3);
    expect(r.stderr).toContain(`device ${RXE_DEVICE} has no ODP support (on-demand paging)`);
    expect(r.stderr).toContain('ODP_SUPPORT');
    expect(r.stdout.trim()).toBe('');
    expect(kernelMrs()).toHaveLength(before);
    // No holder was left behind: no held record in the runtime directory.
    expect(existsSync(`${scope.dir}/rdmactl`) ? readdirSync(`${scope.dir}/rdmactl`) : []).toEqual([]);
  });
});
