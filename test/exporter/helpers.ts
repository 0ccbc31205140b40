// Helpers for exporter tests: free ports, real servers started as children (and stopped on every
// path), raw HTTP, and an independent reading of the exposition format (not prom-client's).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createServer, connect } from 'node:net';
import { request } from 'node:http';
import { BIN } from '../helpers/spawn.js';

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Every sample line of a text exposition. */
export function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) throw new Error(`not an exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const pair of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1]!] = pair[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    const raw = match[3]!;
    samples.push({ name: match[1]!, labels, value: raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : Number(raw) });
  }
  return samples;
}

export function find(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): Sample[] {
  return samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
}

export function one(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): number {
  const found = find(samples, name, labels);
  if (found.length !== 1) throw new Error(`expected one ${name}${JSON.stringify(labels)}, found ${found.length}`);
  return found[0]!.value;
}

/** A TCP port nobody listens on right now (the kernel picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export interface HttpResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export function httpGet(url: string, options: { method?: string; headers?: Record<string, string>; body?: string; timeoutMs?: number } = {}): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: options.method ?? 'GET', headers: options.headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => { body += chunk; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.setTimeout(options.timeoutMs ?? 20_000, () => req.destroy(new Error(`timed out: ${url}`)));
    req.on('error', reject);
    req.end(options.body);
  });
}

/** Sends `raw` bytes on a new connection and collects everything until the server closes it. */
export function rawRequest(port: number, raw: string | Buffer, options: { timeoutMs?: number; endAfterWrite?: boolean } = {}): Promise<{ response: string; closedBy: 'server' | 'timeout' | 'error' }> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let response = '';
    const timer = setTimeout(() => { socket.destroy(); resolve({ response, closedBy: 'timeout' }); }, options.timeoutMs ?? 10_000);
    socket.on('data', (d) => { response += d.toString('latin1'); });
    socket.on('close', () => { clearTimeout(timer); resolve({ response, closedBy: 'server' }); });
    socket.on('error', () => { clearTimeout(timer); resolve({ response, closedBy: 'error' }); });
    socket.write(raw);
  });
}

export async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 30_000, stepMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown = undefined;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

export interface Started {
  child: ChildProcess;
  stderr: () => string;
  stdout: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM, then SIGKILL after a grace period; resolves when it has exited (and is reaped). */
  stop: () => Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts a child we own (so Node reaps it); output is collected. */
export function startChild(argv: string[], env: NodeJS.ProcessEnv = process.env): Started {
  const child = spawn(argv[0]!, argv.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', () => resolve({ code: null, signal: null }));
  });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      const result = await exited;
      clearTimeout(timer);
      return result;
    }
    return exited;
  };
  return { child, stderr: () => err, stdout: () => out, exited, stop };
}

export interface PrometheusServer extends Started {
  /** http://127.0.0.1:PORT, its HTTP API. */
  api: string;
}

/**
 * A real Prometheus (the Debian package's binary, none of its services) in `dir`, scraping `target`
 * (HOST:PORT) as job rdmactl every second, on a free port; resolves when it is ready. The caller
 * stops it (`stop()`) and removes `dir`.
 */
export async function startPrometheus(dir: string, target: string): Promise<PrometheusServer> {
  const port = await freePort();
  writeFileSync(join(dir, 'prometheus.yml'), [
    'global:',
    '  scrape_interval: 1s',
    '  scrape_timeout: 1s',
    'scrape_configs:',
    '  - job_name: rdmactl',
    '    static_configs:',
    `      - targets: ['${target}']`,
    '',
  ].join('\n'), { flag: 'wx' });
  const started = startChild(['prometheus', `--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn']);
  const api = `http://127.0.0.1:${port}`;
  try {
    await until('Prometheus to be ready', async () => ((await httpGet(`${api}/-/ready`)).status === 200 ? true : undefined), 60_000);
  } catch (err) {
    await started.stop();
    throw err;
  }
  return { ...started, api };
}

/** Starts `rdmactl exporter ARGS` and waits for the URL it serves. */
export async function startExporter(args: string[], options: { prefix?: string[]; env?: NodeJS.ProcessEnv } = {}): Promise<Started & { url: string; port: number }> {
  const started = startChild([...(options.prefix ?? []), process.execPath, BIN, 'exporter', ...args], options.env);
  try {
    const url = await until('the exporter to listen', () => /serving (http:\/\/\S+)/.exec(started.stderr())?.[1] ?? (started.child.exitCode !== null ? Promise.reject(new Error(`exporter exited: ${started.stderr()}`)) : undefined), 15_000, 20);
    return { ...started, url, port: Number(new URL(url).port) };
  } catch (err) {
    await started.stop();
    throw err;
  }
}

/** Why a binary cannot be used here, or null. */
export function missingBinary(name: string, pkg: string): string | null {
  const probe = spawnSync(name, ['--version'], { encoding: 'utf8' });
  return probe.error ? `${name} is not installed (apt-get install ${pkg})` : null;
}

export function promtool(args: string[], input?: string): { status: number | null; output: string } {
  const result = spawnSync('promtool', args, { encoding: 'utf8', input, timeout: 60_000 });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

const OPENMETRICS_TYPES = new Set(['counter', 'gauge', 'histogram', 'gaugehistogram', 'stateset', 'info', 'summary', 'unknown']);
const OPENMETRICS_SUFFIXES: Record<string, readonly string[]> = {
  counter: ['_total', '_created'],
  gauge: [''],
  unknown: [''],
  stateset: [''],
  info: ['_info'],
  histogram: ['_bucket', '_count', '_sum', '_created'],
  gaugehistogram: ['_bucket', '_gcount', '_gsum'],
  summary: ['', '_count', '_sum', '_created'],
};

/**
 * The rules of OpenMetrics 1.0.0 (the specification's ABNF and MetricFamily rules) an exposition
 * breaks, checked here without prom-client or Prometheus: `# EOF` last, no blank line, metadata
 * once per family and before its samples, families never interleaved, sample names as the type
 * allows, escapes in HELP and label values, numbers, histogram buckets. [] when it keeps them all.
 */
export function openMetricsViolations(body: string): string[] {
  const problems: string[] = [];
  const lines = body.endsWith('\n') ? body.slice(0, -1).split('\n') : body.split('\n');
  if (lines.at(-1) !== '# EOF') problems.push('the last line is not "# EOF"');
  const families = new Map<string, { type: string; help: boolean; samples: Map<string, Set<string>> }>();
  const closed = new Set<string>();
  let current: string | null = null;
  const enter = (family: string, where: string) => {
    if (current === family) return;
    if (current !== null) closed.add(current);
    if (closed.has(family)) problems.push(`${where}: family ${family} continues after another family`);
    current = family;
  };
  const histograms = new Map<string, Array<{ labels: string; le: number; value: number }>>();
  lines.slice(0, -1).forEach((line, index) => {
    const where = `line ${index + 1}`;
    if (line === '') return problems.push(`${where}: blank line`);
    if (line === '# EOF') return problems.push(`${where}: # EOF before the end`);
    const meta = /^# (HELP|TYPE|UNIT) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (line.startsWith('#')) {
      if (!meta) return problems.push(`${where}: not a HELP, TYPE or UNIT line: ${line}`);
      const [, kind, family, text] = meta as unknown as [string, string, string, string];
      enter(family, where);
      const entry = families.get(family) ?? { type: 'unknown', help: false, samples: new Map() };
      families.set(family, entry);
      if (entry.samples.size > 0) problems.push(`${where}: ${kind} of ${family} after its samples`);
      if (kind === 'TYPE') {
        if (!OPENMETRICS_TYPES.has(text)) problems.push(`${where}: unknown type ${text}`);
        if (text === 'counter' && family.endsWith('_total')) problems.push(`${where}: counter family ${family} ends in _total`);
        entry.type = text;
      }
      if (kind === 'HELP') {
        if (entry.help) problems.push(`${where}: second HELP for ${family}`);
        entry.help = true;
        // escaped-string: a backslash only before \, n or "; a double quote only escaped.
        if (/\\[^\\n"]|\\$|(^|[^\\])"/.test(text.replace(/\\\\/g, ''))) problems.push(`${where}: HELP of ${family} has an unescaped character: ${text}`);
      }
      return undefined;
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: (\S+))?$/.exec(line);
    if (!sample) return problems.push(`${where}: not a sample: ${line}`);
    const [, name, labelText = '', value] = sample as unknown as [string, string, string | undefined, string];
    // The family is the one whose metadata came last, if the sample name belongs to it.
    const family = current !== null && (OPENMETRICS_SUFFIXES[families.get(current)!.type] ?? []).some((suffix) => name === `${current}${suffix}`) ? current : name;
    if (family !== current) {
      enter(family, where);
      if (!families.has(family)) families.set(family, { type: 'unknown', help: false, samples: new Map() });
    }
    const entry = families.get(family)!;
    if (!(OPENMETRICS_SUFFIXES[entry.type] ?? []).some((suffix) => name === `${family}${suffix}`)) problems.push(`${where}: ${name} is not a sample name of ${entry.type} ${family}`);
    const labels: Record<string, string> = {};
    const rest = labelText.replace(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\n"])*)"(,|$)/g, (_, labelName: string, labelValue: string) => {
      if (labelName in labels) problems.push(`${where}: label ${labelName} twice`);
      labels[labelName] = labelValue;
      return '';
    });
    if (rest !== '') problems.push(`${where}: malformed labels: {${labelText}}`);
    if (!/^(?:[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]?Inf|NaN)$/.test(value)) problems.push(`${where}: not a number: ${value}`);
    const key = JSON.stringify(Object.entries(labels).sort());
    const seen = entry.samples.get(name) ?? new Set<string>();
    if (seen.has(key)) problems.push(`${where}: ${name}${labelText ? `{${labelText}}` : ''} twice`);
    seen.add(key);
    entry.samples.set(name, seen);
    if (entry.type === 'counter' && name.endsWith('_total') && !(Number(value) >= 0)) problems.push(`${where}: negative counter ${name}`);
    if (entry.type === 'histogram' && name === `${family}_bucket`) {
      if (labels['le'] === undefined) problems.push(`${where}: bucket without le`);
      const { le, ...others } = labels;
      const list = histograms.get(family) ?? [];
      list.push({ labels: JSON.stringify(Object.entries(others).sort()), le: le === '+Inf' ? Infinity : Number(le), value: Number(value) });
      histograms.set(family, list);
    }
    return undefined;
  });
  for (const [family, buckets] of histograms) {
    for (const labels of new Set(buckets.map((b) => b.labels))) {
      const own = buckets.filter((b) => b.labels === labels);
      if (own.at(-1)?.le !== Infinity) problems.push(`histogram ${family}${labels}: no le="+Inf" bucket last`);
      for (let i = 1; i < own.length; i++) {
        if (!(own[i]!.le > own[i - 1]!.le) || own[i]!.value < own[i - 1]!.value) problems.push(`histogram ${family}${labels}: buckets not increasing`);
      }
    }
  }
  return problems;
}

export interface RecordingProxy {
  port: number;
  /** The head (request line and headers) of every request that passed, and of every response. */
  requests: string[];
  responses: string[];
  close: () => Promise<void>;
}

/**
 * A TCP relay to 127.0.0.1:target that passes every byte unchanged both ways and keeps the HTTP
 * heads it sees: what a real client asked for and what the real server answered.
 */
export function recordingProxy(target: number): Promise<RecordingProxy> {
  const requests: string[] = [];
  const responses: string[] = [];
  const sockets = new Set<import('node:net').Socket>();
  const heads = (into: string[]) => {
    let buffered = '';
    let skip = 0; // body bytes (gzip included) still to pass unread
    return (chunk: Buffer) => {
      buffered += chunk.toString('latin1');
      for (;;) {
        const skipped = Math.min(skip, buffered.length);
        buffered = buffered.slice(skipped);
        skip -= skipped;
        if (skip > 0) return;
        const end = buffered.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buffered.slice(0, end);
        into.push(head);
        skip = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
        buffered = buffered.slice(end + 4);
      }
    };
  };
  const server = createServer((client) => {
    const upstream = connect(target, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => { client.destroy(); upstream.destroy(); });
    }
    client.on('data', heads(requests));
    upstream.on('data', heads(responses));
    client.pipe(upstream);
    upstream.pipe(client);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      resolve({
        port: (server.address() as { port: number }).port,
        requests,
        responses,
        close: () => new Promise((done) => {
          for (const s of sockets) s.destroy();
          server.close(() => done());
        }),
      });
    });
  });
}
