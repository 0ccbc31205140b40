// First lab test: the VM has a working Soft-RoCE device, seen by iproute2, libibverbs and koffi.
import koffi from 'koffi';
import { readdirSync, readFileSync, statfsSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { RXE_DEVICE, check, copyOnForkAttribute, inLab, json, labDisk, labDiskMissing, labKernel, rdmaSys } from './helpers.js';

const EXT4_SUPER_MAGIC = 0xef53;

describe.skipIf(!inLab)(`Soft-RoCE lab smoke (${labKernel.name || '?'} kernel ${labKernel.release})`, () => {
  it('knows which lab kernel it runs on', () => {
    expect(['bullseye', 'stable', 'trixie', 'new']).toContain(labKernel.name);
    expect(labKernel.release).toBe(check(['uname', '-r']).trim());
  });

  it('has a fresh, writable ext4 scratch disk on a virtio block device', () => {
    if (!labDisk) throw new Error(labDiskMissing);
    expect(Number(statfsSync(labDisk).type)).toBe(EXT4_SUPER_MAGIC);
    const mount = readFileSync('/proc/self/mounts', 'utf8').split('\n').find((line) => line.split(' ')[1] === labDisk);
    expect(mount?.split(' ').slice(0, 3)).toEqual(['/dev/vda', labDisk, 'ext4']);
    // Formatted for this boot: nothing but mkfs's lost+found (this test leaves nothing either).
    expect(readdirSync(labDisk)).toEqual(['lost+found']);
    const probe = join(labDisk, `smoke-${process.pid}`);
    writeFileSync(probe, 'x');
    rmSync(probe);
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
    // Where the kernel reports copy-on-fork (5.12+) it is on; before, iproute2 prints "off" for a
    // reply without the attribute, which our own netlink reading tells apart.
    const attr = copyOnForkAttribute();
    expect(sys['copy-on-fork']).toBe(attr === 'absent' ? 'off' : attr ? 'on' : 'off');
    if (attr !== 'absent') expect(attr).toBe(true);
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
