// /proc/PID/numa_maps: one line per VMA — start address, memory policy, then key=value pairs, among
// them N<node>=<pages> (resident pages on each node) and kernelpagesize_kB. Pages are counted in the
// VMA's kernel page size (huge pages count as one).

import { procPath, readProcText, type ProcPid } from './procfs.js';

export interface NumaMapsVma {
  start: bigint;
  /** The VMA's memory policy as printed: default, bind:0-1, interleave:0-1, prefer:1, local, … */
  policy: string;
  /** Resident pages per node. */
  pagesByNode: ReadonlyMap<number, number>;
  /** Bytes per page in this VMA (kernelpagesize_kB × 1024). */
  pageBytes: number;
  anonymous: boolean;
  /** The file behind the VMA, when there is one. */
  file: string | null;
}

export function parseNumaMaps(text: string): NumaMapsVma[] {
  const vmas: NumaMapsVma[] = [];
  for (const line of text.split('\n')) {
    const words = line.trim().split(' ');
    if (words.length < 2 || !/^[0-9a-f]+$/.test(words[0]!)) continue;
    const pagesByNode = new Map<number, number>();
    let pageBytes = 4096;
    let anonymous = false;
    let file: string | null = null;
    for (const word of words.slice(2)) {
      const eq = word.indexOf('=');
      const key = eq < 0 ? word : word.slice(0, eq);
      const value = eq < 0 ? '' : word.slice(eq + 1);
      const node = /^N(\d+)$/.exec(key);
      if (node) pagesByNode.set(Number(node[1]), Number(value));
      else if (key === 'kernelpagesize_kB') pageBytes = Number(value) * 1024;
      else if (key === 'anon') anonymous = true;
      else if (key === 'file') file = value; // paths with spaces are cut at the first one: used for display only
    }
    vmas.push({ start: BigInt(`0x${words[0]}`), policy: words[1]!, pagesByNode, pageBytes, anonymous, file });
  }
  return vmas;
}

/** null when the process is gone; throws ProcUnreadableError when not allowed. */
export function readNumaMaps(pid: ProcPid): NumaMapsVma[] | null {
  const text = readProcText(procPath(pid, 'numa_maps'));
  return text === null ? null : parseNumaMaps(text);
}

/** Resident bytes per node over `vmas`. */
export function bytesByNode(vmas: readonly NumaMapsVma[]): Map<number, number> {
  const out = new Map<number, number>();
  for (const vma of vmas) for (const [node, pages] of vma.pagesByNode) out.set(node, (out.get(node) ?? 0) + pages * vma.pageBytes);
  return out;
}
