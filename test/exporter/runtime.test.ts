// The exporter's own process_* and nodejs_* series, each against what the kernel says of the
// exporter's pid (read here from /proc, not by prom-client), and a clean stop with their collectors
// running.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SHARE_WINDOW_MS } from '../../src/exporter/scrape.js';
import { builtOrThrow } from '../helpers/spawn.js';
import { httpGet, one, parseExposition, startExporter, type Started } from './helpers.js';

const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim());

/** /proc/PID/stat fields after the command name (which may hold spaces and parentheses): field 3 first. */
function statFields(pid: number): string[] {
  const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return text.slice(text.lastIndexOf(')') + 2).trim().split(' ');
}

function statusBytes(pid: number, field: string): number {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!match) throw new Error(`${field} missing from /proc/${pid}/status`);
  return Number(match[1]) * 1024;
}

describe('the exporter\'s own process_* and nodejs_* series', () => {
  const children: Started[] = [];
  let exporter: Awaited<ReturnType<typeof startExporter>>;
  let pid: number;

  beforeAll(async () => {
    builtOrThrow();
    expect(CLOCK_TICKS).toBeGreaterThan(0);
    exporter = await startExporter(['--listen', '127.0.0.1:0']);
    children.push(exporter);
    pid = exporter.child.pid!;
  });
  afterAll(async () => {
    for (const child of children) await child.stop();
  });

  /** A scrape of a collection of its own: one within SHARE_WINDOW_MS of the last is answered from it. */
  async function freshScrape(beforeRequest?: () => void) {
    await new Promise((resolve) => setTimeout(resolve, SHARE_WINDOW_MS + 50));
    beforeRequest?.();
    return parseExposition((await httpGet(exporter.url)).body);
  }

  it('process_cpu_seconds_total counts from the process start, as /proc/PID/stat utime + stime', async () => {
    const samples = await freshScrape();
    const fields = statFields(pid);
    // Fields 14 and 15 (utime, stime): indexes 11 and 12 from field 3.
    const kernelUser = Number(fields[11]) / CLOCK_TICKS;
    const kernelSystem = Number(fields[12]) / CLOCK_TICKS;
    const scraped = one(samples, 'process_cpu_seconds_total');
    // The kernel's reading is in clock ticks and taken after the scrape: not below it by more than a
    // tick each, and above it only by what the exporter did since (sending the answer).
    expect(scraped).toBeLessThanOrEqual(kernelUser + kernelSystem + 2 / CLOCK_TICKS);
    expect(kernelUser + kernelSystem - scraped).toBeLessThan(0.06);
    expect(one(samples, 'process_cpu_user_seconds_total')).toBeLessThanOrEqual(kernelUser + 1 / CLOCK_TICKS);
    expect(kernelUser - one(samples, 'process_cpu_user_seconds_total')).toBeLessThan(0.06);
    expect(one(samples, 'process_cpu_user_seconds_total') + one(samples, 'process_cpu_system_seconds_total')).toBeCloseTo(scraped, 5);
  });

  it('process_resident_memory_bytes is VmRSS, process_virtual_memory_bytes VmSize', async () => {
    const samples = await freshScrape();
    const rss = statusBytes(pid, 'VmRSS');
    // Read a moment apart from a process that allocates while it answers.
    expect(Math.abs(one(samples, 'process_resident_memory_bytes') - rss)).toBeLessThan(Math.max(4 * 1024 * 1024, rss * 0.1));
    // VmSize can move by tens of MiB during a collection (glibc reserves a 64 MiB arena for a
    // thread's first malloc), so the scrape is bracketed by a reading before it and one after; one
    // try in three must fall inside its bracket.
    const slack = 8 * 1024 * 1024;
    const tries: string[] = [];
    for (let attempt = 0; attempt < 3; attempt++) {
      let before = 0;
      const scraped = one(await freshScrape(() => { before = statusBytes(pid, 'VmSize'); }), 'process_virtual_memory_bytes');
      const after = statusBytes(pid, 'VmSize');
      if (scraped >= Math.min(before, after) - slack && scraped <= Math.max(before, after) + slack) break;
      tries.push(`VmSize ${before} before, ${after} after, scraped ${scraped}`);
    }
    expect(tries.length, tries.join('; ')).toBeLessThan(3);
  });

  it('process_start_time_seconds is the start time in /proc/PID/stat (boot time + starttime)', async () => {
    const samples = await freshScrape();
    const btime = Number(/^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'))![1]);
    // Field 22, index 19 from field 3.
    const started = btime + Number(statFields(pid)[19]) / CLOCK_TICKS;
    // prom-client rounds to the second; btime itself is whole seconds.
    expect(Math.abs(one(samples, 'process_start_time_seconds') - started)).toBeLessThanOrEqual(2);
  });

  it('process_open_fds and process_max_fds are /proc/PID/fd and the Max open files limit', async () => {
    const samples = await freshScrape();
    const open = readdirSync(`/proc/${pid}/fd`).length;
    // The connection of the scrape itself comes and goes.
    expect(Math.abs(one(samples, 'process_open_fds') - open)).toBeLessThanOrEqual(2);
    const limit = /^Max open files\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'))![1];
    expect(one(samples, 'process_max_fds')).toBe(Number(limit));
  });

  it('nodejs_version_info names the Node.js that runs it; heap series are there', async () => {
    const samples = await freshScrape();
    // The exporter runs on this test's Node binary.
    const [major, minor, patch] = process.versions.node.split('.');
    expect(one(samples, 'nodejs_version_info', { version: process.version, major: major!, minor: minor!, patch: patch! })).toBe(1);
    expect(one(samples, 'nodejs_heap_size_used_bytes')).toBeGreaterThan(0);
    expect(one(samples, 'nodejs_heap_size_used_bytes')).toBeLessThanOrEqual(one(samples, 'nodejs_heap_size_total_bytes'));
    expect(samples.some((s) => s.name === 'nodejs_eventloop_lag_p99_seconds')).toBe(true);
  });

  it('every family the exporter serves is listed in rdmactl(1), EXPORTER', async () => {
    const families = [...(await httpGet(exporter.url)).body.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!);
    expect(families.length).toBeGreaterThan(50);
    const man = readFileSync(new URL('../../man/rdmactl.1', import.meta.url), 'utf8');
    const section = man.slice(man.indexOf('.SH EXPORTER'), man.indexOf('.SH', man.indexOf('.SH EXPORTER') + 1));
    // Names are written out, or as prefix_{a,b}_suffix.
    const listed = new Set<string>();
    for (const raw of section.replace(/\\-/g, '-').split(/\s+/)) {
      const word = raw.replace(/^\(+/, '').replace(/[),.;:]+$/, '');
      const braces = /^(\w*)\{([\w,]+)\}(\w*)$/.exec(word);
      if (braces) for (const part of braces[2]!.split(',')) listed.add(`${braces[1]}${part}${braces[3]}`);
      else listed.add(word);
    }
    expect(families.filter((family) => !listed.has(family))).toEqual([]);
  });

  it.each(['SIGHUP', 'SIGTERM'] as const)('%s after scrapes in both formats: exits 0 promptly, the collectors\' handles notwithstanding', async (signal) => {
    const own = await startExporter(['--listen', '127.0.0.1:0']);
    children.push(own);
    await httpGet(own.url);
    await httpGet(own.url, { headers: { Accept: 'application/openmetrics-text; version=1.0.0', 'Accept-Encoding': 'gzip' } });
    const sent = Date.now();
    own.child.kill(signal);
    expect(await own.exited).toEqual({ code: 0, signal: null });
    expect(Date.now() - sent).toBeLessThan(3000);
  });
});
