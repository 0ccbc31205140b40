// What /metrics answers for the Accept and Accept-Encoding a scraper sends: gzip and OpenMetrics over
// raw HTTP (checked with zlib and an OpenMetrics rule check of the test's own), and a real Prometheus
// scrape through a relay that records what Prometheus asked for and what it got.
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { builtOrThrow } from '../helpers/spawn.js';
import {
  httpGet, missingBinary, one, openMetricsViolations, parseExposition, promtool, recordingProxy, startExporter, startPrometheus, until, type Started,
} from './helpers.js';

const noPrometheus = missingBinary('prometheus', 'prometheus');
if (noPrometheus) console.warn(`SKIPPED real-Prometheus negotiation test: ${noPrometheus}`);

const OPENMETRICS = 'application/openmetrics-text; version=1.0.0';

/** GET with the body as bytes (a gzip body is not UTF-8). */
function getBytes(url: string, headers: Record<string, string>, method = 'GET'): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.setTimeout(20_000, () => req.destroy(new Error(`timed out: ${url}`)));
    req.on('error', reject);
    req.end();
  });
}

describe('exporter content negotiation', () => {
  const children: Started[] = [];
  const dirs: string[] = [];
  let exporter: Awaited<ReturnType<typeof startExporter>>;

  beforeAll(async () => {
    builtOrThrow();
    exporter = await startExporter(['--listen', '127.0.0.1:0']);
    children.push(exporter);
  });
  afterAll(async () => {
    for (const child of children) await child.stop();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  it('Accept-Encoding: gzip gets the same exposition gzipped, with Content-Encoding and Vary; without it, plain', async () => {
    // At once: both join one collection, so the two bodies must be the same exposition.
    const [zipped, plain] = await Promise.all([
      getBytes(exporter.url, { 'Accept-Encoding': 'gzip, deflate' }),
      getBytes(exporter.url, {}),
    ]);
    expect(zipped.status).toBe(200);
    expect(zipped.headers['content-encoding']).toBe('gzip');
    expect(zipped.headers['vary']).toMatch(/\bAccept-Encoding\b/);
    expect(Number(zipped.headers['content-length'])).toBe(zipped.body.length);
    // The gzip magic: compressed, not merely labelled.
    expect([...zipped.body.subarray(0, 2)]).toEqual([0x1f, 0x8b]);
    const unzipped = gunzipSync(zipped.body).toString('utf8');
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(plain.headers['vary']).toMatch(/\bAccept-Encoding\b/);
    expect(unzipped).toBe(plain.body.toString('utf8'));
    expect(one(parseExposition(unzipped), 'rdmactl_build_info', { nodejs_version: process.versions.node })).toBe(1);
    const check = promtool(['check', 'metrics'], unzipped);
    expect(check.status, check.output).toBe(0);

    // q=0 refuses gzip; HEAD announces the length of what GET would send.
    const refused = await getBytes(exporter.url, { 'Accept-Encoding': 'gzip;q=0, identity' });
    expect(refused.headers['content-encoding']).toBeUndefined();
    expect(refused.body.toString('utf8')).toMatch(/^# HELP /);
    const head = await getBytes(exporter.url, { 'Accept-Encoding': 'gzip' }, 'HEAD');
    expect(head.headers['content-encoding']).toBe('gzip');
    expect(head.body.length).toBe(0);
    expect(Number(head.headers['content-length'])).toBeGreaterThan(0);
  });

  it('Accept: OpenMetrics 1.0.0 gets OpenMetrics that keeps the format\'s rules; the text format after it is unchanged', async () => {
    const om = await httpGet(exporter.url, { headers: { Accept: OPENMETRICS } });
    expect(om.status).toBe(200);
    expect(om.headers['content-type']).toBe('application/openmetrics-text; version=1.0.0; charset=utf-8');
    expect(om.body.endsWith('\n# EOF\n')).toBe(true);
    expect(openMetricsViolations(om.body)).toEqual([]);
    // Counters as OpenMetrics names them: the family without _total, the sample with it.
    expect(om.body).toMatch(/^# TYPE process_cpu_seconds counter\nprocess_cpu_seconds_total \S+$/m);
    expect(om.body).toMatch(/^rdmactl_build_info\{[^}]*\} 1$/m);

    // The same exposition gzipped when both are asked for.
    const both = await getBytes(exporter.url, { Accept: OPENMETRICS, 'Accept-Encoding': 'gzip' });
    expect(both.headers['content-type']).toMatch(/^application\/openmetrics-text; version=1\.0\.0/);
    expect(both.headers['content-encoding']).toBe('gzip');
    expect(openMetricsViolations(gunzipSync(both.body).toString('utf8'))).toEqual([]);

    // Rendering OpenMetrics must not leave the text format with OpenMetrics' counter names.
    await new Promise((resolve) => setTimeout(resolve, 300)); // past the share window: a new collection
    const text = await httpGet(exporter.url, { headers: { Accept: 'text/plain;version=0.0.4;q=0.5,*/*;q=0.1' } });
    expect(text.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(text.body).toMatch(/^# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total \S+$/m);
    expect(text.body).not.toContain('# EOF');
    const check = promtool(['check', 'metrics'], text.body);
    expect(check.status, check.output).toBe(0);
    // Both formats carry the same families (OpenMetrics names counters without _total).
    const families = (body: string) => [...body.matchAll(/^# TYPE (\S+)/gm)].map((m) => m[1]!.replace(/_total$/, '')).sort();
    expect(families(om.body)).toEqual(families(text.body));
  });

  it('the OpenMetrics rule check finds what it should (so that it can fail)', () => {
    expect(openMetricsViolations('# TYPE a gauge\na 1\n# EOF\n')).toEqual([]);
    expect(openMetricsViolations('# TYPE a gauge\na 1\n')).not.toEqual([]);
    expect(openMetricsViolations('# TYPE a gauge\n\na 1\n# EOF\n')).not.toEqual([]);
    expect(openMetricsViolations('# HELP a says "hi"\n# TYPE a gauge\na 1\n# EOF\n')).not.toEqual([]);
    expect(openMetricsViolations('# TYPE a_total counter\na_total 1\n# EOF\n')).not.toEqual([]);
    expect(openMetricsViolations('# TYPE a counter\na 1\n# EOF\n')).not.toEqual([]);
    expect(openMetricsViolations('# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\na{x="1"} 2\n# EOF\n')).not.toEqual([]);
    expect(openMetricsViolations('# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="2"} 1\nh_count 1\nh_sum 1\n# EOF\n')).not.toEqual([]);
  });

  it('a real Prometheus asks for OpenMetrics and gzip, gets both, and parses the scrape as OpenMetrics', { skip: noPrometheus !== null, timeout: 90_000 }, async () => {
    const proxy = await recordingProxy(exporter.port);
    const dir = mkdtempSync(join(tmpdir(), 'rdmactl-prometheus-negotiation-'));
    dirs.push(dir);
    try {
      const prometheus = await startPrometheus(dir, `127.0.0.1:${proxy.port}`);
      children.push(prometheus);
      const { api } = prometheus;
      const query = async (promql: string) => {
        const parsed = JSON.parse((await httpGet(`${api}/api/v1/query?query=${encodeURIComponent(promql)}`)).body) as { data: { result: Array<{ value: [number, string] }> } };
        return parsed.data.result;
      };
      const up = await until('a successful scrape', async () => {
        const result = await query('up{job="rdmactl"}');
        return result.length === 1 && result[0]!.value[1] === '1' ? result : undefined;
      }, 45_000);
      expect(up).toHaveLength(1);

      const asked = proxy.requests.find((r) => r.startsWith('GET /metrics '))!;
      expect(asked).toMatch(/\r\nAccept-Encoding: gzip\r\n/i);
      expect(asked).toMatch(/\r\nAccept: application\/openmetrics-text;\s*version=1\.0\.0/i);
      const answered = proxy.responses.find((r) => r.startsWith('HTTP/1.1 200'))!;
      expect(answered).toMatch(/\r\nContent-Encoding: gzip\r\n/i);
      expect(answered).toMatch(/\r\nContent-Type: application\/openmetrics-text; version=1\.0\.0/i);

      // Prometheus keeps a counter's metadata under its OpenMetrics family name (process_cpu_seconds)
      // only when it parsed the scrape as OpenMetrics; the text parser would file it as ..._total.
      const metadata = await until('the target metadata', async () => {
        const body = JSON.parse((await httpGet(`${api}/api/v1/targets/metadata?metric=process_cpu_seconds`)).body) as { data: Array<{ type: string }> };
        return body.data.length > 0 ? body.data : undefined;
      }, 30_000);
      expect(metadata[0]!.type).toBe('counter');
      const cpu = await query('process_cpu_seconds_total{job="rdmactl"}');
      expect(Number(cpu[0]!.value[1])).toBeGreaterThan(0);
      expect((await query('rdmactl_build_info{job="rdmactl"}'))[0]!.value[1]).toBe('1');
      const stopped = await prometheus.stop();
      expect(stopped.signal ?? stopped.code).not.toBe('SIGKILL');
    } finally {
      await proxy.close();
    }
  });
});
