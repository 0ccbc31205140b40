// Running `rdmactl doctor` for real, optionally with a lowered RLIMIT_MEMLOCK and as uid 65534, and
// independent readings the doctor's numbers are checked against.
import { readFileSync } from 'node:fs';
import { BIN, UNPRIVILEGED, runSync } from '../helpers/spawn.js';

export interface DoctorFinding {
  id: string;
  status: 'ok' | 'warn' | 'fail' | 'skip';
  summary: string;
  evidence: Record<string, unknown>;
  fix: string[];
  reason: string | null;
}

export interface DoctorJson {
  target: { pid: number; comm: string; uid: number; self: boolean };
  request: Record<string, unknown>;
  findings: DoctorFinding[];
  prediction: { outcome: 'registered' | 'refused'; cause: string | null; summary: string } | null;
  try: { outcome: 'registered' | 'refused'; exitCode: number | null; errno: string | null; message: string; pinnedBytes: number | null; lockedBytes: number | null } | null;
  counts: Record<string, number>;
  failed: boolean;
}

/** prlimit prefix lowering RLIMIT_MEMLOCK (soft and hard) to `bytes`; null = leave it. */
export function memlockPrefix(bytes: number | null): string[] {
  return bytes === null ? [] : ['prlimit', `--memlock=${bytes}:${bytes}`];
}

export function doctorAs(prefix: string[], args: string[]): { status: number | null; json: DoctorJson | null; stdout: string; stderr: string } {
  const result = runSync([...prefix, process.execPath, BIN, 'doctor', ...args]);
  let json: DoctorJson | null = null;
  if (args.includes('--json') && result.stdout.trim() !== '') json = JSON.parse(result.stdout) as DoctorJson;
  return { ...result, json };
}

/** As uid 65534 without capabilities (RLIMIT_MEMLOCK enforced), with the limit lowered to `bytes`. */
export function doctorUnprivileged(bytes: number | null, args: string[]): ReturnType<typeof doctorAs> {
  return doctorAs([...memlockPrefix(bytes), ...UNPRIVILEGED], args);
}

export function findingOf(json: DoctorJson, id: string): DoctorFinding {
  const f = json.findings.find((x) => x.id === id);
  if (!f) throw new Error(`no finding ${id} in ${json.findings.map((x) => x.id).join(', ')}`);
  return f;
}

/** The soft RLIMIT_MEMLOCK in bytes of pid from its limits file (null = unlimited). */
export function memlockSoft(pid: number | 'self'): number | null {
  const line = readFileSync(`/proc/${pid}/limits`, 'utf8').split('\n').find((l) => l.startsWith('Max locked memory'))!;
  const soft = line.slice(25).trim().split(/\s+/)[0]!;
  return soft === 'unlimited' ? null : Number(soft);
}
