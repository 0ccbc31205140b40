// What the exporter benches share: scraping over one keep-alive agent, and children they own
// (started until a readiness line appears, stopped with SIGTERM then SIGKILL).

import { spawn } from 'node:child_process';
import { request, Agent } from 'node:http';

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
