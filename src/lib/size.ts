// Sizes and durations as users type them. Every size suffix is a power of 1024 — K, KB and KiB
// all mean 1024 bytes — the same convention as the kernel's "kB" in /proc, so a size typed here
// and a number read from /proc/PID/status always agree.

import { UsageError } from './errors.js';

const SIZE_UNITS: Record<string, number> = {
  '': 1, b: 1,
  k: 1024, kb: 1024, kib: 1024,
  m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2,
  g: 1024 ** 3, gb: 1024 ** 3, gib: 1024 ** 3,
  t: 1024 ** 4, tb: 1024 ** 4, tib: 1024 ** 4,
};

export const SIZE_HELP = 'bytes, or with a suffix K/M/G/T (KB, KiB, MiB… accepted; all powers of 1024), e.g. 4096, 64K, 1.5G';

/** Parse a positive byte count such as `4096`, `64K`, `64KiB`, `1.5G`, `2MB`. Throws UsageError. */
export function parseSize(input: string, what = 'size'): number {
  const match = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*([a-zA-Z]*)\s*$/.exec(input);
  if (!match) throw new UsageError(`invalid ${what} '${input}': expected ${SIZE_HELP}`);
  const unit = SIZE_UNITS[match[2]!.toLowerCase()];
  if (unit === undefined) throw new UsageError(`invalid ${what} '${input}': unknown unit '${match[2]}' (use K, M, G or T; all powers of 1024)`);
  const bytes = Number(match[1]) * unit;
  if (!Number.isSafeInteger(bytes)) {
    if (Number.isInteger(bytes) || bytes > Number.MAX_SAFE_INTEGER) throw new UsageError(`invalid ${what} '${input}': too large`);
    throw new UsageError(`invalid ${what} '${input}': not a whole number of bytes`);
  }
  if (bytes === 0) throw new UsageError(`invalid ${what} '${input}': must be greater than zero`);
  return bytes;
}

const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** Human-readable bytes for text output (JSON always carries the integer). */
/** `value` rounded up to a whole number of `multiple`s (bytes to pages, a length to its backing's page). */
export function roundUp(value: number, multiple: number): number {
  return Math.ceil(value / multiple) * multiple;
}

export function formatBytes(bytes: number): string {
  if (bytes < 0) return `-${formatBytes(-bytes)}`;
  if (bytes < 1024) return `${bytes} B`;
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < BYTE_UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  const text = Number.isInteger(value) ? String(value) : value.toFixed(value < 10 ? 2 : 1);
  return `${text} ${BYTE_UNITS[unit]}`;
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, '': 1000, m: 60_000, min: 60_000, h: 3_600_000 };

export const DURATION_HELP = 'a number with ms, s, m or h (plain numbers are seconds), e.g. 500ms, 10s, 2m';

/** Parse a duration to milliseconds: `500ms`, `10s`, `10`, `2m`, `1h`. Throws UsageError. */
export function parseDuration(input: string, what = 'duration'): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/.exec(input);
  const unit = match ? DURATION_UNITS[match[2]!] : undefined;
  if (!match || unit === undefined) throw new UsageError(`invalid ${what} '${input}': expected ${DURATION_HELP}`);
  const ms = Math.round(Number(match[1]) * unit);
  if (ms <= 0) throw new UsageError(`invalid ${what} '${input}': must be greater than zero`);
  if (ms > 2 ** 31 - 1) throw new UsageError(`invalid ${what} '${input}': too long (at most about 24 days)`);
  return ms;
}

/** Parse a positive integer option such as --count. */
export function parseCount(input: string, what: string, max = 1_000_000): number {
  if (!/^\s*\d+\s*$/.test(input)) throw new UsageError(`invalid ${what} '${input}': expected a whole number from 1 to ${max}`);
  const n = Number(input);
  if (n < 1 || n > max) throw new UsageError(`invalid ${what} '${input}': expected a whole number from 1 to ${max}`);
  return n;
}

export function hex(addr: bigint | number): string {
  return `0x${addr.toString(16)}`;
}
