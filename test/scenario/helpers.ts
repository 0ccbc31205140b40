// The scenario tests' own readings, made straight from the kernel (not through rdmactl's readers):
// VmPin/VmLck from /proc/PID/status, FOLL_PIN counters from /proc/vmstat, bytes through
// /proc/self/mem (EIO: nothing mapped), PFNs from /proc/self/pagemap, and what an io_uring fixed
// buffer holds through a WRITE_FIXED the test issues itself into its own memfd; and the context
// the tests run rows with.
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { pageSize } from '../../src/proc/pagemap.js';
import type { ScenarioRunContext } from '../../src/scenario/types.js';
import { IORING_OP_WRITE_FIXED } from '../../src/ffi/io_uring.js';
import { MAP_ANONYMOUS, MAP_POPULATE, MAP_PRIVATE, PROT_READ, PROT_WRITE, memfdCreate, mmap, movePages } from '../../src/ffi/libc.js';
import type { Registration } from '../../src/engine/types.js';
import { UringRegistration } from '../../src/engine/uring.js';

/** VmPin and VmLck in bytes. */
export function accounting(pid: number | 'self' = 'self'): { pin: number; lck: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB$`, 'm').exec(status)?.[1] ?? Number.NaN) * 1024;
  return { pin: kb('VmPin'), lck: kb('VmLck') };
}

/** nr_foll_pin_acquired − nr_foll_pin_released, folded first, or null when the kernel has no such counters. */
export function pinsOutstanding(): number | null {
  foldVmCounters();
  const vmstat = readFileSync('/proc/vmstat', 'utf8');
  const get = (name: string): number | null => {
    const m = new RegExp(`^${name} (\\d+)$`, 'm').exec(vmstat);
    return m ? Number(m[1]) : null;
  };
  const acquired = get('nr_foll_pin_acquired');
  const released = get('nr_foll_pin_released');
  return acquired === null || released === null ? null : acquired - released;
}

/**
 * Folds every CPU's pending counter deltas into /proc/vmstat and /proc/meminfo now (reading
 * /proc/sys/vm/stat_refresh does it; root only, it changes no setting). Unfolded, a machine-wide
 * reading lags by up to each CPU's vm stats threshold (/proc/zoneinfo): tens of pages, more than a
 * small test registration.
 */
export function foldVmCounters(): void {
  readFileSync('/proc/sys/vm/stat_refresh');
}

/** pinsOutstanding() on a kernel that has the counters (every kernel the tests run on). */
export function vmstatPinsOutstanding(): number {
  const pins = pinsOutstanding();
  if (pins === null) throw new Error('/proc/vmstat has no nr_foll_pin_* counters');
  return pins;
}

/** One page of this process's own, for drainDeferredMunlocks (mapped once, kept). */
let drainPage: bigint | null = null;

/**
 * Lets the kernel finish the mlocks and munlocks it has deferred. Since 5.18 a page's mlock and
 * munlock go through a per-CPU batch (mm/mlock.c) that is drained later, so right after a process
 * that locked memory exits, Mlocked can still count a few of its pages: seen here, 2 pages of a
 * 64-page holder, in one run of three beside other test files. move_pages(2) of one page of our own
 * to the node it is already on drains every CPU's batches (lru_add_drain_all) and moves nothing.
 */
export function drainDeferredMunlocks(): void {
  if (drainPage === null) {
    drainPage = mmap(4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE);
  }
  const node = movePages(0, [drainPage], null).status[0]!;
  if (node < 0) throw new Error(`move_pages could not tell the node of our own page (status ${node})`);
  movePages(0, [drainPage], [node]);
}

/** A /proc/meminfo field in kB, with deferred munlocks done and the counters folded first. */
export function meminfoKb(field: string): number {
  drainDeferredMunlocks();
  foldVmCounters();
  return Number(new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(readFileSync('/proc/meminfo', 'utf8'))![1]);
}

/** This process's bytes at addr through /proc/self/mem; null when nothing is mapped there (EIO). */
export function memBytes(addr: bigint, length: number): Buffer | null {
  const fd = openSync('/proc/self/mem', 'r');
  try {
    const out = Buffer.alloc(length);
    const n = readSync(fd, out, 0, length, addr);
    return n === length ? out : null;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EIO') return null;
    throw err;
  } finally {
    closeSync(fd);
  }
}

/** The PFN of the page holding `addr` in `pid`, from its pagemap; null when not present (or hidden). */
export function pagemapPfn(pid: number | 'self', addr: bigint): number | null {
  const entry = Buffer.alloc(8);
  const fd = openSync(`/proc/${pid}/pagemap`, 'r');
  try {
    readSync(fd, entry, 0, 8, (addr / BigInt(pageSize())) * 8n);
  } finally {
    closeSync(fd);
  }
  const raw = entry.readBigUInt64LE(0);
  const pfn = raw & ((1n << 55n) - 1n);
  return (raw >> 63n) === 1n && pfn !== 0n ? Number(pfn) : null;
}

/** PFN of this process's page at addr, or null when not present. */
export function pfnAt(addr: bigint): number | null {
  return pagemapPfn('self', addr);
}

/** The bytes an io_uring registration's fixed buffer 0 holds, through the test's own WRITE_FIXED. */
export function uringHolds(registration: Registration | null, addr: bigint, length: number): Buffer | null {
  if (!(registration instanceof UringRegistration)) return null;
  const sink = memfdCreate('scenario-test-sink');
  try {
    const n = registration.ring.fixedIo(IORING_OP_WRITE_FIXED, sink, addr, length, 0, 0);
    if (n !== length) throw new Error(`WRITE_FIXED moved ${n} of ${length}`);
    const out = Buffer.alloc(length);
    expectFull(readSync(sink, out, 0, length, 0), length);
    return out;
  } finally {
    closeSync(sink);
  }
}

function expectFull(n: number, length: number): void {
  if (n !== length) throw new Error(`short read from the sink: ${n} of ${length}`);
}

/** Every byte of `bytes` is `value`. */
export function allOf(bytes: Buffer | null, value: number): boolean {
  return bytes !== null && bytes.every((b) => b === value);
}

export interface StepReading {
  pin: number;
  lck: number;
  pins: number | null;
  mem: Buffer | null;
  pfn: number | null;
  device: Buffer | null;
}

export const TEST_LENGTH = 256 * 1024;

export function scenarioContext(extra: Partial<ScenarioRunContext> = {}): ScenarioRunContext {
  return {
    length: TEST_LENGTH,
    env: { verbsUnavailable: 'no RDMA device on this host', pfnsVisible: process.getuid?.() === 0, memoryNodes: [0], pageSize: pageSize() },
    verbsAccess: 0,
    stepDelayMs: 0,
    ...extra,
  };
}

/** /proc/self/map_files/START-END of the VMA holding addr (a file mapping), or null. */
export function mapFileOf(addr: bigint): string | null {
  for (const line of readFileSync('/proc/self/maps', 'utf8').split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ (\d+)/.exec(line);
    if (!m || m[4] === '0') continue;
    if (BigInt(`0x${m[1]}`) <= addr && addr < BigInt(`0x${m[2]}`)) return `/proc/self/map_files/${m[1]}-${m[2]}`;
  }
  return null;
}
