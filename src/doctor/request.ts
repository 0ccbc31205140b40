// What a request costs in the kernel's accounting: RLIMIT_MEMLOCK is checked in whole pages.

import { formatBytes } from '../lib/size.js';
import type { DoctorContext } from './types.js';

export function roundUp(bytes: number, unit: number): number {
  return Math.ceil(bytes / unit) * unit;
}

/** Bytes the request charges: its size rounded up to the pages that back it. 0 without --size. */
export function requestChargeBytes(ctx: DoctorContext, hugePageBytes: number | null = null): number {
  const size = ctx.request.sizeBytes;
  if (size === null) return 0;
  return roundUp(size, ctx.request.backing === 'hugetlb' && hugePageBytes ? hugePageBytes : ctx.pageBytes);
}

export function limitText(bytes: number | null): string {
  return bytes === null ? 'unlimited' : formatBytes(bytes);
}

/** A limit for `ulimit -l` / limits.conf (KiB) or prlimit (bytes). */
export function kib(bytes: number | null): string {
  return bytes === null ? 'unlimited' : String(Math.ceil(bytes / 1024));
}

export function describeRequest(ctx: DoctorContext): string {
  const { sizeBytes, backend } = ctx.request;
  return sizeBytes === null || backend === null ? '' : `${formatBytes(sizeBytes)} with ${backend}`;
}
