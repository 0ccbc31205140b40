// What a request costs in the kernel's accounting: RLIMIT_MEMLOCK is checked in whole pages.

import { mappedLength } from '../engine/buffer.js';
import { formatBytes, roundUp } from '../lib/size.js';
import type { DoctorContext } from './types.js';

/**
 * Bytes the request charges: its size as reg maps it, rounded up to the backing's page (32 KiB of thp
 * maps, pins and charges 2 MiB on x86-64; hugetlb a whole huge page). 0 without --size.
 */
export function requestChargeBytes(ctx: DoctorContext): number {
  const size = ctx.request.sizeBytes;
  if (size === null) return 0;
  const { backing } = ctx.request;
  return backing === 'thp' || backing === 'hugetlb' ? mappedLength(size, backing) : roundUp(size, ctx.pageBytes);
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
