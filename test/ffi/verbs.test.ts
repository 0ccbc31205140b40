// Verbs bindings and objects. The first half runs anywhere; the "real device" half runs only where
// an RDMA device exists (the Soft-RoCE lab: node lab/lab.mjs -- 'npx vitest run test/ffi/verbs.test.ts').

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SyscallError } from '../../src/lib/errno.js';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE, mmap, mprotect, munmap } from '../../src/ffi/libc.js';
import {
  IBV_ACCESS_LOCAL_WRITE,
  IBV_ACCESS_ON_DEMAND,
  IBV_ACCESS_RELAXED_ORDERING,
  IBV_ACCESS_REMOTE_READ,
  IBV_ACCESS_REMOTE_WRITE,
  be64ToHost,
  formatGuid,
  isAvailable,
  mtuBytes,
  odpTransportCapNames,
} from '../../src/ffi/verbs/index.js';
import { ACCESS_FLAGS, formatAccessFlags, parseAccessFlags } from '../../src/engine/verbs/access.js';
import { EXIT, UnsupportedError, UsageError } from '../../src/lib/errors.js';
import type { MappedBuffer } from '../../src/engine/types.js';
import { getDeviceList, listDeviceNames, listDevices, openVerbsRegistration } from '../../src/engine/verbs/index.js';

const haveLib = isAvailable();
const deviceNames = haveLib ? listDeviceNames() : [];
const haveDevice = deviceNames.length > 0;
if (!haveLib) console.warn('libibverbs.so.1 not loadable: verbs tests that need it are skipped');

function anonBuffer(length: number, readOnly = false): MappedBuffer {
  const addr = mmap(length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  if (readOnly) mprotect(addr, length, PROT_READ);
  let closed = false;
  return {
    addr,
    length,
    backing: 'anon',
    readOnly,
    path: null,
    close() {
      if (closed) return;
      closed = true;
      munmap(addr, length);
    },
    [Symbol.dispose]() {
      this.close();
    },
  };
}

function vmPinKb(): number {
  const m = /^VmPin:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) : 0;
}

describe('parseAccessFlags', () => {
  it('ORs named flags, ignoring case, blanks and empty items', () => {
    expect(parseAccessFlags('local-write,remote-read')).toBe(IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ);
    expect(parseAccessFlags(' Local-Write , remote-write,,')).toBe(IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
    expect(parseAccessFlags('')).toBe(0);
    expect(parseAccessFlags('on-demand')).toBe(IBV_ACCESS_ON_DEMAND);
    expect(parseAccessFlags('relaxed-ordering')).toBe(1 << 20);
    expect(parseAccessFlags(Object.keys(ACCESS_FLAGS).join(','))).toBe(0xff | IBV_ACCESS_RELAXED_ORDERING);
  });

  it('rejects an unknown flag with a UsageError naming it and listing the valid ones', () => {
    let err: unknown;
    try {
      parseAccessFlags('local-write,remote-writ');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UsageError);
    const usage = err as UsageError;
    expect(usage.exitCode).toBe(EXIT.USAGE);
    expect(usage.message).toContain("'remote-writ'");
    const hint = usage.hints.join('\n');
    for (const name of ['local-write', 'remote-write', 'remote-read', 'remote-atomic', 'mw-bind', 'zero-based', 'on-demand', 'hugetlb', 'relaxed-ordering']) {
      expect(hint).toContain(name);
    }
  });

  it('formats bits back to names', () => {
    expect(formatAccessFlags(7)).toEqual(['local-write', 'remote-write', 'remote-read']);
    expect(formatAccessFlags(IBV_ACCESS_ON_DEMAND | 0x100)).toEqual(['on-demand', '0x100']);
    expect(parseAccessFlags(formatAccessFlags(0x1000ff).join(','))).toBe(0x1000ff);
  });
});

describe('value helpers', () => {
  it('byte-swaps __be64 GUIDs and formats them like ibv_devices', () => {
    expect(be64ToHost(0x5634_12fe_ff00_5450n)).toBe(0x5054_00ff_fe12_3456n);
    expect(formatGuid(0x5054_00ff_fe12_3456n)).toBe('5054:00ff:fe12:3456');
    expect(formatGuid(0n)).toBe('0000:0000:0000:0000');
  });

  it('decodes MTU enums and ODP capability bits', () => {
    expect([1, 2, 3, 4, 5, 0, 6].map(mtuBytes)).toEqual([256, 512, 1024, 2048, 4096, 0, 0]);
    expect(odpTransportCapNames(0x1f)).toEqual(['send', 'recv', 'write', 'read', 'atomic']);
    expect(odpTransportCapNames(0)).toEqual([]);
  });
});

describe.skipIf(!haveLib || haveDevice)('without an RDMA device (this host)', () => {
  it('listDevices() is an empty list, not an error', () => {
    expect(listDevices()).toEqual([]);
    expect(listDeviceNames()).toEqual([]);
  });

  it('openVerbsRegistration throws UnsupportedError with the Soft-RoCE hint', () => {
    using buffer = anonBuffer(1 << 20);
    let err: unknown;
    try {
      openVerbsRegistration({ access: IBV_ACCESS_LOCAL_WRITE, buffer, forkInit: false });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UnsupportedError);
    const unsupported = err as UnsupportedError;
    expect(unsupported.exitCode).toBe(EXIT.UNSUPPORTED);
    expect(unsupported.message).toMatch(/^no RDMA device found \(ibv_get_device_list: (ENOSYS|ENODEV)/);
    expect(unsupported.cause).toBeInstanceOf(SyscallError);
    const hints = unsupported.hints.join('\n');
    expect(hints).toContain('rdma link add rxe0 type rxe netdev eth0');
    expect(hints).toContain('CONFIG_RDMA_RXE');
  });

  it('the raw device list reports the errno as a SyscallError', () => {
    let err: unknown;
    try {
      getDeviceList().close();
    } catch (e) {
      err = e;
    }
    // ENOSYS here (no RDMA in the kernel); an empty list would also be fine.
    if (err !== undefined) {
      expect(err).toBeInstanceOf(SyscallError);
      expect((err as SyscallError).call).toBe('ibv_get_device_list');
    }
  });
});

describe.skipIf(!haveDevice)('with a real RDMA device', () => {
  const name = deviceNames[0]!;
  const MiB = 1024 * 1024;

  // First registration of the process: ibv_fork_init is refused (EINVAL) after any earlier MR.
  it('openVerbsRegistration (fork-init, first registration): one Registration, closed MR → PD → context', () => {
    using buffer = anonBuffer(16 * MiB);
    const before = vmPinKb();
    const reg = openVerbsRegistration({ device: name, access: 7, buffer, forkInit: true });
    expect(reg.backend).toBe('verbs');
    expect(reg.details.device).toBe(name);
    expect(['enabled', 'unneeded']).toContain(reg.details.fork);
    expect(vmPinKb() - before).toBe(16384);
    reg.close();
    reg.close();
    expect(reg.closed).toBe(true);
    expect(reg.mr.closed && reg.pd.closed && reg.context.closed).toBe(true);
    expect(vmPinKb()).toBe(before);
  });

  it('listDevices() describes the device, its ports and ODP', () => {
    const [info] = listDevices().filter((d) => d.name === name);
    expect(info).toBeDefined();
    expect(info!.error).toBeNull();
    expect(info!.guid).toMatch(/^[0-9a-f]{4}(:[0-9a-f]{4}){3}$/);
    expect(info!.maxMr).toBeGreaterThan(0);
    expect(typeof info!.maxMrSize).toBe('bigint');
    expect(info!.ports!.length).toBeGreaterThan(0);
    expect(info!.ports![0]!.port).toBe(1);
    expect(['disabled', 'enabled', 'unneeded']).toContain(info!.fork);
  });

  it('DeviceContext → PD → MR: keys, VmPin up by the buffer size, dereg brings it back', () => {
    using buffer = anonBuffer(64 * MiB);
    using list = getDeviceList();
    using ctx = list.find(name)!.open();
    list.close(); // contexts outlive the list
    expect(ctx.queryDevice().phys_port_cnt).toBeGreaterThan(0);
    expect(ctx.queryPort(1).state).toBeGreaterThan(0);
    using pd = ctx.allocPd();
    const before = vmPinKb();
    const mr = pd.register(buffer, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ);
    expect(vmPinKb() - before).toBe(65536);
    expect(mr.addr).toBe(buffer.addr);
    expect(mr.length).toBe(64 * MiB);
    expect(mr.details).toMatchObject({ device: name, lkey: mr.lkey, rkey: mr.rkey, access: 5 });
    mr.close();
    mr.close();
    expect(mr.closed).toBe(true);
    expect(vmPinKb()).toBe(before);
  });

  it('closing the context closes live PDs and MRs first', () => {
    using buffer = anonBuffer(4 * MiB);
    using list = getDeviceList();
    const ctx = list.find(name)!.open();
    const pd = ctx.allocPd();
    const before = vmPinKb();
    const mr = pd.register(buffer, IBV_ACCESS_LOCAL_WRITE);
    expect(vmPinKb() - before).toBe(4096);
    ctx.close();
    expect([mr.closed, pd.closed, ctx.closed]).toEqual([true, true, true]);
    expect(vmPinKb()).toBe(before);
    ctx.close();
  });

  it('local-write on a read-only mapping fails with the SyscallError, and the PD is still released', () => {
    using buffer = anonBuffer(1 * MiB, true);
    using list = getDeviceList();
    const ctx = list.find(name)!.open();
    const pd = ctx.allocPd();
    let err: unknown;
    try {
      pd.register(buffer, IBV_ACCESS_LOCAL_WRITE);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SyscallError);
    expect(['EFAULT', 'EACCES', 'EPERM']).toContain((err as SyscallError).errnoName);
    ctx.close();
    expect(pd.closed).toBe(true);
  });

  it('fork-init again after registrations is fine (done once per process)', () => {
    using buffer = anonBuffer(MiB);
    using reg = openVerbsRegistration({ device: name, access: 1, buffer, forkInit: true });
    expect(['enabled', 'unneeded']).toContain(reg.details.fork);
  });

  it('an unknown device name is UnsupportedError listing the real ones', () => {
    using buffer = anonBuffer(MiB);
    expect(() => openVerbsRegistration({ device: 'nosuchdev9', access: 1, buffer, forkInit: false })).toThrow(UnsupportedError);
  });

  it('on-demand: UnsupportedError without ODP, no pinning with it', () => {
    using buffer = anonBuffer(8 * MiB);
    const [info] = listDevices().filter((d) => d.name === name);
    const access = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_ON_DEMAND;
    if (info!.odp && !info!.odp.supported) {
      expect(() => openVerbsRegistration({ device: name, access, buffer, forkInit: false })).toThrow(/has no ODP support \(on-demand paging\)/);
      return;
    }
    const before = vmPinKb();
    using reg = openVerbsRegistration({ device: name, access, buffer, forkInit: false });
    expect(vmPinKb()).toBe(before);
    expect(reg.details.accessFlags).toBe('local-write,on-demand');
  });

});
