// `reg --overlap`: two MRs over one range. ib_umem_get charges every page of every MR to pinned_vm,
// so the holder's VmPin counts the range twice; the kernel MR table has two MRs; ls gives both rdma
// rows the held address (the kernel table has none) and flags the overlap and the bytes counted twice.
import { beforeAll, describe, expect, it } from 'vitest';
import { RXE_DEVICE, inLab, labKernel } from './helpers.js';
import { holderScope, kernelMrs, keyHex, lsRows, MiB, vmPinOf, type RegRecord } from './verbs-helpers.js';

const LENGTH = 16 * MiB;

describe.skipIf(!inLab)(`verbs --overlap on ${labKernel.name || '?'} (${labKernel.release})`, () => {
  const scope = holderScope();
  let rec: RegRecord;

  beforeAll(() => {
    rec = scope.detach(['reg', '16MiB', '--backend', 'verbs', '--overlap', '--detach', '--json'], 'reg --overlap --detach');
  });

  it('VmPin counts the range twice (2 × length) and the kernel table has two MRs', () => {
    expect(rec.handles).toBe(2);
    expect(rec.registrations.map((r) => r.addr)).toEqual([rec.addr, rec.addr]);
    expect(vmPinOf(rec.pid)).toBe(rec.pinnedBytesBefore / 1024 + (2 * LENGTH) / 1024);
    const mrs = kernelMrs().filter((mr) => mr.pid === rec.pid);
    expect(mrs).toHaveLength(2);
    expect(mrs.every((mr) => mr.mrlen === LENGTH && mr.ifname === RXE_DEVICE)).toBe(true);
    expect(mrs.map((mr) => mr.lkey).sort()).toEqual(rec.registrations.map((r) => keyHex(r.lkey)).sort());
    expect(new Set(mrs.map((mr) => mr.lkey)).size).toBe(2);
  });

  it('ls flags the overlap and the bytes counted twice', () => {
    const rows = lsRows(scope.env).filter((r) => r.pid === rec.pid);
    const rdma = rows.filter((r) => r.source === 'rdma');
    const held = rows.filter((r) => r.source === 'held');
    expect(rdma).toHaveLength(2);
    expect(held).toHaveLength(2);
    // Addresses come only from the held join (one held range per MR, matched by pid, length and lkey).
    expect(rdma.map((r) => r.addr)).toEqual([rec.addr, rec.addr]);
    expect(rdma.map((r) => r.lkey).sort()).toEqual(rec.registrations.map((r) => keyHex(r.lkey)).sort());
    expect(rdma.every((r) => r.overlap)).toBe(true);
    // The second registration of the range is the one counted twice: together exactly one length.
    expect(rdma.reduce((sum, r) => sum + r.doubleCountedBytes, 0)).toBe(LENGTH);
    expect(held.every((r) => r.evidence === 'rdma' && r.handle === rec.id)).toBe(true);
    // And the kernel's extra charge is exactly what ls calls counted twice.
    expect(vmPinOf(rec.pid)! * 1024 - LENGTH).toBe(rdma.reduce((sum, r) => sum + r.doubleCountedBytes, 0));
  });

  it('releasing the holder drops both MRs', async () => {
    expect(await scope.release(rec.pid)).toBe(true);
    expect(vmPinOf(rec.pid)).toBeNull();
    expect(kernelMrs().filter((mr) => mr.pid === rec.pid)).toEqual([]);
  });
});
