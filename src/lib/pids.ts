import { UsageError } from './errors.js';

/** Linux's PID_MAX_LIMIT. */
const PID_MAX = 4_194_304;

export function parsePid(text: string, what = 'PID'): number {
  if (!/^\d+$/.test(text) || Number(text) < 1 || Number(text) > PID_MAX) throw new UsageError(`invalid ${what} '${text}': expected a process id such as 1234`);
  return Number(text);
}

/** PIDs from arguments and comma lists, each once (first-given order); an empty list is a usage error. */
export function parsePidList(texts: readonly string[], what = 'PID'): number[] {
  const pids = texts.flatMap((t) => t.split(',')).map((t) => t.trim()).filter((t) => t !== '').map((t) => parsePid(t, what));
  if (pids.length === 0) throw new UsageError(`invalid ${what} list '${texts.join(' ')}': give one or more process ids, e.g. 1234,5678`);
  return [...new Set(pids)];
}
