// `rdmactl trace --json --duration S` on a lab kernel with a real RDMA device: while it runs,
// ibv_rc_pingpong registers one MR of the -s size per process and releases it, and a client is
// refused by RLIMIT_MEMLOCK. The NDJSON events (time, pid, comm, source, op, bytes, latencyUs,
// errno) must show each of them once per source with the sizes given to the programs, and the
// kernel's errno for the refusal: umem's own, and on the verbs event the one umem saw inside that
// call (the library's NULL return carries none). Tracing must leave no probe or tracefs instance
// behind. Then `doctor PID` of a program whose refusal a trace saw names it once, as evidence of
// memlock.limit.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { inLab, notInLabReason, RXE_DEVICE, sh } from './helpers.js';
import { ipv4GidIndex, serverThenClient } from './trace-helpers.js';
import { BIN, PROBE, UNPRIVILEGED, labRuntime, rdmactl } from './verbs-helpers.js';
import { start, until, type Running } from '../trace/helpers/running.js';

const TRACEFS = '/sys/kernel/tracing';
const SIZE = 65536;
const REFUSED_SIZE = 1048576;
const DURATION_S = 40;

interface JsonEvent {
  time: string;
  pid: number;
  comm: string;
  source: string;
  op: string;
  bytes: number | null;
  latencyUs: number | null;
  errno: string | null;
  detail: Record<string, string | number | null>;
}

/** Why this cannot run here, as rdmactl itself tells: the command is missing or has no verbs/umem source. */
function why(): string | null {
  if (!inLab) return notInLabReason;
  const runtime = labRuntime();
  try {
    const help = rdmactl(['trace', '--help'], runtime.env);
    if (help.status !== 0) return `rdmactl has no trace command (trace --help exited ${help.status}: ${help.stderr.trim().split('\n')[0]})`;
    return null;
  } finally {
    runtime.cleanup();
  }
}
const skipReason = why();
if (skipReason) console.warn(`SKIP rdmactl trace with verbs: ${skipReason}`);


function leftovers(pid: number): string[] {
  const found: string[] = [];
  for (const file of ['dynamic_events', 'uprobe_events', 'kprobe_events']) {
    if (existsSync(`${TRACEFS}/${file}`) && readFileSync(`${TRACEFS}/${file}`, 'utf8').includes(`rdmactl_${pid}/`)) found.push(file);
  }
  if (existsSync(`${TRACEFS}/instances`)) found.push(...readdirSync(`${TRACEFS}/instances`).filter((name) => name.includes(String(pid))));
  return found;
}

/** Stops a running child (signal first, SIGKILL if it is still there) and waits for it. */
async function stop(run: Running, signal: NodeJS.Signals): Promise<void> {
  if (run.child.exitCode === null && run.child.signalCode === null) run.child.kill(signal);
  const timer = setTimeout(() => run.child.kill('SIGKILL'), 30_000);
  await run.exited;
  clearTimeout(timer);
}

describe.skipIf(skipReason !== null)('rdmactl trace with the verbs and umem sources', () => {
  it('shows each MR of ibv_rc_pingpong once per source, and a refusal with its errno', async () => {
    const runtime = labRuntime();
    const trace = start([process.execPath, BIN, 'trace', '--json', '--duration', String(DURATION_S)], runtime.env);
    try {
      // Ready when rdmactl says so: it prints its start line after the instance records. Its probes
      // being defined is not enough: under TCG, enabling them can take seconds, and a registration
      // that began before recording shows its umem event but not its verbs entry.
      await until(`trace to start (${trace.stderr()})`, () => /rdmactl: tracing /.test(trace.stderr()) || trace.child.exitCode !== null, 60_000);
      expect(trace.child.exitCode, trace.stderr()).toBeNull();
      expect(leftovers(trace.child.pid!).length, 'probes defined in its own group while it runs').toBeGreaterThan(0);
      const gid = ipv4GidIndex();
      const pp = `ibv_rc_pingpong -d ${RXE_DEVICE} -g ${gid} -p 18621 -n 5 -s ${SIZE}`;
      sh(serverThenClient(pp, 18621), { timeoutMs: 180_000 });
      sh(`prlimit --memlock=65536:65536 ${UNPRIVILEGED.join(' ')} ibv_rc_pingpong -d ${RXE_DEVICE} -g ${gid} -p 18622 -n 1 -s ${REFUSED_SIZE} 127.0.0.1`, { timeoutMs: 60_000 });
      expect((await trace.exited).code, trace.stderr()).toBe(0);
    } finally {
      await stop(trace, 'SIGINT');
      runtime.cleanup();
    }
    const stdout = trace.stdout();
    expect(leftovers(trace.child.pid!)).toEqual([]);

    const events = stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((o): o is JsonEvent & Record<string, unknown> => typeof o.op === 'string' && typeof o.source === 'string');
    for (const event of events) expect(Object.keys(event)).toEqual(expect.arrayContaining(['time', 'pid', 'comm', 'source', 'op', 'bytes', 'latencyUs', 'errno']));
    const pingpong = events.filter((e) => e.comm === 'ibv_rc_pingpong');
    const registering = [...new Set(pingpong.filter((e) => e.op === 'register').map((e) => e.pid))];
    expect(registering, stdout).toHaveLength(2);
    for (const pid of registering) {
      for (const source of ['verbs', 'umem']) {
        const mine = pingpong.filter((e) => e.pid === pid && e.source === source);
        expect(mine.filter((e) => e.op === 'register').map((e) => e.bytes), `${source} ${JSON.stringify(mine)}`).toEqual([SIZE]);
        expect(mine.filter((e) => e.op === 'deregister').map((e) => e.bytes)).toEqual([SIZE]);
        expect(mine.find((e) => e.op === 'register')!.latencyUs).toBeGreaterThan(0);
      }
    }
    const failed = pingpong.filter((e) => e.op === 'failed');
    expect(failed.map((e) => [e.source, e.bytes, e.errno, e.detail['errnoFrom'] ?? null]).sort(), stdout).toEqual([
      ['umem', REFUSED_SIZE, 'ENOMEM', null],
      ['verbs', REFUSED_SIZE, 'ENOMEM', 'umem'],
    ]);
  }, 300_000);

  it('doctor PID names the refused verbs registration a trace saw, as evidence of memlock.limit', async () => {
    const runtime = labRuntime();
    const trace = start([process.execPath, BIN, 'trace', '--json'], runtime.env);
    let program: Running | null = null;
    try {
      await until(`trace to start (${trace.stderr()})`, () => /rdmactl: tracing /.test(trace.stderr()) || trace.child.exitCode !== null, 60_000);
      expect(trace.child.exitCode, trace.stderr()).toBeNull();
      // An unprivileged program with a 64 KiB RLIMIT_MEMLOCK asks for 1 MiB and stays alive.
      program = start(['/bin/sh', '-c', 'ulimit -l 64 && exec "$@"', 'sh', ...UNPRIVILEGED, process.execPath, PROBE, 'refused-stays', String(REFUSED_SIZE)], runtime.env);
      await until(`the program's report (${program.stderr()})`, () => program!.stdout().includes('\n') || program!.child.exitCode !== null, 60_000);
      const report = JSON.parse(program.stdout()) as { pid: number; registered: boolean; errno: string | null };
      // Its own reading: ibv_reg_mr failed with ENOMEM.
      expect(report).toEqual({ pid: program.child.pid, registered: false, errno: 'ENOMEM' });
      const failed = (source: string) => trace.stdout().split('\n').some((l) => l.includes(`"pid":${report.pid},`) && l.includes(`"source":"${source}"`) && l.includes('"op":"failed"'));
      await until(`both failures in the trace (${trace.stdout()})`, () => failed('verbs') && failed('umem'), 60_000);
      await stop(trace, 'SIGINT');
      expect((await trace.exited).code, trace.stderr()).toBe(0);

      const doctor = rdmactl(['doctor', String(report.pid), '--json'], runtime.env);
      const findings = (JSON.parse(doctor.stdout) as { findings: { id: string; status: string; summary?: string; evidence: Record<string, unknown> }[] }).findings;
      const byId = (id: string) => findings.find((f) => f.id === id)!;
      const traced = byId('trace.failures');
      expect(traced.status, JSON.stringify(traced)).toBe('warn');
      const failures = traced.evidence['failures'] as { source: string; alsoSeenBy: string | null; call: string; errno: string; sizeBytes: number | null; count: number }[];
      // One call, seen by both sources: counted once.
      expect(failures.map((f) => [f.source, f.alsoSeenBy, f.call, f.errno, f.sizeBytes, f.count])).toEqual([['verbs', 'umem', 'register', 'ENOMEM', REFUSED_SIZE, 1]]);
      expect(byId('memlock.limit').evidence['traceFailures']).toEqual(failures);
      const text = rdmactl(['doctor', String(report.pid)], runtime.env);
      expect(text.stdout).toMatch(/^warn\s+trace\.failures\s+1 failed call in traces of the last hour: verbs \(and umem\) register of 1 MiB ENOMEM \(see memlock\.limit\)$/m);
    } finally {
      await stop(trace, 'SIGINT');
      if (program) await stop(program, 'SIGTERM');
      runtime.cleanup();
    }
    expect(leftovers(trace.child.pid!)).toEqual([]);
  }, 300_000);
});
