// --textfile output served by a real node_exporter (textfile collector), and `stat --format prometheus`.
import { mkdtempSync, readdirSync, readFileSync, rmSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UNPRIVILEGED, builtOrThrow, unprivilegedUnavailable } from '../helpers/spawn.js';
import { statusKb } from '../helpers/proc.js';
import { becomeSubreaper, killAndReap, rdmactlBin, tempRuntime } from '../held/helpers.js';
import { BIN } from '../helpers/spawn.js';
import { freePort, httpGet, missingBinary, one, parseExposition, promtool, startChild, until, type Started } from './helpers.js';

const noNodeExporter = missingBinary('prometheus-node-exporter', 'prometheus-node-exporter');
const noUnprivileged = unprivilegedUnavailable();
if (noNodeExporter) console.warn(`SKIPPED node_exporter textfile test: ${noNodeExporter}`);
if (noUnprivileged) console.warn(`SKIPPED unwritable --textfile test: ${noUnprivileged}`);

describe('rdmactl exporter --textfile', () => {
  const runtime = tempRuntime();
  const holders: number[] = [];
  const children: Started[] = [];
  const dirs: string[] = [];

  beforeAll(() => {
    builtOrThrow();
    becomeSubreaper();
  });
  afterAll(async () => {
    for (const child of children) await child.stop();
    await killAndReap(holders);
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
    runtime.cleanup();
  });

  function tempDir(): string {
    const dir = mkdtempSync(join(tmpdir(), 'rdmactl-textfile-test-'));
    dirs.push(dir);
    return dir;
  }

  it('node_exporter serves the held registration from DIR/rdmactl.prom; no temporary file is left', { skip: noNodeExporter !== null, timeout: 60_000 }, async () => {
    const held = JSON.parse(rdmactlBin(['reg', '3M', '--backend', 'uring', '--detach', '--json'], runtime.env).stdout) as { pid: number };
    holders.push(held.pid);
    const dir = tempDir();
    const writer = startChild([process.execPath, BIN, 'exporter', '--textfile', dir, '--interval', '300ms'], runtime.env);
    children.push(writer);
    await until('rdmactl.prom', () => (readdirSync(dir).includes('rdmactl.prom') ? true : undefined), 15_000, 50);

    const port = await freePort();
    const nodeExporter = startChild(['prometheus-node-exporter', `--web.listen-address=127.0.0.1:${port}`, '--collector.disable-defaults',
      '--collector.textfile', `--collector.textfile.directory=${dir}`]);
    children.push(nodeExporter);
    const vmPin = statusKb(held.pid, 'VmPin') * 1024;
    expect(vmPin).toBe(3 * 1024 * 1024);
    const samples = await until('node_exporter to serve the textfile', async () => {
      const parsed = parseExposition((await httpGet(`http://127.0.0.1:${port}/metrics`)).body);
      return parsed.some((s) => s.name === 'rdmactl_process_pinned_bytes') ? parsed : undefined;
    }, 20_000);
    expect(one(samples, 'rdmactl_process_pinned_bytes', { pid: String(held.pid) })).toBe(vmPin);
    // node_exporter reports a file it could not parse with node_textfile_scrape_error 1.
    expect(one(samples, 'node_textfile_scrape_error')).toBe(0);

    const stopped = await writer.stop();
    expect(stopped).toEqual({ code: 0, signal: null });
    expect(readdirSync(dir)).toEqual(['rdmactl.prom']);
    const check = promtool(['check', 'metrics'], readFileSync(join(dir, 'rdmactl.prom'), 'utf8'));
    expect(check.status, check.output).toBe(0);
  });

  it('a directory it may not write is permission denied (exit 4), with nothing left in it', { skip: noUnprivileged !== null }, () => {
    const dir = tempDir();
    chmodSync(dir, 0o755);
    const result = rdmactlBin(['exporter', '--textfile', dir], runtime.env, UNPRIVILEGED);
    expect(result.status, result.stderr).toBe(4);
    expect(result.stderr.split('\n')[0]).toBe(`rdmactl: cannot write ${dir}/rdmactl.prom: EACCES`);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('stat --format prometheus prints one exposition promtool accepts, with the held registration in it', () => {
    const held = JSON.parse(rdmactlBin(['reg', '1M', '--backend', 'uring', '--detach', '--json'], runtime.env).stdout) as { pid: number };
    holders.push(held.pid);
    const result = rdmactlBin(['stat', '--format', 'prometheus'], runtime.env);
    expect(result.status, result.stderr).toBe(0);
    expect(one(parseExposition(result.stdout), 'rdmactl_process_pinned_bytes', { pid: String(held.pid) })).toBe(statusKb(held.pid, 'VmPin') * 1024);
    const check = promtool(['check', 'metrics'], result.stdout);
    expect(check.status, check.output).toBe(0);
    const mixed = rdmactlBin(['stat', '--format', 'prometheus', '--user', 'root'], runtime.env);
    expect(mixed.status).toBe(2);
  });
});
