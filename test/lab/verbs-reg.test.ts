// `reg --backend verbs --detach`, `ls` and `dereg` against a real rxe0 MR, every number checked against
// an independent reading: the holder's /proc/PID/status and smaps (read here), and the kernel's MR
// table (`rdma -j -d res show mr`, keys as hex without 0x; rdmactl reg --json prints them as numbers).
import { beforeAll, describe, expect, it } from 'vitest';
import { RXE_DEVICE, inLab, labKernel } from './helpers.js';
import {
  bytesWithFlag, holderScope, kernelMrs, keyHex, lsRows, MiB, parseJson, rdmactl, reap, running, vmasOver, vmPinOf, type RegRecord,
} from './verbs-helpers.js';

const LENGTH = 64 * MiB;

describe.skipIf(!inLab)(`verbs reg/ls/dereg on ${labKernel.name || '?'} (${labKernel.release})`, () => {
  const scope = holderScope();
  let rec: RegRecord;

  beforeAll(() => {
    rec = scope.detach(['reg', '64MiB', '--backend', 'verbs', '--detach', '--json'], 'reg --detach');
  });

  it('returns keys, and the holder’s VmPin is exactly 65536 kB higher', () => {
    expect(rec.event).toBe('registered');
    expect(rec.device).toBe(RXE_DEVICE);
    expect(rec.length).toBe(LENGTH);
    expect(rec.handles).toBe(1);
    expect(Number.isInteger(rec.lkey) && rec.lkey > 0).toBe(true);
    expect(Number.isInteger(rec.rkey) && rec.rkey > 0).toBe(true);
    expect(rec.registrations).toHaveLength(1);
    expect(rec.registrations[0]!.lkey).toBe(rec.lkey);
    // The holder is our child now (we are its subreaper), alive, and pins exactly the MR.
    expect(running(rec.pid)).toBe(true);
    const pinKb = vmPinOf(rec.pid);
    expect(pinKb).toBe(rec.pinnedBytesBefore / 1024 + 65536);
    expect(rec.pinnedBytesAfter).toBe(pinKb! * 1024);
    // A plain registration (no --fork-init) leaves the range forkable: no VmFlags dc.
    const vmas = vmasOver(rec.pid, BigInt(rec.addr), LENGTH);
    expect(vmas.length).toBeGreaterThan(0);
    expect(bytesWithFlag(vmas, BigInt(rec.addr), LENGTH, 'dc')).toBe(0);
  });

  it('the kernel MR table shows the MR with the same pid, length and keys', () => {
    const mine = kernelMrs().filter((mr) => mr.pid === rec.pid);
    expect(mine).toHaveLength(1);
    const mr = mine[0]!;
    expect(mr.ifname).toBe(RXE_DEVICE);
    expect(mr.mrlen).toBe(LENGTH);
    expect(mr.lkey).toBe(keyHex(rec.lkey));
    expect(mr.rkey).toBe(keyHex(rec.rkey));
    expect(mr.comm).toBe('rdmactl-holder'); // holders name themselves before they register
  });

  it('ls shows the same MR: an rdma row given the held address, and a held row with evidence rdma', () => {
    const mr = kernelMrs().find((m) => m.pid === rec.pid)!;
    const rows = lsRows(scope.env).filter((r) => r.pid === rec.pid);
    const rdma = rows.filter((r) => r.source === 'rdma');
    const held = rows.filter((r) => r.source === 'held');
    expect(rows).toHaveLength(2);
    expect(rdma).toHaveLength(1);
    expect(held).toHaveLength(1);
    const end = `0x${(BigInt(rec.addr) + BigInt(LENGTH)).toString(16)}`;
    expect(rdma[0]).toMatchObject({
      addr: rec.addr, endAddr: end, length: LENGTH, device: RXE_DEVICE, lkey: mr.lkey, rkey: mr.rkey, handle: `mrn${mr.mrn}`,
      forkProtection: 'none', overlap: false, doubleCountedBytes: 0, evidence: null,
    });
    expect(held[0]).toMatchObject({
      addr: rec.addr, endAddr: end, length: LENGTH, device: RXE_DEVICE, lkey: keyHex(rec.lkey), rkey: keyHex(rec.rkey), handle: rec.id,
      evidence: 'rdma',
    });
  });

  it('dereg releases it: the holder exits, and the MR is gone from the kernel table and from ls', async () => {
    const out = parseJson<{ results: Array<{ id: string; pid: number; status: string; pinnedBytesHeld: number; holderExited: boolean }> }>(
      rdmactl(['dereg', rec.id, '--json'], scope.env), 'dereg --json');
    expect(out.results).toEqual([expect.objectContaining({ id: rec.id, pid: rec.pid, status: 'released', pinnedBytesHeld: LENGTH, holderExited: true })]);
    // Exited (a zombie until we reap it: no mm, so no VmPin line and nothing pinned).
    expect(running(rec.pid)).toBe(false);
    expect(vmPinOf(rec.pid)).toBeNull();
    expect(await reap(rec.pid)).toBe(true);
    scope.forget(rec.pid);
    expect(kernelMrs().filter((mr) => mr.pid === rec.pid)).toEqual([]);
    expect(lsRows(scope.env).filter((r) => r.pid === rec.pid || r.handle.startsWith(rec.id))).toEqual([]);
  });
});
