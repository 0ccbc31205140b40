// iproute2's `rdma` tool as a data source: the kernel's own view over RDMA netlink (MR table,
// copy-on-fork). Parsers are pure; runRdmaJson and readRdmaJson are the only I/O.

import { execFile, spawnSync } from 'node:child_process';

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

/** How one run of `rdma` ended, before its output is read: what runRdmaJson and readRdmaJson share. */
interface RdmaRun {
  error: NodeJS.ErrnoException | null;
  status: number | null;
  stdout: string;
  stderr: string;
}

function interpretRun(args: readonly string[], run: RdmaRun, plainPairs: boolean): RdmaToolResult {
  if (run.error) {
    return { ok: false, reason: run.error.code === 'ENOENT' ? 'the rdma tool is not installed (apt-get install iproute2)' : `rdma: ${run.error.message}` };
  }
  if (run.status !== 0) {
    const message = (run.stderr || run.stdout).trim().split('\n')[0] ?? '';
    return { ok: false, reason: message.includes('NETLINK_RDMA') ? 'the kernel has no RDMA netlink (no RDMA support loaded)' : `rdma ${args.join(' ')}: ${message || `exit ${run.status}`}` };
  }
  const text = run.stdout.trim();
  if (text === '') return { ok: true, data: [] };
  try {
    return { ok: true, data: JSON.parse(text) as unknown };
  } catch {
    const pairs = plainPairs ? parsePlainPairs(text) : null;
    if (pairs) return { ok: true, data: pairs };
    return { ok: false, reason: `rdma ${args.join(' ')} printed something that is not JSON` };
  }
}

/**
 * Run `rdma -j ARGS` and parse its JSON. Absence of the tool or of RDMA netlink is a reason, not an error.
 * With plainPairs, output that is not JSON is read as "key value" pairs (for `sys show`, see parsePlainPairs).
 * Blocks the caller until rdma exits (at most 10 s): for one-shot commands; the exporter uses readRdmaJson.
 */
export function runRdmaJson(args: readonly string[], options: { plainPairs?: boolean } = {}): RdmaToolResult {
  const result = spawnSync('rdma', ['-j', ...args], { encoding: 'utf8', timeout: 10_000 });
  return interpretRun(args, { error: result.error ?? null, status: result.status, stdout: result.stdout ?? '', stderr: result.stderr ?? '' }, options.plainPairs ?? false);
}

export interface ReadRdmaOptions {
  /** rdma is killed (SIGKILL) after this long. */
  timeoutMs: number;
  /** Output beyond this many bytes (stdout or stderr) kills rdma: the read fails instead of filling memory. */
  maxBytes: number;
  /** Aborting kills rdma (the exporter shutting down). */
  signal?: AbortSignal;
  /** As runRdmaJson's plainPairs. */
  plainPairs?: boolean;
}

/** readRdmaJson's result: runRdmaJson's, and whether rdma was killed at the timeout. */
export type RdmaReadResult = RdmaToolResult & { timedOut: boolean };

/**
 * `rdma -j ARGS` without blocking the event loop: runRdmaJson's answer, with a timeout, an output cap
 * and an abort signal, each of which kills rdma.
 */
export function readRdmaJson(args: readonly string[], options: ReadRdmaOptions): Promise<RdmaReadResult> {
  return new Promise((resolve) => {
    execFile('rdma', ['-j', ...args], {
      encoding: 'utf8',
      timeout: options.timeoutMs,
      killSignal: 'SIGKILL',
      maxBuffer: options.maxBytes,
      ...(options.signal ? { signal: options.signal } : {}),
    }, (error, stdout, stderr) => {
      const failure = error as (NodeJS.ErrnoException & { killed?: boolean; signal?: NodeJS.Signals | null; code?: string | number | null }) | null;
      if (failure && options.signal?.aborted) {
        resolve({ ok: false, reason: 'rdma was stopped: the exporter is shutting down', timedOut: false });
        return;
      }
      if (failure && failure.code === 'ERR_CHILD_PROCESS_STDIO_MAXBUFFER') {
        resolve({ ok: false, reason: `rdma ${args.join(' ')} printed more than ${options.maxBytes} bytes: killed`, timedOut: false });
        return;
      }
      // execFile kills at the timeout and reports it as killed with the kill signal.
      if (failure && failure.killed === true && failure.signal === 'SIGKILL') {
        resolve({ ok: false, reason: `rdma ${args.join(' ')} did not finish within ${options.timeoutMs / 1000} s: killed`, timedOut: true });
        return;
      }
      // An exit status other than 0 comes as an error whose code is the status; a spawn failure has a string code.
      const spawnError = failure && typeof failure.code === 'string' ? failure : null;
      const status = failure === null ? 0 : typeof failure.code === 'number' ? failure.code : null;
      const run: RdmaRun = { error: spawnError, status: spawnError ? null : status, stdout, stderr };
      if (!spawnError && failure && status === null) {
        resolve({ ok: false, reason: `rdma ${args.join(' ')}: killed by ${failure.signal ?? 'a signal'}`, timedOut: false });
        return;
      }
      resolve({ ...interpretRun(args, run, options.plainPairs ?? false), timedOut: false });
    });
  });
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

