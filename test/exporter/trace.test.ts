// exporter --trace against the real kernel: a program registers io_uring buffers and mlocks memory
// in a known order (one registration refused over RLIMIT_MEMLOCK when it runs as uid 65534); the
// exporter's rdmactl_registration* counters grow by what it did, Prometheus scrapes them, and after
// SIGTERM nothing of the exporter's trace is left in tracefs. Without root: exit 4, one line.
// Needs root and tracefs: skipped, with the reason rdmactl itself gives, without them. If tracefs is
// not mounted, the test mounts it (and says so) and unmounts it at the end.
//
// The counters are machine-wide: another process registering at the same time adds to them. So a
// `rdmactl trace --json` runs around the same window: the counters grow by at least what the
// program did and by at most what that trace saw; with no other registering process, exactly.
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, builtOrThrow, ROOT, UNPRIVILEGED, unprivilegedUnavailable } from '../helpers/spawn.js';
import { tracefsLeftovers, tracingUnavailable, unmountTracefsIfMounted } from '../helpers/tracefs.js';
import { find, httpGet, missingBinary, parseExposition, startChild, startExporter, startPrometheus, until, type Sample, type Started } from './helpers.js';

function whyNot(): string | null {
  return tracingUnavailable('test/exporter/trace', 'exporter --trace needs root; run the tests as root');
}

const skipReason = whyNot();
if (skipReason) console.warn(`SKIPPING test/exporter/trace.test.ts: ${skipReason}`);
const noPrometheus = missingBinary('prometheus', 'prometheus');

const KiB = 1024;
const MiB = 1024 * KiB;

interface Workload {
  child: ChildProcessWithoutNullStreams;
  stdout: () => string;
}

function workload(prefix: string[]): Workload {
  const child = spawn(prefix[0] ?? process.execPath, [...prefix.slice(1), ...(prefix.length > 0 ? [process.execPath] : []), join(ROOT, 'test/trace/helpers/workload.mjs'), 'stay'], { stdio: 'pipe' });
  let out = '';
  child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  return { child, stdout: () => out };
}

/** The counters of one (source, op): events by result, bytes. */
function counters(samples: readonly Sample[], source: string, op: string): { events: Record<string, number>; bytes: number } {
  const events: Record<string, number> = {};
  for (const s of find(samples, 'rdmactl_registrations_total', { source, op })) events[s.labels['result']!] = s.value;
  return { events, bytes: find(samples, 'rdmactl_registration_bytes_total', { source, op }).reduce((n, s) => n + s.value, 0) };
}

type Key = `${string}/${string}/${string}`;

/** Events and bytes by source/op/result, summed: the shape both readings are compared in. */
function tally(entries: Iterable<{ source: string; op: string; result: string; bytes: number | null }>): { events: Map<Key, number>; bytes: Map<string, number> } {
  const events = new Map<Key, number>();
  const bytes = new Map<string, number>();
  for (const e of entries) {
    const key: Key = `${e.source}/${e.op}/${e.result}`;
    events.set(key, (events.get(key) ?? 0) + 1);
    if (e.op !== 'failed' && e.bytes !== null) bytes.set(`${e.source}/${e.op}`, (bytes.get(`${e.source}/${e.op}`) ?? 0) + e.bytes);
  }
  return { events, bytes };
}

function fromExposition(samples: readonly Sample[]): { events: Map<Key, number>; bytes: Map<string, number> } {
  const events = new Map<Key, number>();
  const bytes = new Map<string, number>();
  for (const s of find(samples, 'rdmactl_registrations_total')) events.set(`${s.labels['source']}/${s.labels['op']}/${s.labels['result']}` as Key, s.value);
  for (const s of find(samples, 'rdmactl_registration_bytes_total')) bytes.set(`${s.labels['source']}/${s.labels['op']}`, s.value);
  return { events, bytes };
}

function minus<K>(after: Map<K, number>, before: Map<K, number>): Map<K, number> {
  const out = new Map<K, number>();
  for (const [k, v] of after) if (v - (before.get(k) ?? 0) !== 0) out.set(k, v - (before.get(k) ?? 0));
  return out;
}

const running: Started[] = [];
const programs: Workload[] = [];

describe.skipIf(skipReason !== null)('rdmactl exporter --trace on this kernel', () => {
  beforeAll(() => builtOrThrow());
  afterAll(async () => {
    for (const p of programs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    await Promise.all(running.map((r) => r.stop()));
    spawnSync(process.execPath, [BIN, 'trace', '--cleanup']);
    unmountTracefsIfMounted();
  });

  it('counts what a program registered, locked and failed, Prometheus scrapes it, and SIGTERM leaves nothing in tracefs', { timeout: 120_000 }, async () => {
    const unprivileged = unprivilegedUnavailable();
    const exporter = await startExporter(['--listen', '127.0.0.1:0', '--trace']);
    running.push(exporter);
    const exporterPid = exporter.child.pid!;
    expect(tracefsLeftovers(exporterPid).filter((l) => l.startsWith('rdmactl-'))).toHaveLength(1);
    const scrape = async (): Promise<Sample[]> => parseExposition((await httpGet(exporter.url)).body);
    // Every family is there from the start (lost events at 0), before any event.
    const first = await scrape();
    expect(find(first, 'rdmactl_trace_lost_events_total')).toEqual([{ name: 'rdmactl_trace_lost_events_total', labels: {}, value: 0 }]);

    // The independent reading: rdmactl trace of the whole machine, started before and stopped after.
    const wide = startChild([process.execPath, BIN, 'trace', '--json']);
    running.push(wide);
    await until('trace to start', () => (/rdmactl: tracing /.test(wide.stderr()) ? true : undefined), 30_000, 20);
    // Once in a full-suite run this trace missed the program's first calls: give it a moment to settle.
    await new Promise((r) => setTimeout(r, 500));
    const before = fromExposition(await scrape());

    const program = workload(unprivileged ? [] : UNPRIVILEGED);
    programs.push(program);
    program.child.stdin.write('go\n');
    await until('the program\'s report', () => (program.stdout().includes('\n') ? true : undefined), 30_000, 20);
    const report = JSON.parse(program.stdout().split('\n')[0]!) as { pid: number; calls: { errno: string | null }[] };
    const refused = report.calls[3]!.errno === 'ENOMEM';
    if (unprivileged) console.warn(`test/exporter/trace: the program ran as root (${unprivileged}): no refused registration to count`);
    else expect(refused).toBe(true);

    // What the program did, as the trace command's test checks it event by event.
    const expected = tally([
      { source: 'io_uring', op: 'register', result: 'ok', bytes: 3 * MiB },
      { source: 'io_uring', op: 'register', result: 'ok', bytes: 512 * KiB },
      { source: 'io_uring', op: 'deregister', result: 'ok', bytes: 3 * MiB },
      refused ? { source: 'io_uring', op: 'failed', result: 'ENOMEM', bytes: 64 * MiB } : { source: 'io_uring', op: 'register', result: 'ok', bytes: 64 * MiB },
      { source: 'mlock', op: 'mlock', result: 'ok', bytes: 256 * KiB },
      { source: 'mlock', op: 'munlock', result: 'ok', bytes: 256 * KiB },
      { source: 'mlock', op: 'mlock', result: 'ok', bytes: MiB },
    ]);
    const atLeast = (grown: ReturnType<typeof fromExposition>) =>
      [...expected.events].every(([k, n]) => (grown.events.get(k) ?? 0) >= n) && [...expected.bytes].every(([k, n]) => (grown.bytes.get(k) ?? 0) >= n);
    let grown = { events: new Map<Key, number>(), bytes: new Map<string, number>() };
    let afterSamples: Sample[] = [];
    await until(`the counters to grow by what the program did (last growth: ${JSON.stringify([...grown.events])})`, async () => {
      afterSamples = await scrape();
      const after = fromExposition(afterSamples);
      grown = { events: minus(after.events, before.events), bytes: minus(after.bytes, before.bytes) };
      return atLeast(grown) ? true : undefined;
    }, 30_000, 100);
    // A last look a little later: the counters moved no further for the program's events.
    await new Promise((r) => setTimeout(r, 300));
    const last = fromExposition(afterSamples = await scrape());
    grown = { events: minus(last.events, before.events), bytes: minus(last.bytes, before.bytes) };
    wide.child.kill('SIGINT');
    expect((await wide.exited).code).toBe(0);
    const seen = wide.stdout().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { schema: string; pid: number; source: string; op: string; errno: string | null; bytes: number | null })
      .filter((d) => d.schema === 'rdmactl.trace-event/1');
    const wideTally = tally(seen.map((e) => ({ source: e.source, op: e.op, result: e.errno ?? 'ok', bytes: e.bytes })));
    const ours = tally(seen.filter((e) => e.pid === report.pid).map((e) => ({ source: e.source, op: e.op, result: e.errno ?? 'ok', bytes: e.bytes })));
    // The trace command saw the program's events as expected, so the comparison below is against the kernel's events.
    expect(ours, `the whole-machine trace's events of pid ${report.pid}: ${JSON.stringify(seen.filter((e) => e.pid === report.pid))}; its stderr: ${wide.stderr()}`).toEqual(expected);
    const others = seen.filter((e) => e.pid !== report.pid && e.pid !== exporterPid);
    if (others.length === 0) {
      expect(grown).toEqual(expected);
    } else {
      console.warn(`test/exporter/trace: ${others.length} events of other processes in the window; checking the counters between bounds`);
      for (const [k, n] of grown.events) expect(n, k).toBeLessThanOrEqual(wideTally.events.get(k) ?? 0);
      for (const [k, n] of grown.bytes) expect(n, k).toBeLessThanOrEqual(wideTally.bytes.get(k) ?? 0);
      expect(atLeast(grown)).toBe(true);
    }
    // Latency of each call: the program's registrations are in the histogram (count ≥ its calls).
    const latencyCount = find(afterSamples, 'rdmactl_registration_duration_seconds_count', { source: 'io_uring', op: 'register' }).reduce((n, s) => n + s.value, 0);
    expect(latencyCount).toBeGreaterThanOrEqual(3); // three register calls (a refused one is observed under what it attempted)
    expect(counters(afterSamples, 'mlock', 'mlock').events['ok']).toBeGreaterThanOrEqual(2);

    if (!noPrometheus) {
      const dir = mkdtempSync(join(tmpdir(), 'rdmactl-trace-prom-'));
      const prometheus = await startPrometheus(dir, `127.0.0.1:${exporter.port}`);
      running.push(prometheus);
      try {
        const query = encodeURIComponent('sum by (source, op) (rdmactl_registrations_total{result="ok"})');
        const result = await until('Prometheus to have the counters', async () => {
          const body = JSON.parse((await httpGet(`${prometheus.api}/api/v1/query?query=${query}`)).body) as { data: { result: { metric: Record<string, string>; value: [number, string] }[] } };
          return body.data.result.length > 0 ? body.data.result : undefined;
        }, 30_000, 500);
        const served = fromExposition(await scrape());
        for (const row of result) {
          const key = `${row.metric['source']}/${row.metric['op']}`;
          const sum = [...served.events].filter(([k]) => k.startsWith(`${key}/ok`)).reduce((n, [, v]) => n + v, 0);
          // Prometheus read what the exporter serves (it can only have grown since).
          expect(Number(row.value[1]), key).toBeLessThanOrEqual(sum);
          expect(Number(row.value[1]), key).toBeGreaterThanOrEqual(expected.events.get(`${key}/ok` as Key) ?? 0);
        }
        expect(result.map((r) => `${r.metric['source']}/${r.metric['op']}`)).toEqual(expect.arrayContaining(['io_uring/register', 'io_uring/deregister', 'mlock/mlock', 'mlock/munlock']));
      } finally {
        await prometheus.stop();
        rmSync(dir, { recursive: true, force: true });
      }
    } else console.warn(`test/exporter/trace: no Prometheus scrape: ${noPrometheus}`);

    program.child.kill('SIGKILL');
    const end = await exporter.stop();
    expect(end.code).toBe(0);
    expect(exporter.stderr()).not.toMatch(/Error|at .*\.js/);
    expect(tracefsLeftovers(exporterPid)).toEqual([]);
  });

  it('SIGHUP and SIGINT end it too, with the instance removed; --textfile --trace writes the families', { timeout: 60_000 }, async () => {
    for (const signal of ['SIGHUP', 'SIGINT'] as const) {
      const exporter = await startExporter(['--listen', '127.0.0.1:0', '--trace']);
      running.push(exporter);
      expect(tracefsLeftovers(exporter.child.pid!)).not.toEqual([]);
      exporter.child.kill(signal);
      expect((await exporter.exited).code, signal).toBe(0);
      expect(tracefsLeftovers(exporter.child.pid!), signal).toEqual([]);
    }
    const dir = mkdtempSync(join(tmpdir(), 'rdmactl-trace-textfile-'));
    try {
      const writer = startChild([process.execPath, BIN, 'exporter', '--textfile', dir, '--interval', '1s', '--trace']);
      running.push(writer);
      const text = await until('the textfile', () => {
        try {
          const body = readFileSync(join(dir, 'rdmactl.prom'), 'utf8');
          return body.includes('rdmactl_trace_lost_events_total') ? body : undefined;
        } catch {
          return undefined;
        }
      }, 30_000, 100);
      expect(text).toMatch(/^# TYPE rdmactl_registrations_total counter$/m);
      expect(text).toMatch(/^# TYPE rdmactl_registration_duration_seconds histogram$/m);
      expect(tracefsLeftovers(writer.child.pid!)).not.toEqual([]);
      expect((await writer.stop()).code).toBe(0);
      expect(tracefsLeftovers(writer.child.pid!)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a listen error (the port in use) ends it with exit 1 and its trace removed', async () => {
    const busy = createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = busy.address() as { port: number };
      const result = spawnSync(process.execPath, [BIN, 'exporter', '--listen', `127.0.0.1:${port}`, '--trace'], { encoding: 'utf8', timeout: 30_000 });
      expect(result.status).toBe(1);
      expect(result.stderr).toMatch(/^rdmactl: cannot listen on 127\.0\.0\.1:\d+: the address is in use/);
      expect(tracefsLeftovers(result.pid)).toEqual([]);
    } finally {
      busy.close();
    }
  });

  it('without root: exit 4 and one line saying tracing is unavailable and why; nothing is served', async (ctx) => {
    const unprivileged = unprivilegedUnavailable();
    if (unprivileged) return ctx.skip(unprivileged);
    const result = spawnSync(UNPRIVILEGED[0]!, [...UNPRIVILEGED.slice(1), process.execPath, BIN, 'exporter', '--listen', '127.0.0.1:0', '--trace'], { encoding: 'utf8', timeout: 30_000 });
    expect(result.status).toBe(4);
    expect(result.stdout).toBe('');
    expect(result.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(/^rdmactl: --trace: tracing is unavailable: tracing needs root/);
    expect(result.stderr).not.toContain('serving');
  });
});
