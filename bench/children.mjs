// What the exporter benches share: scraping over one keep-alive agent, children they own (started
// until a readiness line appears, stopped with SIGTERM then SIGKILL), the readings they take of a
// process, and the in-process exporter they grow RSS with.

import { spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { request, Agent } from 'node:http';
import { startIdle } from './idle.mjs';

/** A GET function over one keep-alive agent with at most `maxSockets` connections. */
export function httpGetter(maxSockets) {
  const agent = new Agent({ keepAlive: true, maxSockets });
  return (url) => new Promise((resolve, reject) => {
    const req = request(url, { agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => { body += chunk; });
      res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`${url}: HTTP ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end();
  });
}

/** A child we own; resolves once `ready(stdout+stderr)` returns a value. */
export function start(argv, ready) {
  const child = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
  let output = '';
  return new Promise((resolve, reject) => {
    const check = (d) => {
      output += d.toString();
      const value = ready(output);
      if (value !== undefined) resolve({ child, value });
    };
    child.stdout.on('data', check);
    child.stderr.on('data', check);
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`${argv.join(' ')} exited (${code}): ${output}`)));
  });
}

export async function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

export const procCount = () => readdirSync('/proc').filter((n) => /^\d+$/.test(n)).length;

/** utime + stime of pid in clock ticks (fields 14 and 15 of /proc/PID/stat). */
export function cpuTicks(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

export function rssKb(pid) {
  return Number(/^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
}

/** Source for `node --input-type=module -e`: the exporter of the build at `root` (as `rdmactl exporter` runs it, but every scrape collects), on a free port it prints. */
export function exporterChildSource(root) {
  return `
const { Scraper } = await import(${JSON.stringify(`${root}dist/exporter/scrape.js`)});
const { startServer } = await import(${JSON.stringify(`${root}dist/exporter/server.js`)});
const running = await startServer(new Scraper({ version: 'bench', maxProcesses: 100, shareWindowMs: 0, keepHeap: true }), { host: '127.0.0.1', port: 0 });
console.log('port ' + running.address.port);
process.on('SIGTERM', () => running.close().then(() => process.exit(0)));
`;
}

/**
 * What the exporter benches measure against: `holders` real `rdmactl reg` holders of `rdmactlBin`
 * (alternately io_uring and mlock, 1–4 MiB each) and idle processes up to `processes` in all. Children
 * the bench starts later are handed to own(); cleanup() stops every one, also on SIGINT (exit 130).
 */
export async function startBenchWorld(rdmactlBin, { holders, processes }) {
  const children = [];
  let idle = null;
  const cleanup = async () => {
    for (const child of children.splice(0).reverse()) await stop(child);
    if (idle) await idle.stop();
    idle = null;
  };
  process.on('SIGINT', () => { void cleanup().then(() => process.exit(130)); });
  try {
    for (let i = 0; i < holders; i++) {
      const backend = i % 2 === 0 ? 'uring' : 'mlock';
      const { child } = await start([process.execPath, rdmactlBin, 'reg', `${1 + (i % 4)}M`, '--backend', backend, '--json'], (out) => (out.includes('\n') ? true : undefined));
      children.push(child);
    }
    idle = await startIdle(Math.max(0, processes - procCount()));
  } catch (err) {
    await cleanup();
    throw err;
  }
  return { own: (child) => { children.push(child); }, cleanup };
}
