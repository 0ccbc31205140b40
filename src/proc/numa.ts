// NUMA nodes with memory, from sysfs (a node list like "0" or "0-1,3"); [0] when the file is absent
// (a kernel without CONFIG_NUMA has one node, number 0).

import { readProcText } from './procfs.js';

export const HAS_MEMORY_PATH = '/sys/devices/system/node/has_memory';

/** "0-2,4" → [0, 1, 2, 4]. */
export function parseNodeList(text: string): number[] {
  const nodes: number[] = [];
  for (const part of text.trim().split(',')) {
    if (part === '') continue;
    const [lo, hi] = part.split('-').map((s) => Number.parseInt(s, 10));
    if (lo === undefined || Number.isNaN(lo)) throw new Error(`unexpected node list: ${JSON.stringify(text)}`);
    for (let n = lo; n <= (hi === undefined || Number.isNaN(hi) ? lo : hi); n++) nodes.push(n);
  }
  return nodes;
}

export function readMemoryNodes(): number[] {
  const text = readProcText(HAS_MEMORY_PATH);
  return text === null ? [0] : parseNodeList(text);
}
