// The 'umem' trace source: kprobes on the kernel's user-memory pinning for RDMA, ib_umem_get and
// ib_umem_release in ib_core (and the ODP and dma-buf variants where the kernel has them). Every
// verbs MR of a kernel driver goes through them, whatever library made it, and the return value
// carries the kernel's errno (an ERR_PTR), which the verbs source cannot see. Drivers also pin CQ,
// QP and doorbell buffers with ib_umem_get: those are long-term pins too, and show up here.
//
// Signatures (drivers/infiniband/core/umem.c, umem_odp.c, umem_dmabuf.c), 5.10 to 7.x:
//   struct ib_umem *ib_umem_get(struct ib_device *, unsigned long addr, size_t size, int access);
//     (7.x: ib_umem_get_va, then the static __ib_umem_get_va, same arguments: see UMEM_FUNCTIONS)
//   struct ib_umem_odp *ib_umem_odp_get(struct ib_device *, unsigned long addr, size_t size, int access, ops);
//   struct ib_umem_dmabuf *ib_umem_dmabuf_get(struct ib_device *, unsigned long offset, size_t size, int fd, int access, ops);
//   void ib_umem_release(struct ib_umem *);  void ib_umem_odp_release(struct ib_umem_odp *);
// The umem is the first member of the ODP and dma-buf structs, so one pointer names the region
// from get to release. ib_umem_release of an ODP umem calls ib_umem_odp_release: that second
// probe hit on the same pointer and thread is not a second release.

import { readProcText } from '../proc/procfs.js';
import { readKallsymsText } from '../proc/traceInputs.js';
import { argNumber, argU64, CallStacks, COMM_FETCHARG, elapsedNs, PlannedProbeSource, errPtrErrno, hex, parseProbePayload, setBounded, type ProbePayload } from './probeline.js';
import { tracefsAccessReason } from './tracefs.js';
import { UNKNOWN_ERRNO, type ProbeSpec, type SourceAvailability, type TraceEvent, type TraceLine, type TraceSourceDriver, type TracefsFacts } from './types.js';

/** Kernel argument registers in order, as kprobe fetchargs name them. */
const KERNEL_ARG_REGISTERS = {
  x64: ['%di', '%si', '%dx', '%cx', '%r8', '%r9'],
  arm64: ['%x0', '%x1', '%x2', '%x3', '%x4', '%x5'],
} as const;

type UmemRole = 'get' | 'release';

interface UmemFunction {
  readonly name: string;
  readonly role: UmemRole;
  /** Position of the size argument of a get. */
  readonly sizeArg?: number;
  /** The event name stem (rdmactl's group holds every source's probes). */
  readonly stem: string;
}

/**
 * The pinning entry points. The plain-VA get changed names in 7.x: ib_umem_get became
 * ib_umem_get_va, a wrapper around the static __ib_umem_get_va, and then ib_umem_get_va went away
 * (drivers now call ib_umem_get_attr_or_va, which ends in __ib_umem_get_va). All three take
 * (device, addr, size, access); whichever the kernel has are probed, and where a wrapper and the
 * function it calls are both there, the pairing nests them into one event.
 */
export const UMEM_FUNCTIONS: readonly UmemFunction[] = [
  { name: 'ib_umem_get', role: 'get', sizeArg: 2, stem: 'umem_get' },
  { name: 'ib_umem_get_va', role: 'get', sizeArg: 2, stem: 'umem_get_va' },
  { name: '__ib_umem_get_va', role: 'get', sizeArg: 2, stem: 'umem_get_va_inner' },
  { name: 'ib_umem_release', role: 'release', stem: 'umem_release' },
  { name: 'ib_umem_odp_get', role: 'get', sizeArg: 2, stem: 'umem_odp_get' },
  { name: 'ib_umem_odp_release', role: 'release', stem: 'umem_odp_release' },
  { name: 'ib_umem_dmabuf_get', role: 'get', sizeArg: 2, stem: 'umem_dmabuf_get' },
];

/** One of these must be there for plain (pinned, not ODP) registrations to be seen. */
const VA_GETS = ['ib_umem_get', 'ib_umem_get_va', '__ib_umem_get_va'];

interface PlannedEvent {
  readonly function: UmemFunction;
  readonly kind: 'entry' | 'return';
}

export interface UmemPlan {
  readonly probes: readonly ProbeSpec[];
  readonly events: ReadonlyMap<string, PlannedEvent>;
}

/** Kprobes for the functions the kernel has (`present`), for an architecture (process.arch). */
export function planUmemProbes(present: ReadonlySet<string>, arch: string = process.arch): UmemPlan {
  const regs = arch === 'x64' ? KERNEL_ARG_REGISTERS.x64 : arch === 'arm64' ? KERNEL_ARG_REGISTERS.arm64 : null;
  const probes: ProbeSpec[] = [];
  const events = new Map<string, PlannedEvent>();
  if (!regs) return { probes, events };
  for (const fn of UMEM_FUNCTIONS) {
    if (!present.has(fn.name)) continue;
    if (fn.role === 'get') {
      const offsetName = fn.name === 'ib_umem_dmabuf_get' ? 'offset' : 'addr';
      probes.push({ kind: 'kprobe', event: `${fn.stem}_entry`, target: `${fn.name} device=${regs[0]} ${offsetName}=${regs[1]} size=${regs[fn.sizeArg!]}:u64 ${COMM_FETCHARG}` });
      probes.push({ kind: 'kretprobe', event: `${fn.stem}_return`, target: `${fn.name} umem=$retval` });
      events.set(`${fn.stem}_entry`, { function: fn, kind: 'entry' });
      events.set(`${fn.stem}_return`, { function: fn, kind: 'return' });
    } else {
      probes.push({ kind: 'kprobe', event: fn.stem, target: `${fn.name} umem=${regs[0]} ${COMM_FETCHARG}` });
      events.set(fn.stem, { function: fn, kind: 'entry' });
    }
  }
  return { probes, events };
}

const WANTED = new Set(UMEM_FUNCTIONS.map((f) => f.name));

/** The wanted functions listed in available_filter_functions (`NAME [MODULE]` or `ADDR NAME [MODULE]` lines). */
export function umemFunctionsInFilterList(text: string): Set<string> {
  const found = new Set<string>();
  for (const m of text.matchAll(/^(?:[0-9a-f]+ )?([A-Za-z_][A-Za-z0-9_.]*)(?:\s|$)/gm)) if (WANTED.has(m[1]!)) found.add(m[1]!);
  return found;
}

/** The wanted functions among /proc/kallsyms' text symbols (`ADDR T NAME\t[MODULE]`). */
export function umemFunctionsInKallsyms(text: string): Set<string> {
  const found = new Set<string>();
  for (const m of text.matchAll(/^[0-9a-f]+ [Tt] ([A-Za-z_][A-Za-z0-9_.]*)(?:\s|$)/gm)) if (WANTED.has(m[1]!)) found.add(m[1]!);
  return found;
}

/** Regions remembered from get to release at most; beyond it the oldest is forgotten (its release then has no size). */
const MAX_LIVE_REGIONS = 1 << 20;

interface LiveRegion {
  readonly bytes: number | null;
}


export interface UmemSourceOptions {
  /** A ready plan (fixture tests of handle()). */
  plan?: UmemPlan;
}

export class UmemSource extends PlannedProbeSource<UmemPlan> implements TraceSourceDriver {
  readonly name = 'umem' as const;
  private readonly stacks = new CallStacks<ProbePayload>();
  private readonly live = new Map<bigint, LiveRegion>();
  /** Per thread, the umem its last ib_umem_release was given: an ib_umem_odp_release of it right after is nested. */
  private readonly lastRelease = new Map<number, bigint>();

  constructor(options: UmemSourceOptions = {}) {
    super(options.plan ?? { probes: [], events: new Map() });
  }

  detect(tracefs: TracefsFacts): SourceAvailability {
    const unavailable = (why: string): SourceAvailability => ({ source: this.name, available: false, why });
    const access = tracefsAccessReason(tracefs);
    if (access) return unavailable(access);
    if (!tracefs.kprobes) return unavailable('the kernel has no kprobe_events in tracefs (CONFIG_KPROBE_EVENTS)');
    const present = this.kernelFunctions(tracefs.root);
    if (present === null) return unavailable('cannot read the kernel\'s function list (available_filter_functions or /proc/kallsyms)');
    if (!present.has('ib_umem_release') || !VA_GETS.some((name) => present.has(name))) {
      return unavailable(`neither ${VA_GETS.join(', ')} nor ib_umem_release found in the running kernel: ib_core is not loaded (no RDMA driver)`);
    }
    this.plan = planUmemProbes(present);
    if (this.plan.probes.length === 0) return unavailable(`no kprobe argument registers known for ${process.arch}`);
    return { source: this.name, available: true, why: `kprobes on ${UMEM_FUNCTIONS.filter((f) => present.has(f.name)).map((f) => f.name).join(' ')}` };
  }

  private kernelFunctions(root: string | null): Set<string> | null {
    const sources: [() => string | null, (text: string) => Set<string>][] = [[readKallsymsText, umemFunctionsInKallsyms]];
    if (root) sources.unshift([() => readProcText(`${root}/available_filter_functions`), umemFunctionsInFilterList]);
    let readAny = false;
    const found = new Set<string>();
    for (const [read, parse] of sources) {
      let text: string | null;
      try {
        text = read();
      } catch {
        continue; // refused (lockdown, no privilege) or too large: try the next list
      }
      if (text === null) continue;
      readAny = true;
      for (const name of parse(text)) found.add(name);
      if (found.has('ib_umem_release') && VA_GETS.some((name) => found.has(name))) break;
    }
    return readAny ? found : null;
  }

  handle(line: TraceLine): readonly TraceEvent[] {
    const planned = this.plan.events.get(line.event);
    if (!planned) return [];
    const payload = parseProbePayload(line.payload);
    if (!payload) return [];
    const fn = planned.function;
    if (fn.role === 'release') {
      const base = { time: line.time, pid: line.tgid ?? line.tid, tid: line.tid, comm: payload.comm ?? line.comm, source: this.name };
      const umem = argU64(payload.args, 'umem');
      if (umem === null || umem === 0n) return []; // ib_umem_release(NULL) does nothing
      if (fn.name === 'ib_umem_odp_release' && this.lastRelease.get(line.tid) === umem) {
        this.lastRelease.delete(line.tid);
        return [];
      }
      setBounded(this.lastRelease, line.tid, umem, MAX_LIVE_REGIONS);
      const region = this.live.get(umem);
      this.live.delete(umem);
      return [{ ...base, op: 'deregister', attempt: 'deregister', bytes: region?.bytes ?? null, latencyNs: null, errno: null, detail: { function: fn.name, umem: hex(umem) } }];
    }
    if (planned.kind === 'entry') {
      this.stacks.enter(line.tid, { function: fn.name, time: line.time, entry: payload });
      return [];
    }
    const frame = this.stacks.leave(line.tid, fn.name);
    if (!frame) return [];
    const base = { time: line.time, pid: line.tgid ?? line.tid, tid: line.tid, comm: frame.entry.comm ?? line.comm, source: this.name };
    const entry = frame.entry.args;
    const bytes = argNumber(entry, 'size');
    const umem = argU64(payload.args, 'umem');
    const detail: Record<string, string | number | null> = {
      function: frame.function, addr: hexOrNull(argU64(entry, 'addr') ?? argU64(entry, 'offset')), caller: payload.caller,
    };
    const latencyNs = elapsedNs(frame.time, line.time);
    const errno = umem === null || umem === 0n ? UNKNOWN_ERRNO : errPtrErrno(umem);
    if (errno !== null) return [{ ...base, op: 'failed', attempt: 'register', bytes, latencyNs, errno, detail }];
    detail.umem = hex(umem!);
    if (this.lastRelease.get(line.tid) === umem) this.lastRelease.delete(line.tid);
    setBounded(this.live, umem!, { bytes }, MAX_LIVE_REGIONS);
    return [{ ...base, op: 'register', attempt: 'register', bytes, latencyNs, errno: null, detail }];
  }

  /** Regions registered and not yet released, as far as the window saw. */
  get liveRegions(): number {
    return this.live.size;
  }
}

function hexOrNull(value: bigint | null): string | null {
  return value === null ? null : hex(value);
}
