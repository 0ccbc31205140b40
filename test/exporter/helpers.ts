// Helpers for exporter tests: free ports, real servers started as children (and stopped on every
// path), raw HTTP, and an independent reading of the exposition format (not prom-client's).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
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
