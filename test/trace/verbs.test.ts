// The verbs source: its probe plan against binutils' and the C compiler's reading of libibverbs,
// its library discovery parsers, and handle() over trace_pipe payloads in the kernel's format
// (the format was taken from a real uprobe on this library: see verbs-uprobe.test.ts).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseElf, readFileCapped, type ElfImage } from '../../src/trace/elf.js';
import type { TraceLine } from '../../src/trace/types.js';
import { IBV_MR_HANDLE, IBV_MR_LENGTH, IBV_MR_LKEY, VerbsSource, findLibibverbs, libibverbsInLdCache, libibverbsInMaps, planVerbsProbes } from '../../src/trace/verbs.js';

const LIBIBVERBS = '/usr/lib/x86_64-linux-gnu/libibverbs.so.1';
const VERBS_H = '/usr/include/infiniband/verbs.h';

describe('struct ibv_mr offsets', () => {
  const cc = spawnSync('cc', ['--version'], { stdio: 'ignore' }).status === 0;
  const skip = !cc || !existsSync(VERBS_H);
  if (skip) console.warn(`SKIP ibv_mr offsets: ${!cc ? 'no C compiler (cc)' : `${VERBS_H} missing (libibverbs-dev)`}`);
  it.skipIf(skip)('match what the C compiler makes of infiniband/verbs.h', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rdmactl-ibvmr-'));
    try {
      writeFileSync(join(dir, 'o.c'), '#include <stddef.h>\n#include <stdio.h>\n#include <infiniband/verbs.h>\nint main(void){printf("%zu %zu %zu\\n", offsetof(struct ibv_mr, length), offsetof(struct ibv_mr, handle), offsetof(struct ibv_mr, lkey));return 0;}\n', { flag: 'wx' });
      const build = spawnSync('cc', ['-o', join(dir, 'o'), join(dir, 'o.c')], { encoding: 'utf8' });
      expect(build.status, build.stderr).toBe(0);
      const out = spawnSync(join(dir, 'o'), { encoding: 'utf8' });
      expect(out.stdout.trim()).toBe(`${IBV_MR_LENGTH} ${IBV_MR_HANDLE} ${IBV_MR_LKEY}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe.skipIf(!existsSync(LIBIBVERBS))('the probe plan for libibverbs.so.1', () => {
  it('puts an entry and a return uprobe on each default-version export nm lists, at its file offset', () => {
    const image = parseElf(readFileCapped(LIBIBVERBS));
    const plan = planVerbsProbes([{ path: '/lib/libibverbs.so.1', image }]);
    const nm = spawnSync('nm', ['-D', '--with-symbol-versions', LIBIBVERBS], { encoding: 'utf8' });
    expect(nm.status).toBe(0);
    const readelf = spawnSync('readelf', ['-lW', LIBIBVERBS], { encoding: 'utf8' });
    const loads = [...readelf.stdout.matchAll(/^\s+LOAD\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+0x[0-9a-f]+\s+0x([0-9a-f]+)/gm)].map((m) => m.slice(1, 4).map((x) => parseInt(x!, 16)));
    const wanted = ['ibv_reg_mr', 'ibv_reg_mr_iova', 'ibv_reg_mr_iova2', '__ibv_reg_mr', '__ibv_reg_mr_iova', 'ibv_reg_dmabuf_mr', 'ibv_dereg_mr'];
    let probed = 0;
    for (const name of wanted) {
      const m = new RegExp(`^([0-9a-f]+) [TtWi] ${name.replace(/\./g, '\\.')}@@\\S+$`, 'm').exec(nm.stdout);
      const entry = plan.probes.find((p) => p.kind === 'uprobe' && p.event.endsWith(`${name.replace(/^_+/, 'u_')}_entry`));
      if (!m) {
        expect(entry, `${name} is not exported, so not probed`).toBeUndefined();
        continue;
      }
      probed += 1;
      const vaddr = parseInt(m[1]!, 16);
      const [offset, segVaddr] = loads.find(([, v, size]) => vaddr >= v! && vaddr < v! + size!)!;
      expect(entry?.target.split(' ')[0]).toBe(`/lib/libibverbs.so.1:0x${(vaddr - segVaddr! + offset!).toString(16)}`);
      const ret = plan.probes.find((p) => p.kind === 'uretprobe' && p.event === entry!.event.replace(/_entry$/, '_return'));
      expect(ret?.target.split(' ')[0]).toBe(entry!.target.split(' ')[0]);
    }
    expect(probed).toBeGreaterThanOrEqual(3);
    expect(plan.probes).toHaveLength(probed * 2);
    for (const probe of plan.probes) expect(probe.event).toMatch(/^[a-z0-9_]{1,63}$/);
  });
});

describe('finding libibverbs', () => {
  it.skipIf(!existsSync(LIBIBVERBS))('finds the installed library once, however many paths lead to it', () => {
    const found = findLibibverbs();
    expect(found).toContain(realpathSync(LIBIBVERBS));
    const inodes = found.map((path) => `${statSync(path).dev}:${statSync(path).ino}`);
    expect(new Set(inodes).size).toBe(found.length);
  });

  it('reads the library paths out of a maps text', () => {
    const maps = [
      '55d4c0a00000-55d4c0a02000 r--p 00000000 08:01 1311 /usr/bin/ibv_devices',
      '7f744af2a000-7f744af31000 r--p 00000000 08:01 918273 /usr/lib/x86_64-linux-gnu/libibverbs.so.1.14.44.0',
      '7f744af31000-7f744af44000 r-xp 00007000 08:01 918273 /usr/lib/x86_64-linux-gnu/libibverbs.so.1.14.44.0',
      '7f744b000000-7f744b001000 r-xp 00000000 00:1f 5555 /opt/my lib/libibverbs.so.1',
      '7f744c000000-7f744c001000 r-xp 00000000 08:01 7777 /usr/lib/libibverbs.so.1.14.44.0 (deleted)',
      '7f744d000000-7f744d001000 r-xp 00000000 08:01 8888 /usr/lib/libibverbs.so.10',
      '7f744e000000-7f744e001000 r-xp 00000000 08:01 9999 /usr/lib/x86_64-linux-gnu/libmlx5.so.1.24.44.0',
      '7ffd4c1ec000-7ffd4c20d000 rw-p 00000000 00:00 0                          [stack]',
    ].join('\n');
    expect(libibverbsInMaps(maps)).toEqual([
      { device: '08:01', inode: 918273, path: '/usr/lib/x86_64-linux-gnu/libibverbs.so.1.14.44.0' },
      { device: '00:1f', inode: 5555, path: '/opt/my lib/libibverbs.so.1' },
    ]);
    expect(libibverbsInMaps('')).toEqual([]);
  });

  it('reads the loader cache for the right architecture', () => {
    const ldconfig = [
      '123 libs found in cache `/etc/ld.so.cache\'',
      '\tlibibverbs.so.1 (libc6,x86-64) => /lib/x86_64-linux-gnu/libibverbs.so.1',
      '\tlibibverbs.so.1 (libc6) => /lib/i386-linux-gnu/libibverbs.so.1',
      '\tlibibverbs.so.1 (libc6,AArch64) => /lib/aarch64-linux-gnu/libibverbs.so.1',
      '\tlibibverbs.so (libc6,x86-64) => /lib/x86_64-linux-gnu/libibverbs.so',
    ].join('\n');
    expect(libibverbsInLdCache(ldconfig, 'x86_64')).toEqual(['/lib/x86_64-linux-gnu/libibverbs.so.1']);
    expect(libibverbsInLdCache(ldconfig, 'aarch64')).toEqual(['/lib/aarch64-linux-gnu/libibverbs.so.1']);
  });
});

/** A library with the exports libibverbs 1.14 has (vaddr = file offset, one load segment). */
function fakeImage(): ElfImage {
  const fn = (name: string, vaddr: number) => ({ name, version: 'IBVERBS_1.1', isDefault: true, defined: true, absolute: false, isFunction: true, vaddr, size: 16 });
  return {
    machine: 'x86_64',
    loads: [{ fileOffset: 0x7000, vaddr: 0x7000, fileSize: 0x20000 }],
    dynamicSymbols: [fn('ibv_reg_mr', 0x17a00), fn('ibv_reg_mr_iova', 0x17a10), fn('ibv_reg_mr_iova2', 0x17930), fn('ibv_reg_dmabuf_mr', 0x17a80), fn('ibv_dereg_mr', 0x17c40)],
  };
}

function line(event: string, time: number, payload: string, tid = 19654, tgid: number | null = 19654, comm = 'ib_send_bw'): TraceLine {
  return { comm, tid, tgid, cpu: 1, time, event, payload };
}

describe('VerbsSource.handle', () => {
  const plan = planVerbsProbes([{ path: '/usr/lib/x86_64-linux-gnu/libibverbs.so.1.14.44.0', image: fakeImage() }]);

  it('defines the probes as uprobe_events takes them', () => {
    const byEvent = new Map(plan.probes.map((p) => [p.event, p]));
    expect(byEvent.get('verbs0_ibv_reg_mr_entry')).toEqual({ kind: 'uprobe', event: 'verbs0_ibv_reg_mr_entry', target: '/usr/lib/x86_64-linux-gnu/libibverbs.so.1.14.44.0:0x17a00 pd=%di addr=%si len=%dx:u64 access=%cx:u32 comm=$comm' });
    expect(byEvent.get('verbs0_ibv_reg_mr_return')?.target).toBe('/usr/lib/x86_64-linux-gnu/libibverbs.so.1.14.44.0:0x17a00 mr=$retval len=+24($retval):u64 handle=+32($retval):u32 lkey=+36($retval):u32');
    expect(byEvent.get('verbs0_ibv_reg_mr_iova2_entry')?.target).toMatch(/:0x17930 pd=%di addr=%si len=%dx:u64 iova=%cx access=%r8:u32 comm=\$comm$/);
    expect(byEvent.get('verbs0_ibv_reg_dmabuf_mr_entry')?.target).toMatch(/:0x17a80 pd=%di offset=%si len=%dx:u64 iova=%cx fd=%r8:s32 access=%r9:u32 comm=\$comm$/);
    expect(byEvent.get('verbs0_ibv_dereg_mr_entry')?.target).toMatch(/:0x17c40 mr=%di len=\+24\(%di\):u64 handle=\+32\(%di\):u32 comm=\$comm$/);
    expect(byEvent.get('verbs0_ibv_dereg_mr_return')?.target).toMatch(/:0x17c40 ret=\$retval:s32$/);
    expect(plan.probes).toHaveLength(10);
  });

  it('makes one event of ibv_reg_mr and the ibv_reg_mr_iova2 it tail-calls', () => {
    const source = new VerbsSource({ plan });
    expect(source.owns('verbs0_ibv_reg_mr_return')).toBe(true);
    expect(source.owns('sys_enter_mlock')).toBe(false);
    // The kernel fires chained uretprobes innermost first, both at the one return.
    expect(source.handle(line('verbs0_ibv_reg_mr_entry', 22399.236201, '(0x7fbce01dba00) pd=0x261b3fa0 addr=0x7fbcd0000000 len=67108864 access=7'))).toEqual([]);
    expect(source.handle(line('verbs0_ibv_reg_mr_iova2_entry', 22399.236230, '(0x7fbce01db930) pd=0x261b3fa0 addr=0x7fbcd0000000 len=67108864 iova=0x7fbcd0000000 access=7'))).toEqual([]);
    expect(source.handle(line('verbs0_ibv_reg_mr_iova2_return', 22399.636245, '(0x7fbce0592545 <- 0x7fbce01db930) mr=0x26200d40 len=67108864 handle=0 lkey=682'))).toEqual([]);
    const events = source.handle(line('verbs0_ibv_reg_mr_return', 22399.636252, '(0x7fbce0592545 <- 0x7fbce01dba00) mr=0x26200d40 len=67108864 handle=0 lkey=682'));
    expect(events).toEqual([{
      time: 22399.636252, pid: 19654, tid: 19654, comm: 'ib_send_bw', source: 'verbs', op: 'register', attempt: 'register',
      bytes: 67108864, latencyNs: 400_051_000, errno: null, // 22399.636252 - 22399.236201 s
      detail: { function: 'ibv_reg_mr', addr: '0x7fbcd0000000', access: 7, mr: '0x26200d40', lkey: 682, handle: 0 },
    }]);
  });

  it('reports a NULL return as a failure with an unknown errno, and a direct ibv_reg_mr_iova2 call on its own', () => {
    const source = new VerbsSource({ plan });
    // As a real uprobe printed it on a failing call (fields of a NULL MR read as 0).
    source.handle(line('verbs0_ibv_reg_mr_entry', 100.000010, '(0x7fbce01dba00) pd=0x261b3fa0 addr=0x10000 len=12288 access=1'));
    source.handle(line('verbs0_ibv_reg_mr_iova2_entry', 100.000020, '(0x7fbce01db930) pd=0x261b3fa0 addr=0x10000 len=12288 iova=0x10000 access=1'));
    source.handle(line('verbs0_ibv_reg_mr_iova2_return', 100.000035, '(0x7fbce0592545 <- 0x7fbce01db930) mr=0x0 len=0 handle=0 lkey=0'));
    const [failed] = source.handle(line('verbs0_ibv_reg_mr_return', 100.000036, '(0x7fbce0592545 <- 0x7fbce01dba00) mr=0x0 len=0 handle=0 lkey=0'));
    expect(failed).toMatchObject({ op: 'failed', attempt: 'register', bytes: 12288, errno: 'unknown', latencyNs: 26_000 });
    source.handle(line('verbs0_ibv_reg_mr_iova2_entry', 101, '(0x7fbce01db930) pd=0x1 addr=0x20000 len=4096 iova=0x0 access=1'));
    const [direct] = source.handle(line('verbs0_ibv_reg_mr_iova2_return', 101.000005, '(0x5555 <- 0x7fbce01db930) mr=0x99 len=4096 handle=3 lkey=4'));
    expect(direct).toMatchObject({ op: 'register', bytes: 4096, latencyNs: 5_000, detail: { function: 'ibv_reg_mr_iova2', lkey: 4, handle: 3, mr: '0x99' } });
  });

  it('pairs per thread, deregisters with the length read at entry, and drops unmatched returns', () => {
    const source = new VerbsSource({ plan });
    // A return whose entry came before tracing began: nothing.
    expect(source.handle(line('verbs0_ibv_dereg_mr_return', 5, '(0x5555 <- 0x7f0017c40) ret=0'))).toEqual([]);
    // Two threads of one process, interleaved.
    source.handle(line('verbs0_ibv_dereg_mr_entry', 10, '(0x7f0017c40) mr=0x26200d40 len=2097152 handle=7', 201, 200, 'worker'));
    source.handle(line('verbs0_ibv_reg_mr_iova2_entry', 10.5, '(0x7f0017930) pd=0x1 addr=0x20000 len=4096 iova=0x0 access=1', 202, 200, 'worker'));
    source.handle(line('verbs0_ibv_dereg_mr_entry', 10.6, '(0x7f0017c40) mr=0x26300000 len=8192 handle=8', 203, 200, 'worker'));
    const [dereg] = source.handle(line('verbs0_ibv_dereg_mr_return', 11, '(0x5555 <- 0x7f0017c40) ret=0', 201, 200, 'worker'));
    expect(dereg).toEqual({
      time: 11, pid: 200, tid: 201, comm: 'worker', source: 'verbs', op: 'deregister', attempt: 'deregister',
      bytes: 2097152, latencyNs: 1_000_000_000, errno: null, detail: { function: 'ibv_dereg_mr', mr: '0x26200d40', handle: 7 },
    });
    const [busy] = source.handle(line('verbs0_ibv_dereg_mr_return', 11.25, '(0x5555 <- 0x7f0017c40) ret=16', 203, 200, 'worker'));
    expect(busy).toMatchObject({ tid: 203, op: 'failed', attempt: 'deregister', errno: 'EBUSY', bytes: 8192, latencyNs: 650_000_000 });
    const [reg] = source.handle(line('verbs0_ibv_reg_mr_iova2_return', 12, '(0x5555 <- 0x7f0017930) mr=0x42 len=4096 handle=9 lkey=10', 202, null, 'worker'));
    expect(reg).toMatchObject({ pid: 202, tid: 202, op: 'register', bytes: 4096, latencyNs: 1_500_000_000 }); // tgid not recorded: the tid stands in
    // Lines of other events and garbage payloads are ignored.
    expect(source.handle(line('sys_enter_mlock', 13, 'start: 0x1, len: 0x1000'))).toEqual([]);
    expect(source.handle(line('verbs0_ibv_reg_mr_return', 13, 'garbage'))).toEqual([]);
  });

  it('treats a lost inner return as closed when the outer call returns', () => {
    const source = new VerbsSource({ plan });
    source.handle(line('verbs0_ibv_reg_mr_entry', 1, '(0x1) pd=0x1 addr=0x1000 len=4096 access=1'));
    source.handle(line('verbs0_ibv_reg_mr_iova2_entry', 1.1, '(0x2) pd=0x1 addr=0x1000 len=4096 iova=0x1000 access=1'));
    const events = source.handle(line('verbs0_ibv_reg_mr_return', 2, '(0x3 <- 0x1) mr=0x10 len=4096 handle=1 lkey=2'));
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ op: 'register', latencyNs: 1_000_000_000 });
    // The stack is empty again: the late inner return is unmatched.
    expect(source.handle(line('verbs0_ibv_reg_mr_iova2_return', 2.1, '(0x3 <- 0x2) mr=0x10 len=4096 handle=1 lkey=2'))).toEqual([]);
  });
});
