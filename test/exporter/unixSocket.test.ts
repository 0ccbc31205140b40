// `rdmactl exporter --listen unix:PATH`: served to a real client over the socket, closed by its file
// mode to another user (uid 65534 gets EACCES), and made safely on a shared machine: only our own
// stale socket is ever removed, unsafe directories and other users' files are refused.
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, UNPRIVILEGED, builtOrThrow, unprivilegedUnavailable } from '../helpers/spawn.js';
import { startChild, until, type Started } from './helpers.js';

const noUnprivileged = unprivilegedUnavailable();
if (noUnprivileged) console.warn(`SKIPPED unix socket permission tests: ${noUnprivileged}`);
const noCurl = spawnSync('curl', ['--version']).error ? 'curl is not installed (apt-get install curl)' : null;

/** For `node -e PATH`: connects to the unix socket at PATH and GETs /metrics; prints the status line or the error code. */
const CLIENT_SOURCE = `
const http = require('node:http');
const req = http.get({ socketPath: process.argv[1], path: '/metrics', agent: false }, (res) => {
  let body = '';
  res.on('data', (d) => { body += d; });
  res.on('end', () => console.log(res.statusCode + ' ' + (body.includes('rdmactl_build_info') ? 'metrics' : 'other')));
});
req.on('error', (err) => console.log(err.code));
`;

function clientAs(prefix: string[], path: string): string {
  const result = spawnSync(prefix[0] ?? process.execPath, [...prefix.slice(1), ...(prefix.length > 0 ? [process.execPath] : []), '-e', CLIENT_SOURCE, path], { encoding: 'utf8', timeout: 60_000 });
  return `${result.stdout}${result.stderr}`.trim();
}

async function startOn(args: string[]): Promise<Started> {
  const started = startChild([process.execPath, BIN, 'exporter', ...args]);
  await until('the exporter to listen or exit', () => (/serving (http|unix):/.test(started.stderr()) || started.child.exitCode !== null ? true : undefined), 20_000, 20);
  return started;
}

describe('exporter on a unix socket', () => {
  let root: string;
  const children: Started[] = [];

  beforeAll(() => {
    builtOrThrow();
    // World-searchable, so only the socket's own mode decides who may connect.
    root = mkdtempSync(join(tmpdir(), 'rdmactl-unix-test-'));
    chmodSync(root, 0o755);
  });
  afterAll(async () => {
    for (const child of children) await child.stop();
    rmSync(root, { recursive: true, force: true });
  });

  function dir(name: string, mode = 0o755): string {
    const path = join(root, name);
    mkdirSync(path);
    chmodSync(path, mode);
    return path;
  }

  it('serves /metrics to curl --unix-socket; the socket is ours, mode 0660; gone after SIGTERM', { skip: noCurl !== null }, async () => {
    const socket = join(dir('plain'), 'exporter.sock');
    const exporter = await startOn(['--listen', `unix:${socket}`]);
    children.push(exporter);
    expect(exporter.stderr()).toBe(`rdmactl: serving unix:${socket} (GET /metrics)\n`);
    const st = lstatSync(socket);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o7777).toBe(0o660);
    expect(st.uid).toBe(process.geteuid!());
    const curl = spawnSync('curl', ['-sS', '-w', '\n%{http_code}', '--unix-socket', socket, 'http://localhost/metrics'], { encoding: 'utf8', timeout: 60_000 });
    expect(curl.status, curl.stderr).toBe(0);
    expect(curl.stdout).toMatch(/rdmactl_build_info\{[^}]*\} 1\n\n200$/);
    expect(await exporter.stop()).toEqual({ code: 0, signal: null });
    expect(existsSync(socket)).toBe(false);
  });

  it('uid 65534 gets EACCES at 0660 and 0600 (root-owned), and is served at 0666', { skip: noUnprivileged !== null, timeout: 90_000 }, async () => {
    for (const [mode, expected] of [['0660', 'EACCES'], ['0600', 'EACCES'], ['0666', '200 metrics']] as const) {
      const socket = join(dir(`mode-${mode}`), 'exporter.sock');
      const exporter = await startOn(['--listen', `unix:${socket}`, '--listen-mode', mode]);
      children.push(exporter);
      expect(exporter.stderr()).toMatch(/^rdmactl: serving unix:/);
      expect(lstatSync(socket).mode & 0o777).toBe(parseInt(mode, 8));
      expect(clientAs([], socket), `root, mode ${mode}`).toBe('200 metrics');
      expect(clientAs(UNPRIVILEGED, socket), `uid 65534, mode ${mode}`).toBe(expected);
      await exporter.stop();
    }
  });

  it('replaces a stale socket of its own; refuses one something listens on, a file, a symlink, another user\'s socket', { skip: noUnprivileged !== null, timeout: 90_000 }, async () => {
    // Stale: a socket bound by a process that was killed (nothing listens on it any more).
    const staleDir = dir('stale');
    const stale = join(staleDir, 'exporter.sock');
    const binder = spawnSync(process.execPath, ['-e', `require('node:net').createServer().listen(${JSON.stringify(stale)}, () => process.kill(process.pid, 'SIGKILL'))`]);
    expect(binder.signal).toBe('SIGKILL');
    expect(lstatSync(stale).isSocket()).toBe(true);
    const first = await startOn(['--listen', `unix:${stale}`]);
    children.push(first);
    expect(first.stderr()).toMatch(/^rdmactl: serving unix:/);
    expect(clientAs([], stale)).toBe('200 metrics');

    // In use: a second exporter on the same path leaves the first one's socket alone.
    const second = startChild([process.execPath, BIN, 'exporter', '--listen', `unix:${stale}`]);
    children.push(second);
    expect(await second.exited).toEqual({ code: 1, signal: null });
    expect(second.stderr()).toMatch(/^rdmactl: cannot listen on unix:\S+: another server is listening on it/);
    expect(clientAs([], stale)).toBe('200 metrics');
    await first.stop();

    const refusals: Array<[string, () => string, RegExp]> = [
      ['a regular file', () => { const p = join(dir('file'), 's.sock'); writeFileSync(p, 'keep me'); return p; }, /a file is already there/],
      ['a symlink', () => { const p = join(dir('link'), 's.sock'); symlinkSync('/etc/passwd', p); return p; }, /a symbolic link is already there/],
      // uid 65534 made its own socket in a sticky, world-writable directory (as /tmp is).
      ['another user\'s socket', () => {
        const d = dir('sticky', 0o1777);
        const p = join(d, 's.sock');
        const made = spawnSync(UNPRIVILEGED[0]!, [...UNPRIVILEGED.slice(1), process.execPath, '-e', `require('node:net').createServer().listen(${JSON.stringify(p)}, () => process.kill(process.pid, 'SIGKILL'))`]);
        expect(made.signal).toBe('SIGKILL');
        return p;
      }, /a socket of uid 65534 is already there/],
      ['a world-writable directory', () => join(dir('open', 0o777), 's.sock'), /is writable by every user and not sticky/],
      ['a directory owned by another user', () => { const d = dir('theirs'); chownSync(d, 65534, 65534); return join(d, 's.sock'); }, /belongs to uid 65534/],
      ['a missing directory', () => join(root, 'missing', 's.sock'), /no directory /],
    ];
    for (const [what, make, message] of refusals) {
      const path = make();
      const before = existsSync(path) || isLink(path) ? lstatSync(path) : null;
      const refused = startChild([process.execPath, BIN, 'exporter', '--listen', `unix:${path}`]);
      children.push(refused);
      expect(await refused.exited, what).toEqual({ code: 1, signal: null });
      expect(refused.stderr().split('\n')[0], what).toMatch(message);
      expect(refused.stderr(), what).not.toMatch(/at .*\.js/);
      // Whatever was there is still there, untouched.
      if (before !== null) expect(lstatSync(path).ino, what).toBe(before.ino);
    }
    expect(readFileSync(join(root, 'file', 's.sock'), 'utf8')).toBe('keep me');
  });

  it('--listen-mode is for unix sockets only, and must be octal bits', () => {
    for (const args of [['--listen-mode', '0600'], ['--listen', '127.0.0.1:0', '--listen-mode', '0600'], ['--listen', 'unix:/run/x.sock', '--listen-mode', 'rw'], ['--listen', 'unix:relative.sock']]) {
      const result = spawnSync(process.execPath, [BIN, 'exporter', ...args], { encoding: 'utf8', timeout: 60_000 });
      expect(result.status, `${args.join(' ')}: ${result.stderr}`).toBe(2);
      expect(result.stderr.split('\n')[0]).toMatch(/^rdmactl: (invalid|--listen-mode)/);
    }
  });
});

function isLink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

describe('an address other machines can reach', () => {
  it('0.0.0.0 and [::] warn on stderr in one line before serving; 127.0.0.1 and :PORT do not', async () => {
    builtOrThrow();
    for (const [listen, warns] of [['0.0.0.0:0', true], ['[::]:0', true], ['127.0.0.1:0', false], [':0', false]] as const) {
      const exporter = await startOn(['--listen', listen]);
      const lines = exporter.stderr().trim().split('\n');
      await exporter.stop();
      if (warns) {
        expect(lines[0], listen).toMatch(/^rdmactl: warning: serving on (0\.0\.0\.0|\[::\]):0: every process's name, pid, user and pinned\/locked memory is readable by anyone who can reach this address/);
        expect(lines.slice(1), listen).toEqual([expect.stringMatching(/^rdmactl: serving http:/)]);
      } else {
        expect(lines, listen).toEqual([expect.stringMatching(/^rdmactl: serving http:\/\/127\.0\.0\.1:\d+\/metrics$/)]);
      }
    }
  });
});
