// `rdmactl exporter` as a real HTTP server: scraped by a real Prometheus, hammered with bad and
// concurrent requests, stopped by signals. Every server the test starts is stopped on every path.
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Scraper } from '../../src/exporter/scrape.js';
import { startServer, DEFAULT_LIMITS } from '../../src/exporter/server.js';
import { BIN, UNPRIVILEGED, builtOrThrow, unprivilegedUnavailable } from '../helpers/spawn.js';
import { statusKb } from '../helpers/proc.js';
import { becomeSubreaper, killAndReap, rdmactlBin, tempRuntime } from '../held/helpers.js';
import {
  find, httpGet, missingBinary, one, parseExposition, promtool, rawRequest, startChild, startExporter, startPrometheus, until, type Started,
} from './helpers.js';

const noPrometheus = missingBinary('prometheus', 'prometheus');
const noUnprivileged = unprivilegedUnavailable();
if (noPrometheus) console.warn(`SKIPPED real-Prometheus test: ${noPrometheus}`);
if (noUnprivileged) console.warn(`SKIPPED unprivileged exporter tests: ${noUnprivileged}`);

describe('rdmactl exporter over HTTP', () => {
  const runtime = tempRuntime();
  const holders: number[] = [];
  const children: Started[] = [];
  const dirs: string[] = [];
  let exporter: Awaited<ReturnType<typeof startExporter>>;

  beforeAll(async () => {
    builtOrThrow();
    becomeSubreaper();
    exporter = await startExporter(['--listen', '127.0.0.1:0'], { env: runtime.env });
    children.push(exporter);
  });
  afterAll(async () => {
    for (const child of children) await child.stop();
    await killAndReap(holders);
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
    runtime.cleanup();
  });

  function detach(size: string): { pid: number; id: string } {
    const result = rdmactlBin(['reg', size, '--backend', 'uring', '--detach', '--json'], runtime.env);
    expect(result.status, result.stderr).toBe(0);
    const record = JSON.parse(result.stdout) as { pid: number; id: string };
    holders.push(record.pid);
    return record;
  }

  it('serves GET/HEAD /metrics in the text format promtool accepts, and / with a link', async () => {
    const metrics = await httpGet(exporter.url);
    expect(metrics.status).toBe(200);
    expect(metrics.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    const check = promtool(['check', 'metrics'], metrics.body);
    expect(check.status, check.output).toBe(0);
    expect(one(parseExposition(metrics.body), 'rdmactl_build_info', { nodejs_version: process.versions.node })).toBe(1);
    const head = await httpGet(exporter.url, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.body).toBe('');
    const index = await httpGet(exporter.url.replace(/\/metrics$/, '/'));
    expect(index.status).toBe(200);
    expect(index.body).toContain('<a href="/metrics">');
  });

  it('bad requests get errors and the exporter keeps serving', async () => {
    const base = exporter.url.replace(/\/metrics$/, '');
    const post = await httpGet(exporter.url, { method: 'POST' });
    expect(post.status).toBe(405);
    expect(post.headers['allow']).toBe('GET, HEAD');
    expect((await httpGet(exporter.url, { method: 'DELETE' })).status).toBe(405);
    expect((await httpGet(`${base}/metrics/../admin`)).status).toBe(404);
    expect((await httpGet(`${base}/debug`)).status).toBe(404);
    expect((await httpGet(`${base}/${'a'.repeat(4096)}`)).status).toBe(414);
    expect((await httpGet(exporter.url, { body: 'x'.repeat(1000), headers: { 'Content-Length': '1000' } })).status).toBe(413);
    const huge = await rawRequest(exporter.port, `GET /metrics HTTP/1.1\r\nHost: x\r\nX-Filler: ${'a'.repeat(64 * 1024)}\r\n\r\n`);
    expect(huge.response).toMatch(/^HTTP\/1\.1 431 /);
    const garbage = await rawRequest(exporter.port, 'NOT HTTP AT ALL\r\n\r\n');
    expect(garbage.response).toMatch(/^HTTP\/1\.1 400 /);
    expect((await httpGet(exporter.url)).status).toBe(200);
  });

  it('200 concurrent connections: each gets the whole exposition or is closed, and serving goes on', async () => {
    const results = await Promise.allSettled(Array.from({ length: 200 }, () => httpGet(exporter.url)));
    let served = 0;
    for (const result of results) {
      if (result.status === 'rejected') {
        expect(String(result.reason)).toMatch(/ECONNRESET|socket hang up|EPIPE/);
        continue;
      }
      expect(result.value.status).toBe(200);
      expect(result.value.body).toMatch(/rdmactl_build_info\{[^}]*\} 1\n$/);
      served++;
    }
    expect(served).toBeGreaterThan(0);
    expect((await httpGet(exporter.url)).status).toBe(200);
  });

  it('a real Prometheus scraping every second sees rdmactl_process_pinned_bytes equal VmPin; after dereg the series goes', { skip: noPrometheus !== null, timeout: 90_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rdmactl-prometheus-test-'));
    dirs.push(dir);
    const prometheus = await startPrometheus(dir, `127.0.0.1:${exporter.port}`);
    children.push(prometheus);
    const { api } = prometheus;

    const query = async (promql: string): Promise<Array<{ metric: Record<string, string>; value: [number, string] }>> => {
      const response = await httpGet(`${api}/api/v1/query?query=${encodeURIComponent(promql)}`);
      const parsed = JSON.parse(response.body) as { status: string; data: { result: Array<{ metric: Record<string, string>; value: [number, string] }> } };
      expect(parsed.status).toBe('success');
      return parsed.data.result;
    };

    const held = detach('4M');
    const vmPinBytes = statusKb(held.pid, 'VmPin') * 1024;
    expect(vmPinBytes).toBe(4 * 1024 * 1024);
    const selector = `rdmactl_process_pinned_bytes{pid="${held.pid}"}`;
    const seen = await until('Prometheus to have the held registration', async () => {
      const result = await query(selector);
      return result.length === 1 && Number(result[0]!.value[1]) === vmPinBytes ? result[0] : undefined;
    }, 45_000);
    expect(seen.metric).toMatchObject({ job: 'rdmactl', user: 'root', pid: String(held.pid) });
    expect((await query('up{job="rdmactl"}'))[0]!.value[1]).toBe('1');

    const dereg = rdmactlBin(['dereg', held.id], runtime.env);
    expect(dereg.status, dereg.stderr).toBe(0);
    await until('the series to go away after dereg', async () => ((await query(selector)).length === 0 ? true : undefined), 45_000);
    const stopped = await prometheus.stop();
    expect(stopped.signal ?? stopped.code).not.toBe('SIGKILL');
  });

  it('SIGTERM: in-flight scrapes finish whole, then it exits 0', async () => {
    const own = await startExporter(['--listen', '127.0.0.1:0']);
    children.push(own);
    const scrapes = Array.from({ length: 30 }, () => httpGet(own.url).then((r) => r, (err: unknown) => err as Error));
    // Signal once the first answer is out: the others are in flight (accepted, being answered).
    await Promise.race(scrapes);
    own.child.kill('SIGTERM');
    const results = await Promise.all(scrapes);
    const exit = await own.exited;
    expect(exit).toEqual({ code: 0, signal: null });
    for (const result of results) {
      if (result instanceof Error) {
        // Connections the kernel had queued but the server never accepted before closing are refused.
        expect(result.message).toMatch(/ECONNRESET|ECONNREFUSED|socket hang up/);
        continue;
      }
      expect(result.status).toBe(200);
      expect(result.body).toMatch(/rdmactl_build_info\{[^}]*\} 1\n$/);
    }
    expect(results.filter((r) => !(r instanceof Error)).length).toBeGreaterThan(0);
  });

  it('a port in use is one line and exit 1', async () => {
    const second = startChild([process.execPath, BIN, 'exporter', '--listen', `127.0.0.1:${exporter.port}`]);
    children.push(second);
    expect(await second.exited).toEqual({ code: 1, signal: null });
    expect(second.stderr()).toMatch(new RegExp(`^rdmactl: cannot listen on 127\\.0\\.0\\.1:${exporter.port}: the address is in use`));
    expect(second.stderr()).not.toMatch(/at .*\.js/);
  });

  it('bad --listen and --max-processes, --max-cgroups values are usage errors (exit 2)', () => {
    for (const args of [['--listen', 'localhost'], ['--listen', '127.0.0.1:99999'], ['--max-processes', '0'], ['--max-cgroups', 'x'], ['--textfile', '/nonexistent-dir']]) {
      const result = rdmactlBin(['exporter', ...args], runtime.env);
      expect(result.status, `${args.join(' ')}: ${result.stderr}`).toBe(2);
      expect(result.stderr.split('\n')[0]).toMatch(/^rdmactl: (invalid|--textfile)/);
    }
  });

  it('unprivileged: a privileged port is permission denied (exit 4)', { skip: noUnprivileged !== null }, async () => {
    const denied = startChild([...UNPRIVILEGED, process.execPath, BIN, 'exporter', '--listen', '127.0.0.1:81']);
    children.push(denied);
    expect(await denied.exited).toEqual({ code: 4, signal: null });
    expect(denied.stderr()).toMatch(/^rdmactl: cannot listen on 127\.0\.0\.1:81: permission denied/);
  });

  it('unprivileged: root\'s holder is still exported (VmPin is world-readable) and its hidden details are counted', { skip: noUnprivileged !== null }, async () => {
    const held = detach('2M');
    const nobody = await startExporter(['--listen', '127.0.0.1:0'], { prefix: UNPRIVILEGED });
    children.push(nobody);
    const samples = parseExposition((await httpGet(nobody.url)).body);
    expect(one(samples, 'rdmactl_process_pinned_bytes', { pid: String(held.pid) })).toBe(statusKb(held.pid, 'VmPin') * 1024);
    // Its smaps and fds are not nobody's to read: the io_uring detail is missing and the process is counted.
    expect(one(samples, 'rdmactl_process_io_uring_bytes', { pid: String(held.pid) })).toBe(0);
    expect(one(samples, 'rdmactl_processes_unreadable')).toBeGreaterThanOrEqual(1);
    expect(find(samples, 'rdmactl_user_pinned_bytes', { user: 'root' })[0]!.value).toBeGreaterThanOrEqual(2 * 1024 * 1024);
    await nobody.stop();
  });
});

describe('exporter HTTP limits (short timeouts, real sockets)', () => {
  it('a client that sends its request too slowly is cut off; others are still served', async () => {
    const running = await startServer(new Scraper({ version: 'test', maxProcesses: 5 }), { host: '127.0.0.1', port: 0 }, {
      limits: { ...DEFAULT_LIMITS, headersTimeoutMs: 500, writeTimeoutMs: 1000 },
    });
    try {
      const started = Date.now();
      const slow = await rawRequest((running.address as AddressInfo).port, 'GET /metrics HTTP/1.1\r\nHost: x\r\n', { timeoutMs: 8000 });
      expect(slow.closedBy).toBe('server');
      expect(Date.now() - started).toBeLessThan(5000);
      expect(slow.response === '' || /^HTTP\/1\.1 408 /.test(slow.response)).toBe(true);
      expect((await httpGet(`http://127.0.0.1:${(running.address as AddressInfo).port}/metrics`)).status).toBe(200);
    } finally {
      await running.close();
    }
  });
});
