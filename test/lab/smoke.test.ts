// First lab test: the VM has a working Soft-RoCE device, seen by iproute2, libibverbs and koffi.
import koffi from 'koffi';
import { describe, expect, it } from 'vitest';
import { RXE_DEVICE, check, inLab, json, labKernel, rdmaSys } from './helpers.js';

describe.skipIf(!inLab)(`Soft-RoCE lab smoke (${labKernel.name || '?'} kernel ${labKernel.release})`, () => {
  it('knows which lab kernel it runs on', () => {
    expect(['stable', 'new']).toContain(labKernel.name);
    expect(labKernel.release).toBe(check(['uname', '-r']).trim());
  });

  it('ibv_devices lists rxe0', () => {
    expect(check(['ibv_devices'])).toMatch(new RegExp(`^\\s*${RXE_DEVICE}\\s`, 'm'));
  });

  it('rdma -j dev reports rxe0', () => {
    const devs = json<Array<{ ifname: string }>>(['rdma', '-j', 'dev']);
    expect(devs.map((d) => d.ifname)).toContain(RXE_DEVICE);
  });

  it('rdma -j sys show parses', () => {
    const sys = rdmaSys();
    expect(['shared', 'exclusive']).toContain(sys['netns']);
    // Both lab kernels (>= 5.13) copy pinned pages for the child at fork.
    expect(sys['copy-on-fork']).toBe('on');
  });

  it('node dlopens libibverbs.so.1 through koffi and finds rxe0', () => {
    const lib = koffi.load('libibverbs.so.1');
    const getList = lib.func('void *ibv_get_device_list(_Out_ int *num)');
    const freeList = lib.func('void ibv_free_device_list(void *list)');
    const devName = lib.func('const char *ibv_get_device_name(void *device)');
    const num = [0];
    const list = getList(num);
    expect(list).not.toBeNull();
    try {
      expect(num[0]).toBeGreaterThan(0);
      const devices = koffi.decode(list, 'void *', num[0]!) as unknown[];
      const names = devices.map((d) => devName(d) as string);
      expect(names).toContain(RXE_DEVICE);
    } finally {
      freeList(list);
    }
  });
});
