// The umem source: its kprobe plan, the kernel function lists it reads, and handle() over kprobe
// payloads as the kernel prints them (`(SYMBOL+0x0/0xSIZE [MODULE]) ARGS` at entry,
// `(CALLER+0xOFF/0xSIZE [MODULE] <- SYMBOL) umem=0x…` at return; the release and ODP lines are
// as a 7.2 lab kernel printed them for ibv_rc_pingpong, the others follow their format).
import { describe, expect, it } from 'vitest';
import type { TraceLine, TracefsFacts } from '../../src/trace/types.js';
import { UmemSource, planUmemProbes, umemFunctionsInFilterList, umemFunctionsInKallsyms } from '../../src/trace/umem.js';

const ALL = new Set(['ib_umem_get', 'ib_umem_get_va', '__ib_umem_get_va', 'ib_umem_release', 'ib_umem_odp_get', 'ib_umem_odp_release', 'ib_umem_dmabuf_get']);

function line(event: string, time: number, payload: string, tid = 812, tgid: number | null = 812, comm = 'ibv_rc_pingpong'): TraceLine {
  return { comm, tid, tgid, cpu: 0, time, event, payload };
}

describe('the umem kprobe plan', () => {
  it('probes get with its size argument and return value, and release with the umem pointer', () => {
    const plan = planUmemProbes(ALL, 'x64');
    expect(plan.probes).toEqual([
      { kind: 'kprobe', event: 'umem_get_entry', target: 'ib_umem_get device=%di addr=%si size=%dx:u64 comm=$comm' },
      { kind: 'kretprobe', event: 'umem_get_return', target: 'ib_umem_get umem=$retval' },
      { kind: 'kprobe', event: 'umem_get_va_entry', target: 'ib_umem_get_va device=%di addr=%si size=%dx:u64 comm=$comm' },
      { kind: 'kretprobe', event: 'umem_get_va_return', target: 'ib_umem_get_va umem=$retval' },
      { kind: 'kprobe', event: 'umem_get_va_inner_entry', target: '__ib_umem_get_va device=%di addr=%si size=%dx:u64 comm=$comm' },
      { kind: 'kretprobe', event: 'umem_get_va_inner_return', target: '__ib_umem_get_va umem=$retval' },
      { kind: 'kprobe', event: 'umem_release', target: 'ib_umem_release umem=%di comm=$comm' },
      { kind: 'kprobe', event: 'umem_odp_get_entry', target: 'ib_umem_odp_get device=%di addr=%si size=%dx:u64 comm=$comm' },
      { kind: 'kretprobe', event: 'umem_odp_get_return', target: 'ib_umem_odp_get umem=$retval' },
      { kind: 'kprobe', event: 'umem_odp_release', target: 'ib_umem_odp_release umem=%di comm=$comm' },
      { kind: 'kprobe', event: 'umem_dmabuf_get_entry', target: 'ib_umem_dmabuf_get device=%di offset=%si size=%dx:u64 comm=$comm' },
      { kind: 'kretprobe', event: 'umem_dmabuf_get_return', target: 'ib_umem_dmabuf_get umem=$retval' },
    ]);
    expect(planUmemProbes(new Set(['ib_umem_get', 'ib_umem_release']), 'arm64').probes.map((p) => p.target)).toEqual([
      'ib_umem_get device=%x0 addr=%x1 size=%x2:u64 comm=$comm', 'ib_umem_get umem=$retval', 'ib_umem_release umem=%x0 comm=$comm',
    ]);
    expect(planUmemProbes(ALL, 'riscv64').probes).toEqual([]);
  });

  it('reads the functions out of available_filter_functions and /proc/kallsyms', () => {
    const filter = 'ib_umem_get [ib_core]\nib_umem_get_foo [ib_core]\nib_umem_release [ib_core]\nib_umem_odp_get [ib_core]\nschedule\n';
    expect([...umemFunctionsInFilterList(filter)].sort()).toEqual(['ib_umem_get', 'ib_umem_odp_get', 'ib_umem_release']);
    // Kernels from 6.5 can prefix the address (available_filter_functions_addrs format).
    expect([...umemFunctionsInFilterList('ffffffffc0a1b2c0 ib_umem_get [ib_core]\n')]).toEqual(['ib_umem_get']);
    const kallsyms = '0000000000000000 T ib_umem_get\t[ib_core]\n0000000000000000 t ib_umem_release\t[ib_core]\n0000000000000000 r __ksymtab_ib_umem_odp_get\t[ib_core]\n0000000000000000 d ib_umem_dmabuf_get\n';
    expect([...umemFunctionsInKallsyms(kallsyms)].sort()).toEqual(['ib_umem_get', 'ib_umem_release']);
  });

  it('says why it cannot run without kprobe events', () => {
    const facts: TracefsFacts = { root: '/sys/kernel/tracing', availableEvents: new Set(), uprobes: true, kprobes: false, writable: true };
    const availability = new UmemSource().detect(facts);
    expect(availability).toEqual({ source: 'umem', available: false, why: 'the kernel has no kprobe_events in tracefs (CONFIG_KPROBE_EVENTS)' });
  });
});

describe('UmemSource.handle', () => {
  const plan = planUmemProbes(ALL, 'x64');

  it('pairs get with its return, remembers the region by pointer and sizes its release', () => {
    const source = new UmemSource({ plan });
    expect(source.owns('umem_get_return')).toBe(true);
    expect(source.owns('verbs0_ibv_reg_mr_entry')).toBe(false);
    expect(source.handle(line('umem_get_entry', 50.000100, '(ib_umem_get+0x0/0x470 [ib_core]) device=0xffff8f0c4b1a0000 addr=0x7f3c2a000000 size=67108864'))).toEqual([]);
    const [registered] = source.handle(line('umem_get_return', 50.400350, '(rxe_mr_init_user+0x6e/0x2f0 [rdma_rxe] <- ib_umem_get) umem=0xffff8f0c47d3a800'));
    expect(registered).toEqual({
      time: 50.400350, pid: 812, tid: 812, comm: 'ibv_rc_pingpong', source: 'umem', op: 'register', attempt: 'register',
      bytes: 67108864, latencyNs: 400_250_000, errno: null, // 50.400350 - 50.000100 s
      detail: { function: 'ib_umem_get', addr: '0x7f3c2a000000', caller: 'rxe_mr_init_user+0x6e/0x2f0 [rdma_rxe]', umem: '0xffff8f0c47d3a800' },
    });
    expect(source.liveRegions).toBe(1);
    const [released] = source.handle(line('umem_release', 60, '(ib_umem_release+0x4/0xb0 [ib_core]) umem=0xffff8f0c47d3a800'));
    expect(released).toEqual({
      time: 60, pid: 812, tid: 812, comm: 'ibv_rc_pingpong', source: 'umem', op: 'deregister', attempt: 'deregister',
      bytes: 67108864, latencyNs: null, errno: null, detail: { function: 'ib_umem_release', umem: '0xffff8f0c47d3a800' },
    });
    expect(source.liveRegions).toBe(0);
    // A region registered before the window: released with an unknown size. NULL: nothing happened.
    expect(source.handle(line('umem_release', 61, '(ib_umem_release+0x4/0xb0 [ib_core]) umem=0xffff8f0c40000000'))[0]).toMatchObject({ op: 'deregister', bytes: null });
    expect(source.handle(line('umem_release', 62, '(ib_umem_release+0x4/0xb0 [ib_core]) umem=0x0'))).toEqual([]);
  });

  it("names the task from the entry probe's comm when the kernel's comm cache lost it (`<...>`)", () => {
    const source = new UmemSource({ plan });
    source.handle(line('umem_get_entry', 1, '(ib_umem_get+0x0/0x470 [ib_core]) device=0xffff8f0c4b1a0000 addr=0x7f3c2a000000 size=1048576 comm="ibv_rc_pingpong"', 900, 900, '<...>'));
    const [failed] = source.handle(line('umem_get_return', 1.001, '(rxe_mr_init_user+0x6e/0x2f0 [rdma_rxe] <- ib_umem_get) umem=0xfffffffffffffff4', 900, 900, '<...>'));
    expect(failed).toMatchObject({ pid: 900, comm: 'ibv_rc_pingpong', op: 'failed', errno: 'ENOMEM', bytes: 1048576 });
    // A name with blanks, quotes and `comm="` in it is taken whole: it is the last argument.
    const [released] = source.handle(line('umem_release', 2, '(ib_umem_release+0x4/0xb0 [ib_core]) umem=0xffff8f0c40000000 comm="a comm=\"x\" "', 900, 900, '<...>'));
    expect(released).toMatchObject({ comm: 'a comm=\"x\" ', op: 'deregister' });
    // Cut by a newline in the name (no closing quote): the header's comm stands.
    const [cut] = source.handle(line('umem_release', 3, '(ib_umem_release+0x4/0xb0 [ib_core]) umem=0xffff8f0c40001000 comm="evil', 900, 900, 'evil\nname'));
    expect(cut).toMatchObject({ comm: 'evil\nname', detail: { umem: '0xffff8f0c40001000' } });
  });

  it('turns an ERR_PTR return into the kernel errno', () => {
    const source = new UmemSource({ plan });
    source.handle(line('umem_get_entry', 1, '(ib_umem_get+0x0/0x470 [ib_core]) device=0xffff8f0c4b1a0000 addr=0x7f3c2a000000 size=1048576', 900, 900, 'ibv_rc_pingpon'));
    // -ENOMEM = 0xfffffffffffffff4: RLIMIT_MEMLOCK refused the pin.
    const [failed] = source.handle(line('umem_get_return', 1.000020, '(rxe_mr_init_user+0x6e/0x2f0 [rdma_rxe] <- ib_umem_get) umem=0xfffffffffffffff4', 900, 900, 'ibv_rc_pingpon'));
    expect(failed).toMatchObject({ op: 'failed', attempt: 'register', bytes: 1048576, errno: 'ENOMEM', latencyNs: 20_000 });
    expect(source.liveRegions).toBe(0);
    source.handle(line('umem_get_entry', 2, '(ib_umem_get+0x0/0x470 [ib_core]) device=0x1 addr=0x0 size=4096'));
    expect(source.handle(line('umem_get_return', 2.1, '(x+0x1/0x2 [m] <- ib_umem_get) umem=0xfffffffffffffff2'))[0]).toMatchObject({ errno: 'EFAULT' });
    // The lowest ERR_PTR is -4095; one below it is a (kernel) pointer.
    source.handle(line('umem_get_entry', 3, '(ib_umem_get+0x0/0x470 [ib_core]) device=0x1 addr=0x0 size=4096'));
    expect(source.handle(line('umem_get_return', 3.1, '(x+0x1/0x2 [m] <- ib_umem_get) umem=0xfffffffffffff000'))[0]).toMatchObject({ op: 'register' });
  });

  it('counts an ODP region once: ib_umem_release of it calls ib_umem_odp_release', () => {
    const source = new UmemSource({ plan });
    source.handle(line('umem_odp_get_entry', 5, '(ib_umem_odp_get+0x4/0x150 [ib_core]) device=0xffff8f0c4b1a0000 addr=0x55d0c0000000 size=4096'));
    const [registered] = source.handle(line('umem_odp_get_return', 5.00001, '(rxe_odp_mr_init_user+0x6a/0x160 [rdma_rxe] <- ib_umem_odp_get) umem=0xffff8f0c41110000'));
    expect(registered).toMatchObject({ op: 'register', bytes: 4096, detail: { function: 'ib_umem_odp_get' } });
    const first = source.handle(line('umem_release', 6, '(ib_umem_release+0x4/0xb0 [ib_core]) umem=0xffff8f0c41110000'));
    const nested = source.handle(line('umem_odp_release', 6.000001, '(ib_umem_odp_release+0x4/0xa0 [ib_core]) umem=0xffff8f0c41110000'));
    expect(first).toHaveLength(1);
    expect(first[0]).toMatchObject({ op: 'deregister', bytes: 4096 });
    expect(nested).toEqual([]);
    // A driver calling ib_umem_odp_release directly (no ib_umem_release before it) is a release.
    source.handle(line('umem_odp_get_entry', 7, '(ib_umem_odp_get+0x4/0x150 [ib_core]) device=0x1 addr=0x1000 size=8192', 813, 812));
    source.handle(line('umem_odp_get_return', 7.1, '(x+0x1/0x2 [m] <- ib_umem_odp_get) umem=0xffff8f0c42220000', 813, 812));
    expect(source.handle(line('umem_odp_release', 8, '(ib_umem_odp_release+0x4/0xa0 [ib_core]) umem=0xffff8f0c42220000', 813, 812))[0]).toMatchObject({ op: 'deregister', bytes: 8192, tid: 813, pid: 812 });
  });

  it('makes one event of ib_umem_get_va and the __ib_umem_get_va it calls (7.x)', () => {
    const source = new UmemSource({ plan });
    source.handle(line('umem_get_va_entry', 9, '(ib_umem_get_va+0x4/0x30 [ib_core]) device=0x1 addr=0x7f0000000000 size=2097152'));
    source.handle(line('umem_get_va_inner_entry', 9.000001, '(__ib_umem_get_va+0x4/0x4a0 [ib_core]) device=0x1 addr=0x7f0000000000 size=2097152'));
    expect(source.handle(line('umem_get_va_inner_return', 9.2, '(rxe_mr_init_user+0x6e/0x2f0 [rdma_rxe] <- __ib_umem_get_va) umem=0xffff888007000000'))).toEqual([]);
    const events = source.handle(line('umem_get_va_return', 9.2, '(rxe_mr_init_user+0x6e/0x2f0 [rdma_rxe] <- ib_umem_get_va) umem=0xffff888007000000'));
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ op: 'register', bytes: 2097152, latencyNs: 200_000_000, detail: { function: 'ib_umem_get_va' } });
  });

  it('ignores unmatched returns and foreign lines', () => {
    const source = new UmemSource({ plan });
    expect(source.handle(line('umem_get_return', 1, '(x+0x1/0x2 [m] <- ib_umem_get) umem=0xffff8f0c47d3a800'))).toEqual([]);
    expect(source.handle(line('io_uring_register', 1, 'ring 0x1, opcode 0'))).toEqual([]);
    expect(source.handle(line('umem_release', 1, 'not a probe line'))).toEqual([]);
  });
});
