// iproute2's `rdma` tool as a data source: the kernel's own view over RDMA netlink (MR table,
// copy-on-fork). Parsers are pure; runRdmaJson is the only I/O.

import { spawnSync } from 'node:child_process';
import { release } from 'node:os';

export type RdmaToolResult =
  | { ok: true; data: unknown }
  | { ok: false; reason: string };

/**
 * "key value key value ..." → { key: value, ... }, or null when the words do not pair up. iproute2 6.1
 * (Debian bookworm) ignores -j for `rdma sys show` and prints "netns shared copy-on-fork on".
 */
export function parsePlainPairs(text: string): Record<string, string> | null {
  const words = text.trim().split(/\s+/);
  if (words.length === 0 || words.length % 2 !== 0 || words[0] === '') return null;
  const out: Record<string, string> = {};
  for (let i = 0; i < words.length; i += 2) out[words[i]!] = words[i + 1]!;
  return out;
}

/**
 * Run `rdma -j ARGS` and parse its JSON. Absence of the tool or of RDMA netlink is a reason, not an error.
 * With plainPairs, output that is not JSON is read as "key value" pairs (for `sys show`, see parsePlainPairs).
 */
export function runRdmaJson(args: readonly string[], options: { plainPairs?: boolean } = {}): RdmaToolResult {
  const result = spawnSync('rdma', ['-j', ...args], { encoding: 'utf8', timeout: 10_000 });
  if (result.error) {
    const code = (result.error as NodeJS.ErrnoException).code;
    return { ok: false, reason: code === 'ENOENT' ? 'the rdma tool is not installed (apt-get install iproute2)' : `rdma: ${result.error.message}` };
  }
  if (result.status !== 0) {
    const message = (result.stderr || result.stdout).trim().split('\n')[0] ?? '';
    return { ok: false, reason: message.includes('NETLINK_RDMA') ? 'the kernel has no RDMA netlink (no RDMA support loaded)' : `rdma ${args.join(' ')}: ${message || `exit ${result.status}`}` };
  }
  const text = result.stdout.trim();
  if (text === '') return { ok: true, data: [] };
  try {
    return { ok: true, data: JSON.parse(text) as unknown };
  } catch {
    const pairs = options.plainPairs ? parsePlainPairs(text) : null;
    if (pairs) return { ok: true, data: pairs };
    return { ok: false, reason: `rdma ${args.join(' ')} printed something that is not JSON` };
  }
}

/** What a kernel release implies when nothing reports copy-on-fork: pinned pages are copied at fork since 5.9. */
export function copyOnForkByVersion(kernelRelease: string): boolean {
  const m = /^(\d+)\.(\d+)/.exec(kernelRelease);
  const major = m ? Number(m[1]) : 0;
  const minor = m ? Number(m[2]) : 0;
  return major > 5 || (major === 5 && minor >= 9);
}

/** `rdma -j sys show` → the copy-on-fork flag (null when the kernel or tool does not report it). */
export function parseCopyOnFork(data: unknown): boolean | null {
  const records = Array.isArray(data) ? data : [data];
  for (const record of records) {
    if (record && typeof record === 'object' && 'copy-on-fork' in record) {
      const value = (record as Record<string, unknown>)['copy-on-fork'];
      if (typeof value === 'boolean') return value;
      if (value === 'on') return true;
      if (value === 'off') return false;
    }
  }
  return null;
}

export interface KernelMr {
  device: string;
  mrn: number;
  pid: number | null;
  comm: string | null;
  lengthBytes: number;
  pdn: number | null;
  /** Keys as hex strings ("2aa"); only visible with CAP_NET_ADMIN. */
  lkey: string | null;
  rkey: string | null;
  /** Kernels after ~5.x no longer report iova. */
  iova: string | null;
}

function str(value: unknown): string | null {
  return typeof value === 'string' ? value : typeof value === 'number' ? value.toString(16) : null;
}

function num(value: unknown): number | null {
  return typeof value === 'number' ? value : typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : null;
}

/** `rdma -j -d res show mr` → one record per MR. Unknown shapes yield no rows rather than throwing. */
export function parseKernelMrs(data: unknown): KernelMr[] {
  if (!Array.isArray(data)) return [];
  const out: KernelMr[] = [];
  for (const item of data) {
    if (!item || typeof item !== 'object') continue;
    const r = item as Record<string, unknown>;
    out.push({
      device: typeof r['ifname'] === 'string' ? r['ifname'] : String(r['dev'] ?? ''),
      mrn: num(r['mrn']) ?? -1,
      pid: num(r['pid']),
      comm: typeof r['comm'] === 'string' ? r['comm'] : null,
      lengthBytes: num(r['mrlen']) ?? 0,
      pdn: num(r['pdn']),
      lkey: str(r['lkey']),
      rkey: str(r['rkey']),
      iova: str(r['iova']),
    });
  }
  return out;
}

