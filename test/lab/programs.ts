// Running real RDMA programs (perftest, ibverbs-utils, rdmacm-utils) as pairs in the lab: free ports,
// readiness read from the kernel (TCP listeners, RDMA CM listeners), children kept with the tail of
// their output and killed and reaped after each test, and the cgroup v2 mount the rdma.max tests need.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { RXE_DEVICE, json, run } from './helpers.js';

/** The directory holding `program` on PATH, or null: a missing program is a reason to skip, said loudly. */
export function onPath(program: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir && existsSync(`${dir}/${program}`)) return `${dir}/${program}`;
  }
  return null;
}

/** The GID index of the IPv4-mapped (::ffff:a.b.c.d) RoCE v2 GID: what perftest's -x and pingpong's -g need. */
export function ipv4GidIndex(): number {
  const base = `/sys/class/infiniband/${RXE_DEVICE}/ports/1`;
  for (let i = 0; i < 16; i++) {
    const gid = readFileSync(`${base}/gids/${i}`, 'utf8').trim();
    let type = '';
    try { type = readFileSync(`${base}/gid_attrs/types/${i}`, 'utf8').trim(); } catch { continue; }
    if (gid.startsWith('0000:0000:0000:0000:0000:ffff:') && type === 'RoCE v2') return i;
  }
  throw new Error(`${RXE_DEVICE} has no IPv4-mapped RoCE v2 GID in its first 16 entries`);
}

/** A TCP port nobody listens on now (the OS picks it); RDMA CM ports share the number space in tests. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

/** True when something listens on TCP `port` (any address), from /proc/net/tcp{,6}. */
export function tcpListening(port: number): boolean {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  return ['/proc/net/tcp', '/proc/net/tcp6'].some((f) => {
    try {
      return readFileSync(f, 'utf8').split('\n').some((l) => { const w = l.trim().split(/\s+/); return w[1]?.endsWith(`:${hex}`) && w[3] === '0A'; });
    } catch { return false; }
  });
}

interface CmIdRow { pid?: number; state?: string; 'src-addr'?: string }

/** The kernel's RDMA CM ids (`rdma -j res show cm_id`: src-addr is "10.0.2.15:7174"). */
export function cmIds(): CmIdRow[] {
  return json<CmIdRow[]>(['rdma', '-j', 'res', 'show', 'cm_id']);
}

/** True when `pid` has an RDMA CM id listening on `port`, from the kernel's table. */
export function cmListening(pid: number, port: number): boolean {
  return cmIds().some((r) => r.pid === pid && r.state === 'LISTEN' && (r['src-addr'] ?? '').endsWith(`:${port}`));
}

export async function until(what: string, ok: () => boolean, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export interface Program { child: ChildProcess; pid: number; output: () => string; exited: Promise<number | null> }

/** Keeps the last 64 KiB of a chatty program's output (rping -v prints every ping). */
const OUTPUT_TAIL = 64 * 1024;

/** Started programs, killed and reaped by stopPrograms (after each test, and in afterAll). */
export class Programs {
  readonly #children: ChildProcess[] = [];

  /** Starts argv (with `cgroupDir`: inside that cgroup v2 directory first), keeping its stdout+stderr tail. */
  start(argv: string[], opts: { cgroupDir?: string; env?: NodeJS.ProcessEnv } = {}): Program {
    const child = opts.cgroupDir
      ? spawn('sh', ['-c', `echo $$ > ${opts.cgroupDir}/cgroup.procs && exec "$@"`, 'sh', ...argv], { stdio: ['ignore', 'pipe', 'pipe'], env: opts.env ?? process.env })
      : spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: opts.env ?? process.env });
    this.#children.push(child);
    let out = '';
    const keep = (d: Buffer) => { out = (out + d.toString()).slice(-OUTPUT_TAIL); };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    if (child.pid === undefined) throw new Error(`${argv[0]} did not start`);
    return { child, pid: child.pid, output: () => out, exited };
  }

  async stopAll(): Promise<void> {
    for (const child of this.#children.splice(0)) {
      if (child.exitCode !== null || child.signalCode !== null) continue;
      const gone = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await gone;
    }
  }
}

export const CGROUP_ROOT = '/sys/fs/cgroup';

/**
 * cgroup v2 at /sys/fs/cgroup with the rdma controller enabled for children, and one child group;
 * `undo` removes the group (its processes must be gone) and unmounts what was mounted here.
 * `rdma` is false when the kernel has no rdma controller (a fact the tests skip on).
 */
export function rdmaCgroup(group: string): { dir: string; rdma: boolean; current: () => Record<string, number>; setMax: (line: string) => void; undo: () => void } {
  const isV2 = / - cgroup2 /.test(readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => l.split(' ')[4] === CGROUP_ROOT) ?? '');
  let mounted = false;
  if (!isV2) {
    const m = run(['mount', '-t', 'cgroup2', 'none', CGROUP_ROOT]);
    if (m.status !== 0) throw new Error(`mount cgroup2: ${m.stderr}`);
    mounted = true;
  }
  const rdma = readFileSync(`${CGROUP_ROOT}/cgroup.controllers`, 'utf8').split(/\s+/).includes('rdma');
  if (rdma) writeFileSync(`${CGROUP_ROOT}/cgroup.subtree_control`, '+rdma');
  const dir = `${CGROUP_ROOT}${group}`;
  run(['mkdir', '-p', dir]);
  return {
    dir,
    rdma,
    /** `rxe0 hca_handle=1 hca_object=2` of the group's rdma.current → numbers. */
    current: () => {
      const line = readFileSync(`${dir}/rdma.current`, 'utf8').split('\n').find((l) => l.startsWith(`${RXE_DEVICE} `)) ?? '';
      return Object.fromEntries([...line.matchAll(/(\w+)=(\d+)/g)].map(([, k, v]) => [k!, Number(v)]));
    },
    setMax: (line) => writeFileSync(`${dir}/rdma.max`, line),
    undo: () => {
      if (existsSync(dir)) rmdirSync(dir);
      if (mounted) run(['umount', CGROUP_ROOT]);
    },
  };
}

/**
 * The errno of the last failed call on the uverbs device node in an strace log (`strace -f -e
 * trace=openat,ioctl,write`): the program's own error, the kernel's syscall return, not rdmactl's
 * reading. The last, not the first: libibverbs first probes with an ioctl the kernel may answer ENOSPC
 * (too small an output attribute) and goes on; the call it gives up on comes last.
 */
export function uverbsErrno(straceLog: string): string | null {
  const fds = new Set<string>();
  let last: string | null = null;
  for (const line of straceLog.split('\n')) {
    const opened = /openat\([^,]+, "\/dev\/infiniband\/uverbs\d+", [^)]*\) = (\d+)/.exec(line);
    if (opened) { fds.add(opened[1]!); continue; }
    const failed = /(?:ioctl|write)\((\d+), .* = -1 (E[A-Z0-9]+)/.exec(line);
    if (failed && fds.has(failed[1]!)) last = failed[2]!;
  }
  return last;
}
