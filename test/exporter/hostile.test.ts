// The exporter against hostile local clients: connections held open idle or dribbling by another
// user, and scrapes that arrive while a slow collection keeps the event loop busy. Real sockets, a
// real unprivileged attacker process, real slow collections (processes with tens of thousands of
// mappings, whose smaps takes the kernel and the parser a while).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { noAttribution } from '../../src/exporter/attribution.js';
import { Scraper } from '../../src/exporter/scrape.js';
import { DEFAULT_LIMITS, startServer } from '../../src/exporter/server.js';
import { UNPRIVILEGED, builtOrThrow, unprivilegedUnavailable } from '../helpers/spawn.js';
import { httpGet, startChild, startExporter, until, type Started } from './helpers.js';

const noUnprivileged = unprivilegedUnavailable();
if (noUnprivileged) console.warn(`SKIPPED connection-holding attack: ${noUnprivileged}`);

/**
 * An attacker for `node -e`: holds IDLE connections that send nothing and DRIBBLE ones that send a
 * request head one byte a second, to 127.0.0.1:PORT; every connection the server closes is opened
 * again at once. Prints {open, opened, closed} as JSON twice a second.
 */
const HOLDER_SOURCE = `
const net = require('node:net');
const [port, idle, dribble] = process.argv.slice(1).map(Number);
let open = 0, opened = 0, closed = 0;
function hold(dribbling) {
  const socket = net.connect(port, '127.0.0.1');
  let timer = null, connected = false;
  socket.on('connect', () => {
    connected = true; open++; opened++;
    if (dribbling) {
      const head = 'GET /metrics HTTP/1.1\\r\\nHost: x\\r\\nX-Slow: ';
      let i = 0;
      timer = setInterval(() => socket.write(i < head.length ? head[i++] : 'a'), 1000);
    }
  });
  socket.on('error', () => {});
  socket.on('close', () => {
    if (connected) { open--; closed++; }
    clearInterval(timer);
    setImmediate(() => hold(dribbling));
  });
}
for (let i = 0; i < idle; i++) hold(false);
for (let i = 0; i < dribble; i++) hold(true);
setInterval(() => console.log(JSON.stringify({ open, opened, closed })), 500);
`;

function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

describe('connections held open by another local user', () => {
  const children: Started[] = [];
  afterAll(async () => {
    for (const child of children.reverse()) await child.stop();
  });

  it('200 idle and 20 dribbling connections, reopened as fast as they are closed, keep no scrape out; fds stay bounded', { skip: noUnprivileged !== null, timeout: 180_000 }, async () => {
    builtOrThrow();
    const exporter = await startExporter(['--listen', '127.0.0.1:0']);
    children.push(exporter);
    const attacker = startChild([...UNPRIVILEGED, process.execPath, '-e', HOLDER_SOURCE, String(exporter.port), '200', '20']);
    children.push(attacker);
    const latest = (): { open: number; opened: number; closed: number } | undefined => {
      const lines = attacker.stdout().trim().split('\n').filter(Boolean);
      return lines.length > 0 ? JSON.parse(lines[lines.length - 1]!) as { open: number; opened: number; closed: number } : undefined;
    };
    // The attack is on once all 220 have been connected at least once.
    await until('the attacker to open its connections', () => ((latest()?.opened ?? 0) >= 220 ? true : undefined), 60_000);

    const exporterPid = exporter.child.pid!;
    let maxFds = 0;
    let maxHeld = 0;
    const failures: string[] = [];
    for (let i = 0; i < 60; i++) {
      try {
        const scrape = await httpGet(exporter.url, { timeoutMs: 30_000 });
        if (scrape.status !== 200 || !/rdmactl_build_info\{[^}]*\} 1\n$/.test(scrape.body)) failures.push(`scrape ${i}: ${scrape.status} ${scrape.body.slice(0, 80)}`);
      } catch (err) {
        failures.push(`scrape ${i}: ${String(err)}`);
      }
      maxFds = Math.max(maxFds, fdCount(exporterPid));
      maxHeld = Math.max(maxHeld, latest()?.open ?? 0);
      await new Promise((r) => setTimeout(r, 100));
    }
    const stats = latest()!;
    expect(failures, `attacker ${JSON.stringify(stats)}`).toEqual([]);
    // The attack was real: the attacker kept well over the 64 connections the server keeps around,
    // and the server kept closing them.
    expect(maxHeld).toBeGreaterThan(64);
    expect(stats.closed).toBeGreaterThan(0);
    // Bounded: never more than DEFAULT_LIMITS.maxConnections sockets, plus the process's own fds.
    expect(maxFds).toBeLessThanOrEqual(DEFAULT_LIMITS.maxConnections + 40);
    expect(attacker.child.exitCode).toBeNull();
  });
});

// A process with `pages` single-page mappings, alternately PROT_NONE and PROT_READ so none merge
// (about pages/2 + pages/2 VMAs), and one page of them mlocked: a holder whose smaps the exporter
// reads at every full scan. Nothing is touched, so it costs page tables and VMAs, not memory.
const MANY_MAPPINGS_SOURCE = `
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
libc.mlock.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
pages = int(sys.argv[1])
base = libc.mmap(None, pages * 4096, 0, 0x22 | 0x4000, -1, 0)
for i in range(0, pages, 2):
    libc.mprotect(base + i * 4096, 4096, 1)
if libc.mlock(base, 4096) != 0:
    sys.exit('mlock failed')
print('ready', flush=True)
sys.stdin.read()
`;

const noPython = spawnSync('python3', ['-c', 'import ctypes'], { encoding: 'utf8' }).status === 0 ? null : 'python3 with ctypes is not installed (it builds the many-mapping processes)';
if (noPython) console.warn(`SKIPPED slow-collection test: ${noPython}`);

/** A client for `node -e`: opens B, then scrapes on A; once A's collection runs, sends B's request. Prints both answers. */
const RACE_CLIENT_SOURCE = `
const net = require('node:net');
const http = require('node:http');
const port = Number(process.argv[1]);
const result = {};
const done = () => { if ('a' in result && 'b' in result) { console.log(JSON.stringify(result)); process.exit(0); } };
const b = net.connect(port, '127.0.0.1');
let bResponse = '';
b.on('data', (d) => { bResponse += d.toString('latin1'); });
b.on('close', () => { result.b = bResponse.split('\\r\\n')[0]; done(); });
b.on('error', () => {});
b.on('connect', () => setTimeout(() => {
  http.get({ port, host: '127.0.0.1', path: '/metrics', agent: false }, (res) => {
    res.resume();
    res.on('end', () => { result.a = 'HTTP/1.1 ' + res.statusCode; done(); });
  }).on('error', (err) => { result.a = String(err); done(); });
  // Well within the head timeout of B's connection, but while A's collection has the server busy.
  setTimeout(() => b.write('GET /metrics HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n'), 100);
}, 50));
`;

describe('slow collections', () => {
  const processes: ChildProcess[] = [];
  afterAll(() => {
    for (const child of processes) child.kill('SIGKILL');
  });

  it('a scrape whose request arrived while a slow collection ran is answered, not 408; the slow scrape itself is not cut', { skip: noPython !== null, timeout: 120_000 }, async () => {
    for (let i = 0; i < 3; i++) {
      const child = spawn('python3', ['-c', MANY_MAPPINGS_SOURCE, '60000'], { stdio: ['pipe', 'pipe', 'inherit'] });
      processes.push(child);
      await new Promise<void>((resolve, reject) => {
        child.stdout!.once('data', () => resolve());
        child.once('exit', (code) => reject(new Error(`many-mappings process exited ${code}`)));
      });
    }
    // Every scrape reads every process and every holder's smaps again: each collection is slow for real.
    const scraper = new Scraper({
      version: 'test', maxProcesses: 5, shareWindowMs: 0, attribution: noAttribution(),
      fullScanEveryMs: 0, quietFullScanEveryMs: 0, smapsMaxAgeMs: 0,
    });
    const started = performance.now();
    await scraper.collectNow();
    const collectionMs = performance.now() - started;
    expect(collectionMs, 'a collection should take several head timeouts').toBeGreaterThan(600);

    const running = await startServer(scraper, { host: '127.0.0.1', port: 0 }, {
      limits: { ...DEFAULT_LIMITS, headersTimeoutMs: 300, keepAliveTimeoutMs: 300, writeTimeoutMs: 300 },
    });
    try {
      const port = (running.address as AddressInfo).port;
      // The client runs in its own process: this one's event loop is busy during each collection.
      const client = startChild([process.execPath, '-e', RACE_CLIENT_SOURCE, String(port)]);
      const exit = await client.exited;
      expect(exit.code, client.stderr()).toBe(0);
      expect(JSON.parse(client.stdout()), `collection took ${Math.round(collectionMs)} ms`).toEqual({ a: 'HTTP/1.1 200', b: 'HTTP/1.1 200 OK' });
      expect((await httpGet(`http://127.0.0.1:${port}/metrics`, { timeoutMs: 60_000 })).status).toBe(200);
    } finally {
      await running.close();
    }
  });
});
