// rdmactl trace against the real kernel: a program registers io_uring buffers of known sizes (one
// refused over RLIMIT_MEMLOCK, run as uid 65534 without CAP_IPC_LOCK) and mlocks memory; the trace
// must report each event with the right pid, bytes, result and order, latencies inside the call's
// own wall time, and the program's outstanding bytes. Afterwards nothing of rdmactl is left in
// tracefs, also after `trace` was SIGKILLed at several moments. Needs root and tracefs: skipped,
// with the reason rdmactl itself gives, without them. If tracefs is not mounted, the test mounts it
// (and says so) and unmounts it at the end.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, builtOrThrow, ROOT, UNPRIVILEGED, unprivilegedUnavailable } from '../helpers/spawn.js';
import { statusKb } from '../helpers/proc.js';
import { tracefsLeftovers, tracefsRoot, tracingUnavailable, unmountTracefsIfMounted } from '../helpers/tracefs.js';
import { start, until, type Running } from './helpers/running.js';
import { TRACE_EVENT_FIELDS } from '../../src/commands/trace.js';
import { Ajv } from 'ajv';

const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true });
const schema = (name: string): object => JSON.parse(readFileSync(join(ROOT, 'schema', `${name}.json`), 'utf8')) as object;
const validators = new Map(['trace-event', 'trace-summary', 'trace-sources', 'trace-cleanup'].map((name) => [`rdmactl.${name}/1`, ajv.compile(schema(name))]));

interface SummaryRow { pid: number; source: string; registrations: number; deregistrations: number; registeredBytes: number; releasedBytes: number; outstanding: number; outstandingBytes: number; mlocks: number; munlocks: number; lockedBytes: number; unlockedBytes: number; failures: number; failuresByErrno: string[] }
interface SummaryDoc { processes: SummaryRow[]; latency: { source: string; op: string; sizeClass: string; count: number; minMicros: number; medianMicros: number; p99Micros: number; maxMicros: number }[]; lostEvents: number }

/** The summary's row of one process and source (failing the test when there is none). */
function summaryRow(summary: SummaryDoc, pid: number, source: string): SummaryRow {
  const row = summary.processes.find((p) => p.pid === pid && p.source === source);
  expect(row, `no ${source} row for ${pid} in ${JSON.stringify(summary.processes)}`).toBeDefined();
  return row!;
}

/** Each document is valid against the schema its own "schema" key names. */
function expectValid(docs: Record<string, unknown>[]): void {
  for (const doc of docs) {
    const validate = validators.get(doc['schema'] as string);
    expect(validate, String(doc['schema'])).toBeDefined();
    expect(validate!(doc), `${ajv.errorsText(validate!.errors)} in ${JSON.stringify(doc).slice(0, 300)}`).toBe(true);
  }
}

function whyNot(): string | null {
  return tracingUnavailable('test/trace', 'rdmactl trace needs root; run the tests as root');
}

const skipReason = whyNot();
if (skipReason) console.warn(`SKIPPING test/trace/trace.test.ts: ${skipReason}`);
const root = tracefsRoot();

function startTrace(args: string[]): Running {
  return start([process.execPath, BIN, 'trace', ...args]);
}

async function traceStarted(run: Running): Promise<void> {
  await until(`trace to start (stderr: ${run.stderr()})`, () => /rdmactl: tracing /.test(run.stderr()) || run.child.exitCode !== null);
  if (run.child.exitCode !== null) throw new Error(`trace exited ${run.child.exitCode}: ${run.stderr()}`);
}

function workload(mode: 'stay' | 'exit' | 'update', prefix: string[] = []): Running {
  return start([...prefix, process.execPath, join(ROOT, 'test/trace/helpers/workload.mjs'), mode]);
}

async function firstJson(run: Running): Promise<Record<string, unknown>> {
  await until(`a JSON line from the workload (stderr: ${run.stderr()})`, () => run.stdout().includes('\n'));
  return JSON.parse(run.stdout().split('\n')[0]!) as Record<string, unknown>;
}

function lines(text: string): Record<string, unknown>[] {
  return text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
}

const children: Running[] = [];
function track(run: Running): Running {
  children.push(run);
  return run;
}

describe.skipIf(skipReason !== null)('rdmactl trace on this kernel', () => {
  beforeAll(() => builtOrThrow());
  afterAll(async () => {
    for (const run of children) if (run.child.exitCode === null && run.child.signalCode === null) run.child.kill('SIGKILL');
    await Promise.all(children.map((run) => run.exited));
    spawnSync(process.execPath, [BIN, 'trace', '--cleanup']);
    unmountTracefsIfMounted();
  });

  it('reports each io_uring and mlock event with pid, bytes, result, order and latency, and the outstanding bytes', { timeout: 90_000 }, async (ctx) => {
    const unprivileged = unprivilegedUnavailable();
    if (unprivileged) return ctx.skip(unprivileged);
    const stay = track(workload('stay', UNPRIVILEGED));
    const exits = track(workload('exit'));
    const trace = track(startTrace(['--json', '--pid', `${stay.child.pid},${exits.child.pid}`]));
    await traceStarted(trace);
    stay.child.stdin.write('go\n');
    exits.child.stdin.write('go\n');
    const stayed = await firstJson(stay) as { pid: number; rings: Record<string, number>; calls: { what: string; errno: string | null; wallUs: number }[]; vmPinKb: number };
    const exited = await firstJson(exits) as { pid: number; rings: Record<string, number>; calls: { what: string; errno: string | null; wallUs: number }[] };
    await exits.exited;
    expect(stayed.calls.map((c) => c.errno)).toEqual([null, null, null, 'ENOMEM', null, null, null]);
    // The trace reads every 50 ms; give it a few reads, then stop it as a user would.
    await until(`the events in the trace (stdout: ${trace.stdout()}; stderr: ${trace.stderr()})`, () => trace.stdout().split('\n').length > 9);
    await new Promise((r) => setTimeout(r, 300));
    trace.child.kill('SIGINT');
    expect((await trace.exited).code).toBe(0);
    expect(trace.stderr()).not.toMatch(/Error|at .*\.js/);
    const docs = lines(trace.stdout());
    expectValid(docs);
    const events = docs.filter((d) => d['schema'] === 'rdmactl.trace-event/1');
    const summary = docs.find((d) => d['schema'] === 'rdmactl.trace-summary/1') as unknown as SummaryDoc;
    expect(docs.at(-1)).toBe(summary);
    expect(summary.lostEvents).toBe(0);

    const KiB = 1024;
    const MiB = 1024 * KiB;
    const mine = events.filter((e) => e['pid'] === stayed.pid).map((e) => ({ source: e['source'], op: e['op'], bytes: e['bytes'], errno: e['errno'], fd: (e['detail'] as Record<string, unknown>)['fd'] ?? null }));
    expect(mine).toEqual([
      { source: 'io_uring', op: 'register', bytes: 3 * MiB, errno: null, fd: stayed.rings['a'] },
      { source: 'io_uring', op: 'register', bytes: 512 * KiB, errno: null, fd: stayed.rings['b'] },
      { source: 'io_uring', op: 'deregister', bytes: 3 * MiB, errno: null, fd: stayed.rings['a'] },
      { source: 'io_uring', op: 'failed', bytes: 64 * MiB, errno: 'ENOMEM', fd: stayed.rings['c'] },
      { source: 'mlock', op: 'mlock', bytes: 256 * KiB, errno: null, fd: null },
      { source: 'mlock', op: 'munlock', bytes: 256 * KiB, errno: null, fd: null },
      { source: 'mlock', op: 'mlock', bytes: MiB, errno: null, fd: null },
    ]);
    // Each latency lies inside the wall time the program measured around the same call.
    const latencies = events.filter((e) => e['pid'] === stayed.pid).map((e) => e['latencyUs'] as number);
    latencies.forEach((latency, i) => {
      expect(latency, stayed.calls[i]!.what).toBeGreaterThan(0);
      expect(latency, stayed.calls[i]!.what).toBeLessThanOrEqual(stayed.calls[i]!.wallUs);
    });
    // Times are in order, and the last VmPin reading is the program's VmPin now (ring B).
    const times = events.filter((e) => e['pid'] === stayed.pid).map((e) => e['monotonic'] as number);
    expect([...times].sort((x, y) => x - y)).toEqual(times);
    expect(events.filter((e) => e['pid'] === stayed.pid).at(-1)!['vmPinBytes']).toBe(statusKb(stayed.pid, 'VmPin') * 1024);
    expect(statusKb(stayed.pid, 'VmPin')).toBe(512);

    // The process that exited without unregistering: its ring's buffers are released at exit.
    const theirs = events.filter((e) => e['pid'] === exited.pid).map((e) => ({ op: e['op'], bytes: e['bytes'], reason: (e['detail'] as Record<string, unknown>)['reason'] ?? null }));
    expect(theirs).toEqual([{ op: 'register', bytes: 256 * KiB, reason: null }, { op: 'deregister', bytes: 256 * KiB, reason: 'exit' }]);

    // One row per process and source. Outstanding: ring B's 512 KiB, and the 1 MiB still locked, as the program left them.
    const uring = summaryRow(summary, stayed.pid, 'io_uring');
    expect(uring).toMatchObject({ registrations: 2, deregistrations: 1, registeredBytes: 3 * MiB + 512 * KiB, releasedBytes: 3 * MiB, outstanding: 1, outstandingBytes: 512 * KiB, failures: 1, failuresByErrno: ['ENOMEM:1'] });
    const locks = summaryRow(summary, stayed.pid, 'mlock');
    expect(locks).toMatchObject({ mlocks: 2, munlocks: 1, failures: 0, failuresByErrno: [] });
    expect(locks.lockedBytes - locks.unlockedBytes).toBe(MiB);
    expect(summaryRow(summary, exited.pid, 'io_uring').outstandingBytes).toBe(0);
    // Latency by source and size class, over the successful timed calls of both processes.
    const count = (source: string, op: string, sizeClass: string): number => summary.latency.find((r) => r.source === source && r.op === op && r.sizeClass === sizeClass)?.count ?? 0;
    expect([count('io_uring', 'register', '<=64M'), count('io_uring', 'register', '<=1M'), count('mlock', 'mlock', '<=1M')]).toEqual([1, 2, 2]);
    for (const r of summary.latency) expect(r.minMicros <= r.medianMicros && r.medianMicros <= r.p99Micros && r.p99Micros <= r.maxMicros, JSON.stringify(r)).toBe(true);
    expect(tracefsLeftovers(trace.child.pid)).toEqual([]);
    stay.child.kill('SIGKILL');
  });

  it('a process ended by a worker thread, after its main thread exited alone, releases its ring at that exit', { timeout: 60_000 }, async (ctx) => {
    const dir = mkdtempSync(join(tmpdir(), 'rdmactl-trace-'));
    try {
      const built = spawnSync('cc', ['-O2', '-pthread', '-o', join(dir, 'workerexit'), join(ROOT, 'test/trace/helpers/workerexit.c')], { encoding: 'utf8' });
      if (built.error || built.status !== 0) return ctx.skip(`cannot compile test/trace/helpers/workerexit.c: ${built.error?.message ?? built.stderr}; install gcc`);
      const program = track(start([join(dir, 'workerexit')]));
      const trace = track(startTrace(['--json', '--pid', String(program.child.pid)]));
      await traceStarted(trace);
      program.child.stdin.write('go\n');
      const done = await firstJson(program) as { pid: number; fd: number; workerTid: number; result: number };
      expect(done.result).toBe(0);
      expect(await program.exited).toEqual({ code: 0, signal: null });
      await until(`the release in the trace (stdout: ${trace.stdout()}; stderr: ${trace.stderr()})`, () => trace.stdout().split('\n').length > 2);
      trace.child.kill('SIGINT');
      expect((await trace.exited).code).toBe(0);
      const docs = lines(trace.stdout());
      expectValid(docs);
      const events = docs.filter((d) => d['schema'] === 'rdmactl.trace-event/1').map((e) => ({ pid: e['pid'], tid: e['tid'], op: e['op'], bytes: e['bytes'], fd: (e['detail'] as Record<string, unknown>)['fd'], reason: (e['detail'] as Record<string, unknown>)['reason'] ?? null }));
      expect(events).toEqual([
        { pid: done.pid, tid: done.pid, op: 'register', bytes: 128 * 1024, fd: done.fd, reason: null },
        { pid: done.pid, tid: done.workerTid, op: 'deregister', bytes: 128 * 1024, fd: done.fd, reason: 'exit' },
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('names a process that exited before its lines were read, once the kernel\'s comm cache has lost it', { timeout: 120_000 }, async (ctx) => {
    // trace_pipe's comm column is looked up when a line is read, in a cache of saved_cmdlines_size
    // names. rdmactl is stopped while more processes than that lock a page and exit, so the first
    // ones are out of the cache and out of /proc when it reads; their exit events carry their names.
    const cacheSize = Number(readFileSync(join(root!, 'saved_cmdlines_size'), 'utf8').trim());
    const count = cacheSize + 500;
    if (!(count <= 20_000)) return ctx.skip(`the kernel's comm cache holds ${cacheSize} names: too many processes to push it out in a test`);
    const dir = mkdtempSync(join(tmpdir(), 'rdmactl-trace-'));
    try {
      const built = spawnSync('cc', ['-O2', '-o', join(dir, 'manyexits'), join(ROOT, 'test/trace/helpers/manyexits.c')], { encoding: 'utf8' });
      if (built.error || built.status !== 0) return ctx.skip(`cannot compile test/trace/helpers/manyexits.c: ${built.error?.message ?? built.stderr}; install gcc`);
      const trace = track(startTrace(['--json', '--source', 'mlock']));
      await traceStarted(trace);
      trace.child.kill('SIGSTOP');
      const made = spawnSync(join(dir, 'manyexits'), [String(count)], { encoding: 'utf8', maxBuffer: 1 << 24, timeout: 60_000 });
      trace.child.kill('SIGCONT');
      expect(made.status, made.stderr).toBe(0);
      const names = new Map(made.stdout.trim().split('\n').map((l) => l.split(' ').map(Number) as [number, number]).map(([pid, i]) => [pid, `mlk-${i}`]));
      expect(names.size).toBe(count);
      const mine = (): Record<string, unknown>[] => lines(trace.stdout().slice(0, trace.stdout().lastIndexOf('\n') + 1))
        .filter((d) => d['op'] === 'mlock' && names.has(d['pid'] as number));
      // Every lock read, or none more for 2 s (the kernel may have dropped some: counted below).
      let seen = -1;
      let steadySince = Date.now();
      await until('the trace to read the locks', () => {
        const now = mine().length;
        if (now !== seen) [seen, steadySince] = [now, Date.now()];
        return now >= count || Date.now() - steadySince > 2000;
      }, 90_000);
      trace.child.kill('SIGINT');
      expect((await trace.exited).code, trace.stderr()).toBe(0);
      const docs = lines(trace.stdout());
      const summary = docs.find((d) => d['schema'] === 'rdmactl.trace-summary/1') as unknown as SummaryDoc;
      const events = docs.filter((d) => d['schema'] === 'rdmactl.trace-event/1' && d['op'] === 'mlock' && names.has(d['pid'] as number));
      expect(events.length + summary.lostEvents, 'every lock is reported, or counted as dropped').toBeGreaterThanOrEqual(count);
      const misnamed = events.filter((e) => e['comm'] !== names.get(e['pid'] as number)).map((e) => `${String(e['pid'])}: ${String(e['comm'])}`);
      expect(misnamed.slice(0, 10), `${misnamed.length} of ${events.length} events without their process's name`).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('REGISTER_BUFFERS2 and REGISTER_BUFFERS_UPDATE: an update releases what the slot held and registers the new buffer', { timeout: 60_000 }, async () => {
    const KiB = 1024;
    const updates = track(workload('update'));
    const trace = track(startTrace(['--json', '--pid', String(updates.child.pid)]));
    await traceStarted(trace);
    updates.child.stdin.write('go\n');
    const done = await firstJson(updates) as { pid: number; rings: Record<string, number>; calls: { what: string; errno: string | null }[]; vmPinKb: number };
    expect(done.calls.map((c) => c.errno)).toEqual([null, null, null]);
    await until('the events in the trace', () => trace.stdout().split('\n').length > 4);
    await new Promise((r) => setTimeout(r, 300));
    trace.child.kill('SIGINT');
    expect((await trace.exited).code).toBe(0);
    const docs = lines(trace.stdout());
    expectValid(docs);
    const events = docs.filter((d) => d['schema'] === 'rdmactl.trace-event/1').map((e) => ({ op: e['op'], bytes: e['bytes'], opcode: (e['detail'] as Record<string, unknown>)['opcode'], reason: (e['detail'] as Record<string, unknown>)['reason'] ?? null }));
    expect(events).toEqual([
      { op: 'register', bytes: 0, opcode: 15, reason: null },
      { op: 'register', bytes: 128 * KiB, opcode: 16, reason: 'update' },
      { op: 'deregister', bytes: 128 * KiB, opcode: 16, reason: 'update' },
      { op: 'register', bytes: 64 * KiB, opcode: 16, reason: 'update' },
    ]);
    const summary = docs.at(-1) as unknown as SummaryDoc;
    // What the kernel pins now for that ring: the 64 KiB buffer in slot 1.
    expect(summaryRow(summary, done.pid, 'io_uring').outstandingBytes).toBe(statusKb(done.pid, 'VmPin') * KiB);
    updates.child.kill('SIGKILL');
  });

  it('text output: a header, one escaped line per event, then the summary; --duration ends it with exit 0', { timeout: 60_000 }, async () => {
    const exits = track(workload('exit'));
    const trace = track(startTrace(['--pid', String(exits.child.pid), '--duration', '3s']));
    await traceStarted(trace);
    exits.child.stdin.write('go\n');
    await exits.exited;
    expect((await trace.exited).code).toBe(0);
    const out = trace.stdout().split('\n');
    expect(out[0]).toMatch(/^TIME +PID +COMM +SOURCE +OP +BYTES +LATENCY +RESULT +VMPIN +UNIT$/);
    expect(out[1]).toMatch(new RegExp(`^\\d\\d:\\d\\d:\\d\\d\\.\\d{6} +${exits.child.pid} +node +io_uring +register +256K +\\S+ +ok `));
    expect(out[2]).toMatch(/ deregister +256K +- +ok /);
    expect(trace.stdout()).toMatch(/^2 events in \d+\.\ds$/m);
    expect(trace.stdout()).toMatch(/^PID +COMM +SOURCE +REGS +DEREGS +REGISTERED +RELEASED +OUTSTANDING +OUTSTANDING-BYTES +MLOCKS +LOCKED +FAILED +ERRORS$/m);
    expect(tracefsLeftovers(trace.child.pid)).toEqual([]);
  });

  it('the event schema lists exactly the keys of the event fields', () => {
    const keys = Object.keys((schema('trace-event') as { properties: Record<string, unknown> }).properties).filter((k) => k !== 'host' && k !== 'schema');
    expect(keys.sort()).toEqual(TRACE_EVENT_FIELDS.map((f) => f.key).sort());
  });

  it('SIGTERM and SIGHUP end it like Ctrl-C (summary, exit 0), and so does a reader that goes (EPIPE); nothing is left behind', { timeout: 60_000 }, async () => {
    for (const signal of ['SIGTERM', 'SIGHUP'] as const) {
      const trace = track(startTrace(['--summary']));
      await traceStarted(trace);
      trace.child.kill(signal);
      expect((await trace.exited).code, signal).toBe(0);
      expect(trace.stdout(), signal).toMatch(/^\d+ events? in \d+\.\ds/);
      expect(tracefsLeftovers(trace.child.pid), signal).toEqual([]);
    }
    const exits = track(workload('exit'));
    const trace = track(startTrace(['--json', '--pid', String(exits.child.pid)]));
    await traceStarted(trace);
    trace.child.stdout.destroy(); // the reader goes before the first event
    exits.child.stdin.write('go\n');
    expect((await trace.exited).code).toBe(0);
    // Nothing on stderr but the start line, naming the sources this host allows (as --list-sources says).
    const listed = JSON.parse(spawnSync(process.execPath, [BIN, 'trace', '--list-sources', '--json'], { encoding: 'utf8' }).stdout) as { sources: { source: string; available: boolean }[] };
    expect(trace.stderr()).toBe(`rdmactl: tracing ${listed.sources.filter((s) => s.available).map((s) => s.source).join(', ')} until Ctrl-C\n`);
    expect(tracefsLeftovers(trace.child.pid)).toEqual([]);
  });

  it('without root: exit 4 and one line saying what is missing', async (ctx) => {
    const unprivileged = unprivilegedUnavailable();
    if (unprivileged) return ctx.skip(unprivileged);
    const result = spawnSync(UNPRIVILEGED[0]!, [...UNPRIVILEGED.slice(1), process.execPath, BIN, 'trace', '--duration', '1s'], { encoding: 'utf8' });
    expect(result.status).toBe(4);
    expect(result.stdout).toBe('');
    expect(result.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(/^rdmactl: tracing needs root/);
    // --list-sources works without root and says, for each source, that permission is what is missing.
    const list = spawnSync(UNPRIVILEGED[0]!, [...UNPRIVILEGED.slice(1), process.execPath, BIN, 'trace', '--list-sources', '--json'], { encoding: 'utf8' });
    expect(list.status, list.stderr).toBe(0);
    const doc = JSON.parse(list.stdout) as { sources: { source: string; available: boolean; why: string }[] };
    for (const s of doc.sources) {
      expect(s.available, s.source).toBe(false);
      expect(s.why, s.source).toMatch(/root/);
    }
  });

  it('--list-sources says for each source whether it can run, and why', () => {
    const result = spawnSync(process.execPath, [BIN, 'trace', '--list-sources', '--json'], { encoding: 'utf8' });
    expect(result.status).toBe(0);
    const doc = JSON.parse(result.stdout) as { sources: { source: string; available: boolean; why: string }[] };
    expectValid([doc]);
    const events = readFileSync(join(root, 'available_events'), 'utf8');
    const uring = doc.sources.find((s) => s.source === 'io_uring')!;
    expect(uring.available).toBe(/^syscalls:sys_enter_io_uring_register$/m.test(events));
    expect(doc.sources.find((s) => s.source === 'mlock')!.available).toBe(/^syscalls:sys_enter_mlock$/m.test(events));
    for (const s of doc.sources) expect(s.why.length).toBeGreaterThan(5);
  });

  it('after SIGKILL at several moments, --cleanup or the next run removes what trace left, and the kill stopped its tracing', { timeout: 120_000 }, async () => {
    const moments: Array<number | 'tracing' | 'loaded'> = [0, 150, 400, 'tracing', 'loaded'];
    for (const [i, moment] of moments.entries()) {
      const trace = track(startTrace(['--json']));
      const pid = trace.child.pid!;
      let load: Running | null = null;
      if (typeof moment === 'number') {
        await new Promise((r) => setTimeout(r, moment));
      } else {
        await traceStarted(trace);
        if (moment === 'loaded') {
          load = track(workload('stay'));
          load.child.stdin.write('go\n');
          await firstJson(load);
        }
      }
      trace.child.kill('SIGKILL');
      await trace.exited;
      const left = readdirSync(join(root, 'instances')).filter((n) => n.startsWith(`rdmactl-${pid}-`));
      // disable_on_free: the kernel stopped tracing when the killed run's free_buffer fd closed.
      for (const name of left) expect(readFileSync(join(root, 'instances', name, 'tracing_on'), 'utf8').trim(), `${moment}`).toBe('0');
      if (i % 2 === 0) {
        const cleanup = spawnSync(process.execPath, [BIN, 'trace', '--cleanup'], { encoding: 'utf8' });
        expect(cleanup.status, cleanup.stderr).toBe(0);
      } else {
        const next = spawnSync(process.execPath, [BIN, 'trace', '--duration', '200ms', '--summary'], { encoding: 'utf8' });
        expect(next.status, next.stderr).toBe(0);
        if (left.length > 0) expect(next.stderr).toMatch(/removed 1 instance\(s\)/);
      }
      expect(tracefsLeftovers(pid), `after SIGKILL at ${moment}`).toEqual([]);
      load?.child.kill('SIGKILL');
    }
  });

  it('--cleanup removes instances and probe groups of dead runs only', { timeout: 30_000 }, () => {
    const dead = spawnSync('true').pid!;
    const deadInstance = join(root, 'instances', `rdmactl-${dead}-1`);
    const foreign = join(root, 'instances', `not-rdmactl-${process.pid}`);
    mkdirSync(deadInstance);
    mkdirSync(foreign);
    try {
      // A uprobe in a dead run's group (the verbs source makes such probes).
      writeFileSync(join(root, 'dynamic_events'), `p:rdmactl_${dead}/left_behind /bin/true:0x0\n`, { flag: 'a' });
      expect(tracefsLeftovers(dead)).toHaveLength(2);
      const result = spawnSync(process.execPath, [BIN, 'trace', '--cleanup', '--json'], { encoding: 'utf8' });
      expect(result.status, result.stderr).toBe(0);
      const doc = JSON.parse(result.stdout) as { instances: string[]; probes: string[] };
      expectValid([doc]);
      expect(doc.instances).toContain(`rdmactl-${dead}-1`);
      expect(doc.probes).toContain(`rdmactl_${dead}/left_behind`);
      expect(tracefsLeftovers(dead)).toEqual([]);
      expect(existsSync(foreign)).toBe(true);
    } finally {
      rmdirSync(foreign);
      if (existsSync(deadInstance)) rmdirSync(deadInstance);
    }
  });

  it('under load (10,000 registrations/s for 3 s) reports every registration, or says how many events the kernel dropped', { timeout: 120_000 }, async (ctx) => {
    const dir = mkdtempSync(join(tmpdir(), 'rdmactl-trace-'));
    try {
      const built = spawnSync('cc', ['-O2', '-o', join(dir, 'regloop'), join(ROOT, 'test/trace/helpers/regloop.c')], { encoding: 'utf8' });
      if (built.error || built.status !== 0) return ctx.skip(`cannot compile test/trace/helpers/regloop.c: ${built.error?.message ?? built.stderr}; install gcc`);
      const loop = track(start([join(dir, 'regloop'), '10000', '3']));
      const trace = track(startTrace(['--json', '--summary', '--pid', String(loop.child.pid)]));
      await traceStarted(trace);
      loop.child.stdin.write('go\n');
      await loop.exited;
      const [done] = loop.stdout().trim().split(' ').map(Number);
      await new Promise((r) => setTimeout(r, 500));
      trace.child.kill('SIGINT');
      expect((await trace.exited).code).toBe(0);
      const summary = lines(trace.stdout()).find((d) => d['schema'] === 'rdmactl.trace-summary/1') as unknown as SummaryDoc;
      const row = summary.processes.find((p) => p.pid === loop.child.pid && p.source === 'io_uring') ?? { registrations: 0, deregistrations: 0 };
      console.log(`test/trace load: ${done} registrations made, ${row.registrations} reported, ${summary.lostEvents} events dropped by the kernel`);
      expect(row.registrations).toBeLessThanOrEqual(done!);
      if (row.registrations < done!) {
        expect(summary.lostEvents).toBeGreaterThanOrEqual(done! - row.registrations);
        expect(trace.stderr()).toMatch(/the kernel dropped \d+ trace events/);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
