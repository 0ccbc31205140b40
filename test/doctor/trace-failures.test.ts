// doctor PID with what a trace saw: a program (uid 65534, no CAP_IPC_LOCK) has io_uring refuse a
// 64 MiB registration over RLIMIT_MEMLOCK while `rdmactl trace` runs; afterwards `doctor PID` names
// that failure (source, call, errno, size, count) in trace.failures and as evidence of memlock.limit,
// the check its ENOMEM points at. The program's own reading of the call (its errno) is the
// independent one. A logged line of the same pid but another start time (a reused pid) is not
// evidence, and a log planted as a symbolic link is neither written through nor read. Needs root and
// tracefs (mounted for the test when it is not), like the trace tests.
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, builtOrThrow, ROOT, UNPRIVILEGED, unprivilegedUnavailable } from '../helpers/spawn.js';
import { tracingUnavailable, unmountTracefsIfMounted } from '../helpers/tracefs.js';
import { start, until, type Running } from '../trace/helpers/running.js';
import { FAILURE_LOG_NAME } from '../../src/trace/failureLog.js';

const skipReason = tracingUnavailable('test/doctor/trace-failures', 'rdmactl trace needs root; run the tests as root') ?? unprivilegedUnavailable();
if (skipReason) console.warn(`SKIPPING test/doctor/trace-failures.test.ts: ${skipReason}`);

interface Finding { id: string; status: string; evidence: Record<string, unknown> }
interface FailureEvidence { source: string; call: string; errno: string; sizeBytes: number | null; count: number; lastAt: string }

function doctor(pid: number, env: NodeJS.ProcessEnv): Finding[] {
  const run = spawnSync(process.execPath, [BIN, 'doctor', String(pid), '--json'], { encoding: 'utf8', env });
  expect(run.stderr).not.toMatch(/Error|at .*\.js/);
  return (JSON.parse(run.stdout) as { findings: Finding[] }).findings;
}

function byId(findings: Finding[], id: string): Finding {
  const found = findings.find((f) => f.id === id);
  expect(found, `no ${id} in ${findings.map((f) => f.id).join(', ')}`).toBeDefined();
  return found!;
}

const MiB = 1024 * 1024;
const children: Running[] = [];
const dirs: string[] = [];

/** A private runtime directory for one run (XDG_RUNTIME_DIR/rdmactl), so /run/rdmactl is not touched. */
function runtimeEnv(): NodeJS.ProcessEnv {
  const xdg = mkdtempSync(join(tmpdir(), 'rdmactl-doctor-trace-'));
  chmodSync(xdg, 0o700);
  dirs.push(xdg);
  return { ...process.env, XDG_RUNTIME_DIR: xdg };
}

/** Runs the workload under a trace; resolves when the trace has ended (SIGINT) with the workload still alive. */
async function traceRefusedRegistration(env: NodeJS.ProcessEnv): Promise<{ workload: Running; calls: { what: string; errno: string | null }[]; trace: Running }> {
  const workload = start([...UNPRIVILEGED, process.execPath, join(ROOT, 'test/trace/helpers/workload.mjs'), 'stay'], env);
  children.push(workload);
  const trace = start([process.execPath, BIN, 'trace', '--json', '--source', 'io_uring', '--pid', String(workload.child.pid)], env);
  children.push(trace);
  await until(`trace to start (${trace.stderr()})`, () => /rdmactl: tracing /.test(trace.stderr()) || trace.child.exitCode !== null);
  workload.child.stdin.write('go\n');
  await until(`the workload's report (${workload.stderr()})`, () => workload.stdout().includes('\n'));
  const { calls } = JSON.parse(workload.stdout().split('\n')[0]!) as { calls: { what: string; errno: string | null }[] };
  await until(`the failed event in the trace (${trace.stdout()})`, () => trace.stdout().includes('"op":"failed"'));
  trace.child.kill('SIGINT');
  expect((await trace.exited).code).toBe(0);
  return { workload, calls, trace };
}

describe.skipIf(skipReason !== null)('doctor PID: registrations a trace saw fail', () => {
  beforeAll(() => builtOrThrow());
  afterAll(async () => {
    for (const run of children) if (run.child.exitCode === null && run.child.signalCode === null) run.child.kill('SIGKILL');
    await Promise.all(children.map((run) => run.exited));
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
    unmountTracefsIfMounted();
  });

  it('the refused 64 MiB io_uring registration is in trace.failures and in memlock.limit\'s evidence', { timeout: 90_000 }, async () => {
    const env = runtimeEnv();
    const { workload, calls } = await traceRefusedRegistration(env);
    // The program's own reading: its 64 MiB registration failed with ENOMEM.
    expect(calls.find((c) => c.what === `register ${64 * MiB}`)?.errno).toBe('ENOMEM');
    const log = join(env['XDG_RUNTIME_DIR']!, 'rdmactl', FAILURE_LOG_NAME);
    expect((lstatSync(log).mode & 0o777).toString(8)).toBe('600');

    const findings = doctor(workload.child.pid!, env);
    const traced = byId(findings, 'trace.failures');
    expect(traced.status).toBe('warn');
    const failures = traced.evidence['failures'] as FailureEvidence[];
    expect(failures).toHaveLength(1);
    expect(failures[0]).toMatchObject({ source: 'io_uring', call: 'register', errno: 'ENOMEM', sizeBytes: 64 * MiB, count: 1 });
    expect(Math.abs(Date.parse(failures[0]!.lastAt) - Date.now())).toBeLessThan(60_000);
    expect(byId(findings, 'memlock.limit').evidence['traceFailures']).toEqual(failures);
    // The successful registrations and locks are not failures.
    expect(failures.some((f) => f.sizeBytes === 512 * 1024)).toBe(false);

    // Text: the failure and the check it points at, on one line.
    const text = spawnSync(process.execPath, [BIN, 'doctor', String(workload.child.pid)], { encoding: 'utf8', env });
    expect(text.stdout).toMatch(/^warn\s+trace\.failures\s+1 failed call in traces of the last hour: io_uring register of 64 MiB ENOMEM \(see memlock\.limit\)$/m);

    // Another process (rdmactl's own doctor run of pid 1) has none.
    expect(byId(doctor(1, env), 'trace.failures').status).toBe('ok');
  });

  it('a logged failure of the same pid with another start time (a reused pid) is not evidence', { timeout: 30_000 }, async () => {
    const env = runtimeEnv();
    const sleeper = start(['sleep', '60'], env);
    children.push(sleeper);
    const dir = join(env['XDG_RUNTIME_DIR']!, 'rdmactl');
    spawnSync('mkdir', ['-m', '700', dir]);
    const stat = readFileSync(`/proc/${sleeper.child.pid}/stat`, 'utf8');
    const startTime = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
    const line = (start: number) => `${JSON.stringify({ v: 1, pid: sleeper.child.pid, startTime: start, comm: 'sleep', source: 'verbs', attempt: 'register', bytes: MiB, errno: 'ENOMEM', count: 3, firstMs: Date.now(), lastMs: Date.now() })}\n`;
    writeFileSync(join(dir, FAILURE_LOG_NAME), line(startTime - 1), { mode: 0o600 });
    expect(byId(doctor(sleeper.child.pid!, env), 'trace.failures').status).toBe('ok');
    // The same line with the process's own start time is evidence (so the one above failed on the start time alone).
    writeFileSync(join(dir, FAILURE_LOG_NAME), line(startTime), { mode: 0o600 });
    const traced = byId(doctor(sleeper.child.pid!, env), 'trace.failures');
    expect(traced.status).toBe('warn');
    expect((traced.evidence['failures'] as FailureEvidence[])[0]).toMatchObject({ source: 'verbs', errno: 'ENOMEM', sizeBytes: MiB, count: 3 });
  });

  it('a log planted as a symbolic link is not written through: trace says so, the target is untouched', { timeout: 90_000 }, async () => {
    const env = runtimeEnv();
    const dir = join(env['XDG_RUNTIME_DIR']!, 'rdmactl');
    spawnSync('mkdir', ['-m', '700', dir]);
    const victim = join(env['XDG_RUNTIME_DIR']!, 'victim');
    writeFileSync(victim, 'untouched\n');
    symlinkSync(victim, join(dir, FAILURE_LOG_NAME));
    const { workload, trace } = await traceRefusedRegistration(env);
    expect(readFileSync(victim, 'utf8')).toBe('untouched\n');
    expect(trace.stderr()).toMatch(/^rdmactl: failures were not kept for doctor: cannot use .*trace-failures\.ndjson/m);
    expect(byId(doctor(workload.child.pid!, env), 'trace.failures').status).toBe('ok');
    expect(existsSync(victim)).toBe(true);
  });
});
