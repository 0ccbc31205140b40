// The scenario tests' own readings, made straight from the kernel (not through rdmactl's readers):
// VmPin/VmLck from /proc/PID/status, FOLL_PIN counters from /proc/vmstat, bytes through
// /proc/self/mem (EIO: nothing mapped), PFNs from /proc/self/pagemap, and what an io_uring fixed
// buffer holds through a WRITE_FIXED the test issues itself into its own memfd.
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { IORING_OP_WRITE_FIXED } from '../../src/ffi/io_uring.js';
import { memfdCreate } from '../../src/ffi/libc.js';
import type { Registration } from '../../src/engine/types.js';
import { UringRegistration } from '../../src/engine/uring.js';

/** VmPin and VmLck in bytes. */
export function accounting(pid: number | 'self' = 'self'): { pin: number; lck: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB$`, 'm').exec(status)?.[1] ?? Number.NaN) * 1024;
  return { pin: kb('VmPin'), lck: kb('VmLck') };
}

/** nr_foll_pin_acquired − nr_foll_pin_released, or null when the kernel has no such counters. */
export function pinsOutstanding(): number | null {
  const vmstat = readFileSync('/proc/vmstat', 'utf8');
  const get = (name: string): number | null => {
    const m = new RegExp(`^${name} (\\d+)$`, 'm').exec(vmstat);
    return m ? Number(m[1]) : null;
  };
  const acquired = get('nr_foll_pin_acquired');
  const released = get('nr_foll_pin_released');
  return acquired === null || released === null ? null : acquired - released;
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

/** PFN of the page at addr (bits 0–54 of its pagemap entry), or null when not present. */
export function pfnAt(addr: bigint): number | null {
  const fd = openSync('/proc/self/pagemap', 'r');
  try {
    const entry = Buffer.alloc(8);
    readSync(fd, entry, 0, 8, (addr / 4096n) * 8n);
    const raw = entry.readBigUInt64LE();
    if ((raw >> 63n) === 0n) return null;
    return Number(raw & ((1n << 55n) - 1n));
  } finally {
    closeSync(fd);
  }
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
