// The 'verbs' trace source: uprobes on libibverbs' memory registration calls, in every copy of
// libibverbs.so.1 a process maps (and the one the loader would pick), so any program that registers
// memory through verbs shows up: who, how much, how long, and whether it got an MR.
//
// Probed exports, where the library has them (the default `@@` version): ibv_reg_mr,
// ibv_reg_mr_iova, ibv_reg_mr_iova2, __ibv_reg_mr, __ibv_reg_mr_iova (header inlines in current
// rdma-core, so usually absent), ibv_reg_dmabuf_mr and ibv_dereg_mr. ibv_reg_mr and ibv_reg_mr_iova
// tail-call ibv_reg_mr_iova2, so one call hits two probes: the pairing in probeline.ts nests them
// per thread and makes one event per outermost call.
//
// A NULL return is a failure whose errno the probe cannot see (errno is thread-local in user
// space): it is reported as 'unknown', unless the umem source saw the kernel half of the same call
// fail (kernelErrno.ts gives it that errno).

import { spawnSync } from 'node:child_process';
import { realpathSync, statSync } from 'node:fs';
import { errnoName } from '../lib/errno.js';
import { listPids } from '../proc/procfs.js';
import { pathInProcessRoot, readMapsText } from '../proc/traceInputs.js';
import { ElfError, findExportedFunction, parseElf, readFileCapped, type ElfImage } from './elf.js';
import { argNumber, argS64, argU64, CallStacks, COMM_FETCHARG, elapsedNs, PlannedProbeSource, hex, parseProbePayload, type ProbePayload } from './probeline.js';
import { tracefsAccessReason } from './tracefs.js';
import { UNKNOWN_ERRNO, type ProbeSpec, type SourceAvailability, type TraceEvent, type TraceLine, type TraceSourceDriver, type TracefsFacts } from './types.js';

/** Offsets in struct ibv_mr (infiniband/verbs.h): context, pd, addr, length@24, handle@32, lkey@36, rkey@40. */
export const IBV_MR_LENGTH = 24;
export const IBV_MR_HANDLE = 32;
export const IBV_MR_LKEY = 36;

/** Argument registers of the C calling convention, in order, as uprobe fetchargs name them. */
const ARG_REGISTERS = {
  x86_64: ['%di', '%si', '%dx', '%cx', '%r8', '%r9'],
  aarch64: ['%x0', '%x1', '%x2', '%x3', '%x4', '%x5'],
} as const;
export type ProbeArch = keyof typeof ARG_REGISTERS;

type VerbsOp = 'register' | 'deregister';

interface VerbsFunction {
  readonly name: string;
  readonly op: VerbsOp;
  /** Entry arguments by position: name and fetch type (empty: the default hex). */
  readonly args: readonly (readonly [string, string] | null)[];
}

const REG_ARGS: VerbsFunction['args'] = [['pd', ''], ['addr', ''], ['len', ':u64'], ['access', ':u32']];
const REG_IOVA_ARGS: VerbsFunction['args'] = [['pd', ''], ['addr', ''], ['len', ':u64'], ['iova', ''], ['access', ':u32']];

/** The functions probed, outermost callers first (the order only matters for reading). */
export const VERBS_FUNCTIONS: readonly VerbsFunction[] = [
  { name: 'ibv_reg_mr', op: 'register', args: REG_ARGS },
  { name: '__ibv_reg_mr', op: 'register', args: REG_ARGS },
  { name: 'ibv_reg_mr_iova', op: 'register', args: REG_IOVA_ARGS },
  { name: '__ibv_reg_mr_iova', op: 'register', args: REG_IOVA_ARGS },
  { name: 'ibv_reg_mr_iova2', op: 'register', args: REG_IOVA_ARGS },
  { name: 'ibv_reg_dmabuf_mr', op: 'register', args: [['pd', ''], ['offset', ''], ['len', ':u64'], ['iova', ''], ['fd', ':s32'], ['access', ':u32']] },
  { name: 'ibv_dereg_mr', op: 'deregister', args: [['mr', '']] },
];

export interface VerbsLibrary {
  /** The path the probes are defined on (no blanks: uprobe_events splits on them). */
  readonly path: string;
  readonly image: ElfImage;
}

interface PlannedEvent {
  readonly function: string;
  readonly op: VerbsOp;
  readonly kind: 'entry' | 'return';
  readonly library: string;
}

export interface VerbsPlan {
  readonly probes: readonly ProbeSpec[];
  readonly events: ReadonlyMap<string, PlannedEvent>;
  /** One line per library: which functions were found, or why it was left out. */
  readonly notes: readonly string[];
}

/** The uprobes for the libraries: an entry and a return probe per exported function. */
export function planVerbsProbes(libraries: readonly VerbsLibrary[]): VerbsPlan {
  const probes: ProbeSpec[] = [];
  const events = new Map<string, PlannedEvent>();
  const notes: string[] = [];
  libraries.forEach((library, index) => {
    if (/[\s\\]/.test(library.path) || library.path.length > 4000) {
      notes.push(`${JSON.stringify(library.path)}: a path uprobe_events cannot take`);
      return;
    }
    const arch = library.image.machine;
    if (arch === 'other') {
      notes.push(`${library.path}: neither x86_64 nor aarch64, no argument registers known`);
      return;
    }
    const regs = ARG_REGISTERS[arch];
    const found: string[] = [];
    for (const fn of VERBS_FUNCTIONS) {
      const location = findExportedFunction(library.image, fn.name);
      if (!location) continue;
      found.push(location.version ? `${fn.name}@@${location.version}` : fn.name);
      const target = `${library.path}:0x${location.fileOffset.toString(16)}`;
      const entryArgs = fn.op === 'deregister'
        ? [`mr=${regs[0]}`, `len=+${IBV_MR_LENGTH}(${regs[0]}):u64`, `handle=+${IBV_MR_HANDLE}(${regs[0]}):u32`]
        : fn.args.map((arg, i) => (arg ? `${arg[0]}=${regs[i]}${arg[1]}` : null)).filter((a): a is string => a !== null);
      const returnArgs = fn.op === 'deregister'
        ? ['ret=$retval:s32']
        : ['mr=$retval', `len=+${IBV_MR_LENGTH}($retval):u64`, `handle=+${IBV_MR_HANDLE}($retval):u32`, `lkey=+${IBV_MR_LKEY}($retval):u32`];
      const base = `verbs${index}_${fn.name.replace(/^_+/, 'u_')}`;
      probes.push({ kind: 'uprobe', event: `${base}_entry`, target: `${target} ${[...entryArgs, COMM_FETCHARG].join(' ')}` });
      probes.push({ kind: 'uretprobe', event: `${base}_return`, target: `${target} ${returnArgs.join(' ')}` });
      events.set(`${base}_entry`, { function: fn.name, op: fn.op, kind: 'entry', library: library.path });
      events.set(`${base}_return`, { function: fn.name, op: fn.op, kind: 'return', library: library.path });
    }
    notes.push(found.length > 0 ? `${library.path}: ${found.join(' ')}` : `${library.path}: exports none of the registration calls`);
  });
  return { probes, events, notes };
}

// ---- Finding the libraries ----------------------------------------------------------------------

export interface MappedFile {
  readonly device: string;
  readonly inode: number;
  readonly path: string;
}

/** The libibverbs.so.1 files in a /proc/PID/maps text (path column; deleted files left out). */
export function libibverbsInMaps(maps: string): MappedFile[] {
  const found: MappedFile[] = [];
  for (const line of maps.split('\n')) {
    // start-end perms offset major:minor inode path
    const m = /^[0-9a-f]+-[0-9a-f]+ \S+ [0-9a-f]+ ([0-9a-f]+:[0-9a-f]+) (\d+) +(\/.*)$/.exec(line);
    if (!m || m[3]!.endsWith(' (deleted)')) continue;
    const base = m[3]!.slice(m[3]!.lastIndexOf('/') + 1);
    if (!/^libibverbs\.so\.1(\.[0-9.]+)?$/.test(base)) continue;
    if (!found.some((f) => f.path === m[3])) found.push({ device: m[1]!, inode: Number(m[2]), path: m[3]! });
  }
  return found;
}

/** `ldconfig -p`'s libibverbs.so.1 paths for this architecture (`(libc6,x86-64)`, `(libc6,AArch64)`). */
export function libibverbsInLdCache(output: string, arch: ProbeArch): string[] {
  const tag = arch === 'x86_64' ? 'x86-64' : 'AArch64';
  const paths: string[] = [];
  for (const m of output.matchAll(/^\s*libibverbs\.so\.1 \(([^)]*)\) => (\/\S+)$/gm)) {
    if (m[1]!.split(',').includes(tag)) paths.push(m[2]!);
  }
  return paths;
}

/** Processes scanned for maps at most, and maps text read per process at most (readProcText caps). */
const MAX_PROCESSES = 32_768;

function hostArch(): ProbeArch | null {
  return process.arch === 'x64' ? 'x86_64' : process.arch === 'arm64' ? 'aarch64' : null;
}

/**
 * Every distinct libibverbs.so.1 (by device and inode) in use or installed: the ones processes
 * map (a container's through /proc/PID/root), the loader cache's, the standard multiarch path.
 */
export function findLibibverbs(): string[] {
  const arch = hostArch();
  const candidates: string[] = [];
  const fromProcessRoot = new Set<string>();
  let scanned = 0;
  for (const pid of listPids()) {
    if (++scanned > MAX_PROCESSES) break;
    let maps: string | null;
    try {
      maps = readMapsText(pid);
    } catch {
      continue; // refused (another user's process without privilege): not ours to trace anyway
    }
    if (!maps) continue;
    for (const file of libibverbsInMaps(maps)) {
      // The maps path is in the process's mount namespace: prefer the host's path when it is the same file.
      const same = (path: string) => {
        try {
          return statSync(path).ino === file.inode;
        } catch {
          return false;
        }
      };
      if (same(file.path)) candidates.push(file.path);
      else if (same(pathInProcessRoot(pid, file.path))) {
        candidates.push(pathInProcessRoot(pid, file.path));
        fromProcessRoot.add(pathInProcessRoot(pid, file.path));
      }
    }
  }
  if (arch) {
    for (const ldconfig of ['ldconfig', '/sbin/ldconfig', '/usr/sbin/ldconfig']) {
      const out = spawnSync(ldconfig, ['-p'], { encoding: 'utf8', timeout: 5000, maxBuffer: 8 * 1024 * 1024, stdio: ['ignore', 'pipe', 'ignore'] });
      if (out.status === 0) {
        candidates.push(...libibverbsInLdCache(out.stdout, arch));
        break;
      }
    }
    candidates.push(`/usr/lib/${arch}-linux-gnu/libibverbs.so.1`, '/usr/lib64/libibverbs.so.1');
  }
  const seen = new Set<string>();
  const libraries: string[] = [];
  for (const candidate of candidates) {
    try {
      const stat = statSync(candidate);
      const key = `${stat.dev}:${stat.ino}`;
      if (!stat.isFile() || seen.has(key)) continue;
      seen.add(key);
      // Resolve symlinks for the probe's path, but keep paths through a process's root as they are.
      libraries.push(fromProcessRoot.has(candidate) ? candidate : realpathSync(candidate));
    } catch {
      // not there
    }
  }
  return libraries;
}

// ---- The source -----------------------------------------------------------------------------------


export interface VerbsSourceOptions {
  /** Library paths to probe instead of finding them (tests, `--lib`). */
  libraries?: readonly string[];
  /** A ready plan (fixture tests of handle()). */
  plan?: VerbsPlan;
}

export class VerbsSource extends PlannedProbeSource<VerbsPlan> implements TraceSourceDriver {
  readonly name = 'verbs' as const;
  private readonly libraries: readonly string[] | null;
  private readonly stacks = new CallStacks<ProbePayload>();

  constructor(options: VerbsSourceOptions = {}) {
    super(options.plan ?? { probes: [], events: new Map(), notes: [] });
    this.libraries = options.libraries ?? null;
  }

  detect(tracefs: TracefsFacts): SourceAvailability {
    const unavailable = (why: string): SourceAvailability => ({ source: this.name, available: false, why });
    const access = tracefsAccessReason(tracefs);
    if (access) return unavailable(access);
    if (!tracefs.uprobes) return unavailable('the kernel has no uprobe_events in tracefs (CONFIG_UPROBE_EVENTS)');
    const paths = this.libraries ?? findLibibverbs();
    if (paths.length === 0) return unavailable('libibverbs.so.1 not found (install libibverbs1 / rdma-core)');
    const libraries: VerbsLibrary[] = [];
    const problems: string[] = [];
    for (const path of paths) {
      try {
        libraries.push({ path, image: parseElf(readFileCapped(path)) });
      } catch (error) {
        problems.push(`${path}: ${error instanceof ElfError ? error.message : (error as Error).message}`);
      }
    }
    this.plan = planVerbsProbes(libraries);
    const notes = [...this.plan.notes, ...problems].join('; ');
    if (this.plan.probes.length === 0) return unavailable(`no registration calls to probe: ${notes}`);
    return { source: this.name, available: true, why: `uprobes on ${notes}` };
  }

  handle(line: TraceLine): readonly TraceEvent[] {
    const planned = this.plan.events.get(line.event);
    if (!planned) return [];
    const payload = parseProbePayload(line.payload);
    if (!payload) return [];
    if (planned.kind === 'entry') {
      this.stacks.enter(line.tid, { function: planned.function, time: line.time, entry: payload });
      return [];
    }
    const frame = this.stacks.leave(line.tid, planned.function);
    if (!frame) return [];
    // The outermost call's arguments and op: ibv_reg_mr's, not the ibv_reg_mr_iova2 it tail-called.
    const op = VERBS_FUNCTIONS.find((f) => f.name === frame.function)?.op ?? planned.op;
    const entry = frame.entry.args;
    const ret = payload.args;
    const base = {
      time: line.time, pid: line.tgid ?? line.tid, tid: line.tid, comm: frame.entry.comm ?? line.comm, source: this.name,
      latencyNs: elapsedNs(frame.time, line.time),
    };
    if (op === 'deregister') {
      const code = argS64(ret, 'ret');
      const bytes = argNumber(entry, 'len');
      const detail = { function: frame.function, mr: hexArg(entry, 'mr'), handle: argNumber(entry, 'handle') };
      if (code === 0n) return [{ ...base, op: 'deregister', attempt: 'deregister', bytes, errno: null, detail }];
      const errno = code === null ? UNKNOWN_ERRNO : errnoName(Number(code < 0n ? -code : code));
      return [{ ...base, op: 'failed', attempt: 'deregister', bytes, errno, detail }];
    }
    const mr = argU64(ret, 'mr');
    const bytes = argNumber(entry, 'len') ?? (mr ? argNumber(ret, 'len') : null);
    const detail: Record<string, string | number | null> = {
      function: frame.function, addr: hexArg(entry, 'addr') ?? hexArg(entry, 'offset'), access: argNumber(entry, 'access'),
    };
    if (entry.has('fd')) detail.fd = Number(argS64(entry, 'fd') ?? -1n);
    if (!mr) return [{ ...base, op: 'failed', attempt: 'register', bytes, errno: UNKNOWN_ERRNO, detail }];
    detail.mr = hex(mr);
    detail.lkey = argNumber(ret, 'lkey');
    detail.handle = argNumber(ret, 'handle');
    return [{ ...base, op: 'register', attempt: 'register', bytes, errno: null, detail }];
  }
}

function hexArg(args: ReadonlyMap<string, string>, name: string): string | null {
  const value = argU64(args, name);
  return value === null ? null : hex(value);
}
