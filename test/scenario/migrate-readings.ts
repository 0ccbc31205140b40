// The migrate tests' own readings of where pages are, deliberately not rdmactl's: the VMA's per-node
// page counts from /proc/PID/numa_maps (and its end from /proc/PID/maps), PFNs from a pread of
// /proc/PID/pagemap, and each PFN's node from the memory blocks sysfs lists under each node.
import { closeSync, openSync, readFileSync, readSync, readdirSync } from 'node:fs';

export interface NumaMapsLine {
  start: bigint;
  /** End of the VMA (from /proc/PID/maps). */
  end: bigint;
  /** N<node>=<pages> fields. */
  pagesPerNode: Map<number, number>;
  kernelPageKb: number;
  line: string;
}

/** The numa_maps line of the VMA that contains addr, or null. */
export function numaMapsAt(pid: number | 'self', addr: bigint): NumaMapsLine | null {
  let vma: { start: bigint; end: bigint } | null = null;
  for (const line of readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) /.exec(line);
    if (!m) continue;
    const start = BigInt(`0x${m[1]}`);
    const end = BigInt(`0x${m[2]}`);
    if (start <= addr && addr < end) vma = { start, end };
  }
  if (!vma) return null;
  for (const line of readFileSync(`/proc/${pid}/numa_maps`, 'utf8').split('\n')) {
    const fields = line.split(' ');
    if (fields.length < 2 || BigInt(`0x${fields[0]}`) !== vma.start) continue;
    const pagesPerNode = new Map<number, number>();
    let kernelPageKb = 4;
    for (const f of fields) {
      const n = /^N(\d+)=(\d+)$/.exec(f);
      if (n) pagesPerNode.set(Number(n[1]), Number(n[2]));
      const k = /^kernelpagesize_kB=(\d+)$/.exec(f);
      if (k) kernelPageKb = Number(k[1]);
    }
    return { start: vma.start, end: vma.end, pagesPerNode, kernelPageKb, line };
  }
  return null;
}

/** PFN of each page (null: not present or hidden), read with our own pread of pagemap. */
export function pfnsAt(pid: number | 'self', addr: bigint, pages: number, pageBytes = 4096): Array<number | null> {
  const buf = Buffer.alloc(pages * 8);
  const fd = openSync(`/proc/${pid}/pagemap`, 'r');
  try {
    readSync(fd, buf, 0, buf.length, (addr / BigInt(pageBytes)) * 8n);
  } finally {
    closeSync(fd);
  }
  const out: Array<number | null> = [];
  for (let i = 0; i < pages; i++) {
    const raw = buf.readBigUInt64LE(i * 8);
    const pfn = raw & ((1n << 55n) - 1n);
    out.push(raw >> 63n === 1n && pfn !== 0n ? Number(pfn) : null);
  }
  return out;
}

/** memory block number → node, from /sys/devices/system/node/nodeN/memoryM links. */
export function memoryBlockNodes(): { blockBytes: number; nodeOfBlock: Map<number, number> } {
  const blockBytes = Number.parseInt(readFileSync('/sys/devices/system/memory/block_size_bytes', 'ascii').trim(), 16);
  const nodeOfBlock = new Map<number, number>();
  for (const dir of readdirSync('/sys/devices/system/node')) {
    const node = /^node(\d+)$/.exec(dir);
    if (!node) continue;
    for (const entry of readdirSync(`/sys/devices/system/node/${dir}`)) {
      const block = /^memory(\d+)$/.exec(entry);
      if (block) nodeOfBlock.set(Number(block[1]), Number(node[1]));
    }
  }
  return { blockBytes, nodeOfBlock };
}

/** The node of each PFN (null when the PFN is null or in no listed block). */
export function nodesOfPfns(pfns: ReadonlyArray<number | null>, pageBytes = 4096): Array<number | null> {
  const { blockBytes, nodeOfBlock } = memoryBlockNodes();
  return pfns.map((pfn) => (pfn === null ? null : nodeOfBlock.get(Math.floor((pfn * pageBytes) / blockBytes)) ?? null));
}

/** Nodes with memory: node directories whose meminfo shows MemTotal > 0. */
export function nodesWithMemory(): number[] {
  const nodes: number[] = [];
  let dirs: string[] = [];
  try {
    dirs = readdirSync('/sys/devices/system/node');
  } catch {
    return [];
  }
  for (const dir of dirs) {
    const m = /^node(\d+)$/.exec(dir);
    if (!m) continue;
    const total = /MemTotal:\s+(\d+) kB/.exec(readFileSync(`/sys/devices/system/node/${dir}/meminfo`, 'utf8'));
    if (total && Number(total[1]) > 0) nodes.push(Number(m[1]));
  }
  return nodes.sort((a, b) => a - b);
}

/** "512× node 1" style count of a list of nodes, as the scenario's notes print it. */
export function countOf(values: ReadonlyArray<number | null>, value: number): number {
  return values.filter((v) => v === value).length;
}
