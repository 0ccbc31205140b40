// The verbs device path of `rdmactl fork`, on real Soft-RoCE: a loopback RC QP that RDMA WRITEs into
// and RDMA READs from the registered MR. Every lab kernel (5.10 included, which cannot say so over netlink)
// copies pinned pages for the child at fork, so a pinned MR stays coherent with the parent whoever writes;
// where rxe has ODP an on-demand MR must be coherent too, elsewhere the ODP rows are skipped for lack of it.
import { afterEach, describe, expect, it } from 'vitest';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE, mmap, munmap, view } from '../../src/ffi/libc.js';
import { pageSize } from '../../src/proc/pagemap.js';
import { IBV_ACCESS_LOCAL_WRITE, IBV_ACCESS_ON_DEMAND, IBV_ACCESS_REMOTE_READ, IBV_ACCESS_REMOTE_WRITE } from '../../src/ffi/verbs/index.js';
import { LoopbackConnection, WorkCompletionError, getDeviceList, type DeviceContext } from '../../src/engine/verbs/index.js';
import { RXE_DEVICE, copyOnForkAttribute, inLab, labKernel, run, rxeHasOdp } from './helpers.js';

// Whether rxe0 does ODP, as ibv_devinfo reads it from the running kernel.
const rxeOdp = inLab && rxeHasOdp();

interface ForkRow {
  backend: string;
  protection: string;
  writer: string;
  pinned: boolean;
  onDemand: boolean;
  verdict: string;
  deviceSeesParentWrite: boolean | null;
  parentSeesDeviceWrite: boolean | null;
  parentPfnStable: boolean | null;
  devicePath: string | null;
  reason: string | null;
}

function fork(args: string[]): { status: number | null; rows: ForkRow[]; stderr: string; copyOnFork: boolean | null; copyOnForkSource: string } {
  const r = run(['node', 'bin/rdmactl', 'fork', '--backend', 'verbs', '--protect', 'none', '--writer', 'parent,child,both', '--json', ...args], { timeoutMs: 110_000 });
  let rows: ForkRow[] = [];
  let doc: { scenarios: ForkRow[]; copyOnFork: boolean | null; copyOnForkSource: string };
  try {
    doc = JSON.parse(r.stdout) as typeof doc;
    rows = doc.scenarios;
  } catch {
    throw new Error(`rdmactl fork did not print JSON (status ${r.status}):\n${r.stdout}\n${r.stderr}`);
  }
  return { status: r.status, rows, stderr: r.stderr, copyOnFork: doc.copyOnFork, copyOnForkSource: doc.copyOnForkSource };
}

describe.skipIf(!inLab)(`rdmactl fork --backend verbs through RDMA WRITE/READ (${labKernel.name || '?'} kernel ${labKernel.release})`, () => {
  it('a pinned MR stays coherent with the parent for every writer, checked by the device', () => {
    const { status, rows, stderr, copyOnFork, copyOnForkSource } = fork([]);
    expect(status, stderr).toBe(0);
    // The kernel's flag where it has one; unknown before the attribute, and the verdicts below are the answer.
    const attr = copyOnForkAttribute();
    expect({ copyOnFork, copyOnForkSource }).toEqual(attr === 'absent'
      ? { copyOnFork: null, copyOnForkSource: 'unknown (kernel predates the attribute)' }
      : { copyOnFork: attr, copyOnForkSource: 'rdma sys show' });
    expect(rows.map((r) => r.writer)).toEqual(['parent', 'child', 'both']);
    for (const r of rows) {
      expect({ writer: r.writer, verdict: r.verdict, reason: r.reason }).toEqual({ writer: r.writer, verdict: 'coherent', reason: null });
      expect({ pinned: r.pinned, onDemand: r.onDemand }).toEqual({ pinned: true, onDemand: false });
      expect(r.deviceSeesParentWrite).toBe(true);
      expect(r.parentSeesDeviceWrite).toBe(true);
      expect(r.devicePath).toMatch(/^verbs RDMA WRITE\/READ over a loopback RC QP \(rxe0 port 1, GID \d+ RoCE v2 .*pinned MR\)$/);
      // Root in the lab sees PFNs: the parent kept the pinned pages.
      expect(r.parentPfnStable).toBe(true);
    }
  });

  it(rxeOdp ? 'an on-demand (ODP) MR is coherent too' : 'on-demand rows are skipped: this rxe has no ODP (ibv_devinfo)', () => {
    const { status, rows, stderr } = fork(['--access', 'on-demand']);
    expect(status, stderr).toBe(0);
    expect(rows).toHaveLength(3);
    for (const r of rows) {
      if (rxeOdp) {
        expect({ writer: r.writer, verdict: r.verdict, reason: r.reason }).toEqual({ writer: r.writer, verdict: 'coherent', reason: null });
        expect(r.deviceSeesParentWrite).toBe(true);
        expect(r.parentSeesDeviceWrite).toBe(true);
        expect(r.devicePath).toMatch(/loopback RC QP .*on-demand MR\)$/);
        // Nothing is pinned: the device follows the page tables.
        expect({ pinned: r.pinned, onDemand: r.onDemand }).toEqual({ pinned: false, onDemand: true });
      } else {
        expect(r.verdict).toBe('skipped');
        expect(r.reason).toMatch(/has no ODP support/);
      }
    }
  });
});

describe.skipIf(!inLab)(`LoopbackConnection: RDMA WRITE then READ on ${RXE_DEVICE} (${labKernel.name || '?'} kernel)`, () => {
  const page = pageSize();
  const length = 4 * page;
  let ctx: DeviceContext | null = null;
  let mapped: bigint | null = null;

  afterEach(() => {
    ctx?.close();
    ctx = null;
    if (mapped !== null) munmap(mapped, length);
    mapped = null;
  });

  function open(access: number) {
    {
      using list = getDeviceList();
      const dev = list.find(RXE_DEVICE);
      if (!dev) throw new Error(`${RXE_DEVICE} not found`);
      ctx = dev.open();
    }
    mapped = mmap(length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    const pd = ctx.allocPd();
    const mr = pd.registerRange(mapped, length, access);
    return { pd, mr, mem: view(mapped, length), addr: mapped };
  }

  const pattern = (seed: number) => new Uint8Array(length).map((_, i) => (i * 31 + seed + (i >> 12)) & 0xff);

  for (const odp of [false, true]) {
    it.skipIf(odp && !rxeOdp)(`${odp ? 'on-demand' : 'pinned'} MR: a pattern written by RDMA WRITE is in memory and comes back by RDMA READ`, () => {
      const access = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ | (odp ? IBV_ACCESS_ON_DEMAND : 0);
      const { pd, mr, mem, addr } = open(access);
      using lb = LoopbackConnection.open(pd, { bounceLength: length, pathMtu: 'max' });
      expect(lb.qp.qpNum).toBeGreaterThan(0);
      expect(lb.gid?.type).toBe('RoCE v2');

      const written = pattern(7);
      lb.writeBytes(written, addr, mr.rkey);
      expect(Buffer.from(mem).equals(Buffer.from(written))).toBe(true);

      const cpu = pattern(99);
      mem.set(cpu);
      expect(Buffer.from(lb.readBytes(addr, mr.rkey, length)).equals(Buffer.from(cpu))).toBe(true);

      // The explicit form: local MR + address, remote address + rkey.
      const bounce = view(lb.bounceAddr, lb.bounceLength);
      bounce.fill(0);
      lb.rdmaRead(lb.bounceMr, lb.bounceAddr, addr + BigInt(page), mr.rkey, page);
      expect(Buffer.from(bounce.subarray(0, page)).equals(Buffer.from(cpu.subarray(page, 2 * page)))).toBe(true);

      lb.close();
      expect(lb.closed).toBe(true);
      lb.close(); // idempotent
    });
  }

  it('pinned MR at the port\'s active MTU (packets smaller than a page) works as well', () => {
    const { pd, mr, mem, addr } = open(IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ);
    using lb = LoopbackConnection.open(pd, { bounceLength: length });
    expect(lb.mtu).toBeLessThan(page); // rxe on a 1500-byte netdev: 1024
    const written = pattern(3);
    lb.writeBytes(written, addr, mr.rkey);
    expect(Buffer.from(mem).equals(Buffer.from(written))).toBe(true);
  });

  it('a wrong rkey fails the work request with a named completion status', () => {
    const { pd, mr, addr } = open(IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ);
    using lb = LoopbackConnection.open(pd, { bounceLength: page, timeoutMs: 20_000 });
    let error: unknown;
    try {
      lb.writeBytes(new Uint8Array(page), addr, mr.rkey ^ 0x100);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(WorkCompletionError);
    // The responder is this same QP: 6.1 reports the NAK (REM_ACCESS_ERR); 7.2 moves the QP to the
    // error state on the responder side first and the request is flushed.
    expect((error as WorkCompletionError).statusName).toMatch(/^IBV_WC_(REM_ACCESS_ERR|WR_FLUSH_ERR)$/);
    expect((error as Error).message).toMatch(/RDMA WRITE failed: IBV_WC_/);
  });

  it('closing the context destroys the QP and CQ it owns (parents close children)', () => {
    const { pd } = open(IBV_ACCESS_LOCAL_WRITE);
    const cq = pd.context.createCq(4);
    const qp = pd.createQp({ sendCq: cq });
    pd.context.close();
    expect(qp.closed).toBe(true);
    expect(cq.closed).toBe(true);
    expect(pd.closed).toBe(true);
    ctx = null;
  });
});
