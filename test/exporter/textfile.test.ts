// --textfile output served by a real node_exporter (textfile collector), and `stat --format prometheus`.
// Also --textfile in a directory other users may write (root's exporter must never write through
// their symbolic links), on a full file system, after a SIGKILL, and the directories it refuses.
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UNPRIVILEGED, builtOrThrow, unprivilegedUnavailable } from '../helpers/spawn.js';
import { statusKb } from '../helpers/proc.js';
import { holderSandbox, rdmactlBin, tempRuntime } from '../held/helpers.js';
import { BIN } from '../helpers/spawn.js';
import { find, freePort, httpGet, missingBinary, one, parseExposition, promtool, startChild, until, type Started } from './helpers.js';

const noNodeExporter = missingBinary('prometheus-node-exporter', 'prometheus-node-exporter');
const noUnprivileged = unprivilegedUnavailable();
const noPromtool = missingBinary('promtool', 'prometheus');
if (noPromtool) console.warn(`SKIPPED stat --format prometheus test: ${noPromtool}`);
if (noNodeExporter) console.warn(`SKIPPED node_exporter textfile test: ${noNodeExporter}`);
if (noUnprivileged) console.warn(`SKIPPED unwritable --textfile test: ${noUnprivileged}`);

/** A temporary directory, removed with the sandbox's directories. */
function tempDirIn(dirs: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'rdmactl-textfile-test-'));
  dirs.push(dir);
  return dir;
}

describe('rdmactl exporter --textfile', () => {
  const { runtime, holders, dirs } = holderSandbox();
  const children: Started[] = [];
  // Registered after the sandbox's: after-hooks run last-first, so the exporters stop before the rest goes.
  afterAll(async () => {
    for (const child of children) await child.stop();
  });
  const tempDir = (): string => tempDirIn(dirs);

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
    // The writer's own nodejs_* series reach Prometheus through node_exporter; process_* are left out
    // of the file: node_exporter serves its own under those names and logs a collision for ours.
    expect(one(samples, 'nodejs_version_info', { version: process.version })).toBe(1);
    expect(find(samples, 'nodejs_heap_size_used_bytes')[0]!.value).toBeGreaterThan(0);
    expect(parseExposition(readFileSync(join(dir, 'rdmactl.prom'), 'utf8')).filter((s) => s.name.startsWith('process_'))).toEqual([]);
    expect(nodeExporter.stderr()).not.toMatch(/collected before|inconsistent/);

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

  it('stat --format prometheus prints one exposition promtool accepts, with the held registration in it', { skip: noPromtool !== null }, () => {
    const held = JSON.parse(rdmactlBin(['reg', '1M', '--backend', 'uring', '--detach', '--json'], runtime.env).stdout) as { pid: number };
    holders.push(held.pid);
    const result = rdmactlBin(['stat', '--format', 'prometheus'], runtime.env);
    expect(result.status, result.stderr).toBe(0);
    expect(one(parseExposition(result.stdout), 'rdmactl_process_pinned_bytes', { pid: String(held.pid) })).toBe(statusKb(held.pid, 'VmPin') * 1024);
    const check = promtool(['check', 'metrics'], result.stdout);
    expect(check.status, check.output).toBe(0);
    // One-shot: no series about the short-lived rdmactl process itself.
    expect(parseExposition(result.stdout).filter((s) => /^(process|nodejs)_/.test(s.name))).toEqual([]);
    const mixed = rdmactlBin(['stat', '--format', 'prometheus', '--user', 'root'], runtime.env);
    expect(mixed.status).toBe(2);
  });
});

describe('rdmactl exporter --textfile in a directory other users may write', () => {
  const runtime = tempRuntime();
  const dirs: string[] = [];
  const mounts: string[] = [];
  const children: Started[] = [];

  beforeAll(() => builtOrThrow());
  afterAll(async () => {
    for (const child of children) await child.stop();
    for (const mount of mounts) spawnSync('umount', [mount]);
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
    runtime.cleanup();
  });
  const tempDir = (): string => tempDirIn(dirs);

  /** A file only root may read or write, in a directory only root may enter. */
  function rootOnlyFile(): { path: string; content: string } {
    const vault = tempDir();
    const path = join(vault, 'secret');
    const content = 'root only\n';
    writeFileSync(path, content, { mode: 0o600 });
    return { path, content };
  }

  function exporterArgv(dir: string, interval: string): string[] {
    return [process.execPath, BIN, 'exporter', '--textfile', dir, '--interval', interval];
  }

  /** Creates each [name, target] symbolic link in `dir` as uid 65534. */
  function plantAsNobody(dir: string, links: ReadonlyArray<readonly [string, string]>): void {
    const script = `const fs = require('fs'); for (const [name, target] of JSON.parse(process.argv[1])) fs.symlinkSync(target, require('path').join(${JSON.stringify(dir)}, name));`;
    const planted = spawnSync(UNPRIVILEGED[0]!, [...UNPRIVILEGED.slice(1), process.execPath, '-e', script, JSON.stringify(links)], { encoding: 'utf8' });
    if (planted.status !== 0) throw new Error(`planting as uid 65534 failed: ${planted.stderr}`);
  }

  function mtime(path: string): number | undefined {
    try { return lstatSync(path).mtimeMs; } catch { return undefined; }
  }

  const SHARED_DIRS = [
    { kind: 'group-writable (0775, group nogroup)', mode: 0o775, gid: 65534 },
    { kind: 'sticky world-writable (1777)', mode: 0o1777, gid: 0 },
  ];

  it.each(SHARED_DIRS)('as uid 65534 in a $kind directory: links at the old temporary name, at rdmactl.prom and at 500 guesses of the new name are never written through', { skip: noUnprivileged !== null, timeout: 60_000 }, async ({ mode, gid }) => {
    const dir = tempDir();
    chownSync(dir, 0, gid);
    chmodSync(dir, mode);
    const secret = rootOnlyFile();
    // The exporter waits in sh until the links are planted; exec keeps the pid, so the name the old
    // code would use (.rdmactl.prom.PID.tmp) is known exactly.
    const child = spawn('sh', ['-c', 'read go && exec "$0" "$@"', ...exporterArgv(dir, '200ms')], { env: runtime.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    try {
      const pid = child.pid!;
      const links: Array<[string, string]> = [[`.rdmactl.prom.${pid}.tmp`, secret.path], ['rdmactl.prom', secret.path]];
      for (let i = 0; i < 500; i++) links.push([`.rdmactl.prom.${pid}.${randomBytes(16).toString('hex')}.tmp`, secret.path]);
      plantAsNobody(dir, links);
      child.stdin.end('go\n');

      const target = join(dir, 'rdmactl.prom');
      const first = await until('a first rdmactl.prom', () => (lstatSync(target).isFile() ? lstatSync(target).mtimeMs : undefined), 15_000, 20);
      await until('a second write', () => ((mtime(target) ?? first) !== first ? true : undefined), 15_000, 20);
      child.kill('SIGTERM');
      expect(await exited, stderr).toEqual({ code: 0, signal: null });

      expect(readFileSync(secret.path, 'utf8')).toBe(secret.content);
      const written = lstatSync(target);
      expect(written.isFile() && written.uid === 0).toBe(true);
      expect(readFileSync(target, 'utf8')).toMatch(/^rdmactl_process_pinned_bytes\{/m);
      // Every other planted link is still there, still a link; the exporter left nothing else.
      for (const [name] of links.slice(2)) expect(lstatSync(join(dir, name)).isSymbolicLink(), name).toBe(true);
      expect(readdirSync(dir).sort()).toEqual([links[0]![0], ...links.slice(2).map(([name]) => name), 'rdmactl.prom'].sort());
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    }
  });

  it('on a full file system (a short write) the previous rdmactl.prom stays whole, no temporary file is left, exit 1 with one line', { timeout: 30_000 }, (ctx) => {
    if (process.getuid?.() !== 0) ctx.skip('mounting a tmpfs needs root');
    const dir = tempDir();
    const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k,mode=0755', 'tmpfs', dir], { encoding: 'utf8' });
    if (mounted.status !== 0) ctx.skip(`cannot mount a 64 KiB tmpfs here: ${mounted.stderr.trim()}`);
    mounts.push(dir);
    const previous = '# HELP rdmactl_previous a previous exposition\n# TYPE rdmactl_previous gauge\nrdmactl_previous 1\n';
    writeFileSync(join(dir, 'rdmactl.prom'), previous);
    // Fill the file system, then free one page: the next file takes 4 KiB, then ENOSPC.
    const filler = join(dir, 'filler');
    let size = 0;
    try {
      for (;;) { writeFileSync(filler, Buffer.alloc(4096), { flag: 'a' }); size += 4096; }
    } catch (err) {
      expect((err as NodeJS.ErrnoException).code).toBe('ENOSPC');
    }
    truncateSync(filler, size - 4096);

    const result = spawnSync(process.execPath, [BIN, 'exporter', '--textfile', dir, '--interval', '200ms'], { encoding: 'utf8', env: runtime.env, timeout: 10_000 });
    expect(readFileSync(join(dir, 'rdmactl.prom'), 'utf8')).toBe(previous);
    expect(readdirSync(dir).sort()).toEqual(['filler', 'rdmactl.prom']);
    expect(result.status, result.stderr).toBe(1);
    expect(result.stderr).toMatch(new RegExp(`^rdmactl: cannot write ${dir}/rdmactl\\.prom: ENOSPC[^\\n]*\\n$`));
  });

  it('after a SIGKILL the next run removes the temporary file the killed run left, and only files of that kind', { skip: noUnprivileged !== null, timeout: 60_000 }, async () => {
    const dir = tempDir();
    chmodSync(dir, 0o755);
    const target = join(dir, 'rdmactl.prom');
    const killed = startChild(exporterArgv(dir, '1h'), runtime.env);
    children.push(killed);
    await until('a first rdmactl.prom', () => (mtime(target) !== undefined ? true : undefined), 15_000, 20);
    killed.child.kill('SIGKILL');
    expect(await killed.exited).toEqual({ code: null, signal: 'SIGKILL' });
    const dead = killed.child.pid!;
    const hex = (): string => randomBytes(16).toString('hex');
    // What the killed run leaves when SIGKILL lands between creating its temporary file and renaming it.
    const stale = [`.rdmactl.prom.${dead}.${hex()}.tmp`, `.rdmactl.prom.${dead}.tmp`];
    for (const name of stale) writeFileSync(join(dir, name), 'rdmactl_process_pinned_bytes{pid="1"');
    // Not to be removed: a running process's, another user's, a symbolic link, another name.
    const kept = [`.rdmactl.prom.${process.pid}.${hex()}.tmp`, `.rdmactl.prom.${dead}.${hex()}.tmp`, `.rdmactl.prom.${dead}.${hex()}.tmp`, `.rdmactl.prom.${dead}.tmp~`];
    writeFileSync(join(dir, kept[0]!), 'live');
    writeFileSync(join(dir, kept[1]!), 'foreign');
    chownSync(join(dir, kept[1]!), 65534, 65534);
    const secret = rootOnlyFile();
    symlinkSync(secret.path, join(dir, kept[2]!));
    writeFileSync(join(dir, kept[3]!), 'other');

    const before = mtime(target)!;
    const restarted = startChild(exporterArgv(dir, '1h'), runtime.env);
    children.push(restarted);
    await until('the restarted run to write', () => (mtime(target) !== before ? true : undefined), 15_000, 20);
    expect(await restarted.stop()).toEqual({ code: 0, signal: null });
    expect(readdirSync(dir).sort()).toEqual([...kept, 'rdmactl.prom'].sort());
    expect(readFileSync(secret.path, 'utf8')).toBe(secret.content);
  });

  const REFUSED = [
    { kind: 'a symbolic link to a directory', code: 2, make: (dir: string) => { const link = `${dir}-link`; symlinkSync(dir, link); dirs.push(link); return link; }, says: 'is a symbolic link; give the directory itself' },
    { kind: 'a regular file', code: 2, make: (dir: string) => { writeFileSync(join(dir, 'file'), ''); return join(dir, 'file'); }, says: 'not a directory' },
    { kind: 'a directory every user may write, not sticky (0777)', code: 4, make: (dir: string) => { mkdirSync(join(dir, 'open')); chmodSync(join(dir, 'open'), 0o777); return join(dir, 'open'); }, says: 'writable by every user and not sticky (chmod o-w or chmod +t it)' },
  ];

  it.each(REFUSED)('refuses $kind: one line, exit $code, nothing written', { timeout: 30_000 }, ({ code, make, says }) => {
    const dir = tempDir();
    const given = make(dir);
    const before = readdirSync(dir, { recursive: true }).sort();
    const result = spawnSync(process.execPath, [BIN, 'exporter', '--textfile', given, '--interval', '200ms'], { encoding: 'utf8', env: runtime.env, timeout: 10_000 });
    expect(result.stderr).toBe(`rdmactl: --textfile ${given}: ${says}\n`);
    expect(result.status).toBe(code);
    expect(readdirSync(dir, { recursive: true }).sort()).toEqual(before);
  });
});
