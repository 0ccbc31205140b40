// NUMA nodes from sysfs: /sys/devices/system/node/has_memory lists the nodes that have memory
// (where pages can be moved to), in the kernel's list format ("0", "0-1", "0,2-3"; bitmap_print_to_pagebuf).
// A kernel built without CONFIG_NUMA has no /sys/devices/system/node at all.

import { readFileSync } from 'node:fs';
import { errorCode } from './procfs.js';

export const NODE_ROOT = '/sys/devices/system/node';

/** A kernel node or CPU list ("0-1,3\n") → ascending numbers; the empty list is []. Throws on anything else. */
export function parseNodeList(text: string): number[] {
  const trimmed = text.trim();
  if (trimmed === '') return [];
  const nodes = new Set<number>();
  for (const part of trimmed.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) throw new Error(`not a kernel node list: "${trimmed}"`);
    const first = Number(m[1]);
    const last = m[2] === undefined ? first : Number(m[2]);
    if (last < first) throw new Error(`not a kernel node list: "${trimmed}" (range ${part} runs backwards)`);
    for (let n = first; n <= last; n++) nodes.add(n);
  }
  return [...nodes].sort((a, b) => a - b);
}

/** NUMA nodes with memory, or null when the kernel has no NUMA support (no has_memory file). */
export function readMemoryNodes(root = NODE_ROOT): number[] | null {
  let text: string;
  try {
    text = readFileSync(`${root}/has_memory`, 'ascii');
  } catch (err) {
    if (errorCode(err) === 'ENOENT') return null;
    throw err;
  }
  return parseNodeList(text);
}
