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

/** `value` rounded up to a whole number of `multiple`s (bytes to pages, a length to its backing's page). */
export function roundUp(value: number, multiple: number): number {
  return Math.ceil(value / multiple) * multiple;
}

const UNIT_LETTERS = ['B', 'K', 'M', 'G', 'T', 'P', 'E'];

/**
 * How a byte count is written for people:
 * - 'iec': `64 MiB`, `2.3 GiB`, `512 B` (prose, terminal tables, record views);
 * - 'compact': lsblk's one-word form `64M`, `2.3G`, `512B` (plain tables in pipes, so `column -t`
 *   and awk see one word per cell).
 * Both use powers of 1024 with one decimal, dropped when it is 0, so a size reads the same in every
 * command and the next unit starts at 1024 (`1023.9 KiB`, then `1 MiB`). JSON and -b carry the integer.
 * (No npm package writes both forms exactly: `bytes` says KB for 1024, pretty-bytes rounds to three
 * significant digits and has no one-letter form.)
 */
export type SizeStyle = 'iec' | 'compact';

export function formatBytes(bytes: number, style: SizeStyle = 'iec'): string {
  if (bytes < 0) return `-${formatBytes(-bytes, style)}`;
  let value = bytes;
  let unit = 0;
  while (unit < UNIT_LETTERS.length - 1 && Math.round(value * 10) / 10 >= 1024) {
    value /= 1024;
    unit++;
  }
  const number = String(Math.round(value * 10) / 10);
  const letter = UNIT_LETTERS[unit]!;
  if (style === 'compact') return `${number}${letter}`;
  return `${number} ${unit === 0 ? 'B' : `${letter}iB`}`;
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
