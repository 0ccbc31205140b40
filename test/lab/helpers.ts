// Helpers for tests that run inside the Soft-RoCE lab VM (test/lab/*.test.ts, `npm run test:lab`).
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { readCopyOnForkAttribute } from '../../src/rdma/nldev.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** True inside the lab VM (set by lab/lab.mjs); tests should skip themselves elsewhere. */
export const inLab = process.env.RDMACTL_LAB === '1';
export const notInLabReason = 'not inside the Soft-RoCE lab VM (run: npm run test:lab)';

/** Which lab kernel this is: its name (bullseye, stable, trixie, new) and the guest's `uname -r`. For titles and logs: tests branch on kernel facts, not on these. */
export const labKernel = {
  name: process.env.RDMACTL_LAB_KERNEL_NAME ?? '',
  release: process.env.RDMACTL_LAB_KERNEL_RELEASE ?? readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim(),
};

/**
 * The lab's scratch disk: a fresh ext4 file system on a virtio disk, mounted per boot (lab/vm.mjs).
 * Files here live in a real disk file system's page cache, not tmpfs. Null outside the lab, or when
 * /init could not mount it (a lab setup problem: tests that need it fail with labDiskMissing).
 */
export const labDisk: string | null = process.env.RDMACTL_LAB_DISK || null;
export const labDiskMissing = 'RDMACTL_LAB_DISK is not set: the lab VM did not mount its ext4 scratch disk (see the lab-init warning at the top of the output)';

/** The Soft-RoCE device the lab creates on eth0. */
export const RXE_DEVICE = 'rxe0';

export interface CmdResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs argv (no shell) and returns its output; never throws for a non-zero status. */
export function run(argv: string[], opts: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string } = {}): CmdResult {
  const r = spawnSync(argv[0]!, argv.slice(1), {
    encoding: 'utf8',
    input: opts.input,
    env: opts.env ?? process.env,
    cwd: opts.cwd ?? ROOT,
    timeout: opts.timeoutMs ?? 60_000,
    maxBuffer: 64 << 20,
  });
  if (r.error) throw r.error;
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

/** Runs a /bin/sh command line. */
export function sh(command: string, opts: Parameters<typeof run>[1] = {}): CmdResult {
  return run(['/bin/sh', '-c', command], opts);
}

/** Runs argv, requires exit status 0 and returns stdout. */
export function check(argv: string[], opts: Parameters<typeof run>[1] = {}): string {
  const r = run(argv, opts);
  if (r.status !== 0) {
    throw new Error(`${argv.join(' ')} exited with ${r.status ?? r.signal}:\n${r.stderr || r.stdout}`);
  }
  return r.stdout;
}

/** Runs argv (e.g. ['rdma', '-j', 'dev']) and parses its stdout as JSON. */
export function json<T = unknown>(argv: string[], opts: Parameters<typeof run>[1] = {}): T {
  const out = check(argv, opts);
  try {
    return JSON.parse(out) as T;
  } catch (err) {
    throw new Error(`${argv.join(' ')} did not print JSON (${(err as Error).message}):\n${out.slice(0, 2000)}`);
  }
}

/** A "Name:   123 kB" field of /proc/PID/status in kB (e.g. VmPin, VmLck, VmRSS); null if absent. */
export function statusKb(field: string, pid: number | 'self' = 'self'): number | null {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(text);
  return m ? Number(m[1]) : null;
}

/** VmPin (pinned_vm) of a process in kB. */
export const vmPinKb = (pid: number | 'self' = 'self'): number | null => statusKb('VmPin', pid);
/** VmLck (locked_vm) of a process in kB. */
export const vmLckKb = (pid: number | 'self' = 'self'): number | null => statusKb('VmLck', pid);

/**
 * `rdma -j sys show` as an object, e.g. { netns: 'shared', 'copy-on-fork': 'on' }.
 * iproute2 6.1 (Debian bookworm) ignores -j for `sys show` and prints "netns shared copy-on-fork on",
 * so the plain "key value ..." form is accepted too.
 */
export function rdmaSys(): Record<string, unknown> {
  const out = check(['rdma', '-j', 'sys', 'show']).trim();
  if (out.startsWith('{') || out.startsWith('[')) {
    const parsed = JSON.parse(out) as unknown;
    return (Array.isArray(parsed) ? parsed[0] : parsed) as Record<string, unknown>;
  }
  const words = out.split(/\s+/);
  if (words.length % 2 !== 0) throw new Error(`cannot parse rdma sys show output: ${out}`);
  const result: Record<string, unknown> = {};
  for (let i = 0; i < words.length; i += 2) result[words[i]!] = words[i + 1];
  return result;
}

/**
 * Whether the lab's rxe0 does on-demand paging, as `ibv_devinfo -v` (libibverbs, not rdmactl) reads it
 * from the running kernel: ODP_SUPPORT under general_odp_caps. rdma_rxe gained ODP in 6.x; a test
 * branches on this fact, never on the kernel's name or version.
 */
export function rxeHasOdp(): boolean {
  const text = check(['ibv_devinfo', '-v', '-d', RXE_DEVICE]);
  const section = /^\tgeneral_odp_caps:\s*\n((?:\t\t.*\n)*)/m.exec(text);
  if (!section) throw new Error(`ibv_devinfo -v -d ${RXE_DEVICE} printed no general_odp_caps:\n${text.slice(0, 2000)}`);
  // ibv_devinfo indents the flags with two or more tabs (five on rdma-core 44).
  return /^\t{2,}ODP_SUPPORT$/m.test(section[1]!);
}

/**
 * The copy-on-fork attribute of the kernel's RDMA netlink SYS_GET reply, read directly (iproute2 prints
 * "copy-on-fork off" when the attribute is missing, so it cannot tell): on/off, or 'absent' on a kernel
 * that predates it (5.12).
 */
export function copyOnForkAttribute(): boolean | 'absent' {
  const attr = readCopyOnForkAttribute();
  if (attr === null) throw new Error('RDMA netlink SYS_GET could not be asked in the lab');
  return attr;
}
