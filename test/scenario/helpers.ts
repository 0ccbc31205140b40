// Independent readings for the scenario tests (deliberately not rdmactl's parsers) and the context
// the tests run rows with.
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { pageSize } from '../../src/proc/pagemap.js';
import type { ScenarioRunContext } from '../../src/scenario/types.js';

/** nr_foll_pin_acquired − nr_foll_pin_released, read from /proc/vmstat here. */
export function vmstatPinsOutstanding(): number {
  const text = readFileSync('/proc/vmstat', 'utf8');
  const get = (key: string): number => Number(new RegExp(`^${key} (\\d+)$`, 'm').exec(text)![1]);
  return get('nr_foll_pin_acquired') - get('nr_foll_pin_released');
}

export function meminfoKb(field: string): number {
  return Number(new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(readFileSync('/proc/meminfo', 'utf8'))![1]);
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
