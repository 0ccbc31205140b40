import { UsageError } from './errors.js';

/** Linux's PID_MAX_LIMIT. */
const PID_MAX = 4_194_304;

export function parsePid(text: string, what = 'PID'): number {
  if (!/^\d+$/.test(text) || Number(text) < 1 || Number(text) > PID_MAX) throw new UsageError(`invalid ${what} '${text}': expected a process id such as 1234`);
  return Number(text);
}

export function parsePidList(texts: readonly string[]): number[] {
  return texts.flatMap((t) => t.split(',')).filter((t) => t !== '').map((t) => parsePid(t));
}
