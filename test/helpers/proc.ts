// Independent readings of /proc for tests: deliberately not rdmactl's own parsers.
import { readFileSync } from 'node:fs';

export function statusKb(pid: number | 'self', field: 'VmPin' | 'VmLck'): number {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(text);
  if (!match) throw new Error(`${field} missing from /proc/${pid}/status`);
  return Number(match[1]);
}

export function hasCapIpcLock(): boolean {
  const text = readFileSync('/proc/self/status', 'utf8');
  const mask = BigInt(`0x${/^CapEff:\s+([0-9a-f]+)$/m.exec(text)![1]}`);
  return ((mask >> 14n) & 1n) === 1n;
}
