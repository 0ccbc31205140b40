// SIGUSR1 must not open Node's inspector in any long-running rdmactl process: by default Node then
// listens on 127.0.0.1:9229, and anyone on the machine who connects runs code as root. Each process
// is started for real and sent SIGUSR1 and SIGHUP; afterwards it may listen on no TCP port but its
// own (read from its fds and /proc/net/tcp{,6}: port 9229 may be someone else's), and it either keeps
// working or ends cleanly. A plain node process is the control: the check does see an inspector.
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { BIN, exited, startRdmactl } from '../helpers/spawn.js';
import { statusKb } from '../helpers/proc.js';
import { killAndReap, rdmactlBin, reap, running, holderSandbox } from '../held/helpers.js';
import { httpGet, startChild, startExporter, until } from '../exporter/helpers.js';

/** How long Node is given to open an inspector after SIGUSR1 (it takes milliseconds when it does). */
const INSPECTOR_GRACE_MS = 1_500;

/** TCP ports `pid` listens on: its socket fds matched against the LISTEN sockets of /proc/net/tcp{,6}. */
function listeningPorts(pid: number): number[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const inode = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1];
      if (inode) inodes.add(inode);
    } catch { /* closed meanwhile */ }
  }
  const ports: number[] = [];
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields.length > 9 && fields[3] === '0A' && inodes.has(fields[9]!)) ports.push(parseInt(fields[1]!.split(':')[1]!, 16));
    }
  }
  return ports.sort((a, b) => a - b);
}

/** Whether any process listens on TCP port `port` (any address). */
function someoneListensOn(port: number): boolean {
  return ['/proc/net/tcp', '/proc/net/tcp6'].some((table) => readFileSync(table, 'utf8').split('\n').slice(1).some((line) => {
    const fields = line.trim().split(/\s+/);
    return fields[3] === '0A' && parseInt(fields[1]?.split(':')[1] ?? '', 16) === port;
  }));
}

/** Sends SIGUSR1 (and SIGHUP when asked) and gives an inspector time to appear. */
async function debugSignal(pid: number, alsoHangup = false): Promise<void> {
  // An inspector that cannot bind 9229 says so only on stderr, which a holder or watchdog has not.
  if (someoneListensOn(9229)) throw new Error('another process listens on port 9229: an inspector could not open there, so this check would prove nothing');
  process.kill(pid, 'SIGUSR1');
  if (alsoHangup) process.kill(pid, 'SIGHUP');
  await sleep(INSPECTOR_GRACE_MS);
}

const { runtime, dirs, holders } = holderSandbox();

describe('SIGUSR1 opens no inspector in a long-running rdmactl process', () => {
  it('control: a plain node process does open one, and the check sees it', { timeout: 30_000 }, async () => {
    const control = startChild([process.execPath, '-e', 'setInterval(() => {}, 1000)']);
    try {
      await sleep(300);
      expect(listeningPorts(control.child.pid!)).toEqual([]);
      await debugSignal(control.child.pid!);
      // Either it listens, or it says why it could not (9229 taken by someone else).
      expect(listeningPorts(control.child.pid!).length === 1 || /Starting inspector on .* failed/.test(control.stderr()), control.stderr()).toBe(true);
    } finally {
      control.child.kill('SIGKILL');
      await control.exited;
    }
  });

  it('exporter (HTTP): only its own port; still answers a scrape; SIGHUP ends it cleanly (exit 0)', { timeout: 60_000 }, async () => {
    const exporter = await startExporter(['--listen', '127.0.0.1:0'], { env: runtime.env });
    try {
      const pid = exporter.child.pid!;
      await debugSignal(pid);
      expect(listeningPorts(pid)).toEqual([exporter.port]);
      expect(exporter.stderr()).not.toMatch(/inspector|Debugger/);
      const scrape = await httpGet(exporter.url);
      expect(scrape.status).toBe(200);
      expect(scrape.body).toMatch(/^rdmactl_process_pinned_bytes\{/m);
      process.kill(pid, 'SIGHUP');
      expect(await exporter.exited, exporter.stderr()).toEqual({ code: 0, signal: null });
    } finally {
      await exporter.stop();
    }
  });

  it('exporter --textfile: no port; keeps writing; SIGHUP ends it cleanly (exit 0, no temporary file)', { timeout: 60_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rdmactl-debug-signal-'));
    dirs.push(dir);
    const target = join(dir, 'rdmactl.prom');
    const writer = startChild([process.execPath, BIN, 'exporter', '--textfile', dir, '--interval', '200ms'], runtime.env);
    try {
      await until('a first rdmactl.prom', () => (readdirSync(dir).includes('rdmactl.prom') ? true : undefined), 15_000, 20);
      const pid = writer.child.pid!;
      await debugSignal(pid);
      expect(listeningPorts(pid)).toEqual([]);
      expect(writer.stderr()).not.toMatch(/inspector|Debugger/);
      const before = statSync(target).mtimeMs;
      await until('another write', () => (statSync(target).mtimeMs !== before ? true : undefined), 15_000, 20);
      process.kill(pid, 'SIGHUP');
      expect(await writer.exited, writer.stderr()).toEqual({ code: 0, signal: null });
      expect(readdirSync(dir)).toEqual(['rdmactl.prom']);
    } finally {
      await writer.stop();
    }
  });

  // top --json streams like stat --interval: SIGHUP ends it between samples, exit 0, as SIGTERM does.
  it('top --json: no port; keeps streaming; SIGHUP ends it (exit 0)', { timeout: 60_000 }, async () => {
    const top = await startRdmactl(['top', '--json', '--interval', '200ms']);
    try {
      const pid = top.child.pid!;
      await debugSignal(pid);
      expect(listeningPorts(pid)).toEqual([]);
      expect(top.stderr()).not.toMatch(/inspector|Debugger/);
      const lines = top.rest().split('\n').length;
      await until('another sample', () => (top.rest().split('\n').length > lines ? true : undefined), 15_000, 20);
      process.kill(pid, 'SIGHUP');
      expect(await exited(top.child)).toEqual({ code: 0, signal: null });
    } finally {
      top.child.kill('SIGKILL');
      await exited(top.child);
    }
  });

  it('reg holding in the foreground: no port; still holds; SIGHUP releases and ends it (exit 0, nothing pinned)', { timeout: 60_000 }, async () => {
    const reg = await startRdmactl(['reg', '1M', '--backend', 'uring', '--json']);
    try {
      const pid = reg.child.pid!;
      expect(statusKb(pid, 'VmPin')).toBe(1024);
      await debugSignal(pid);
      expect(listeningPorts(pid)).toEqual([]);
      expect(reg.stderr()).not.toMatch(/inspector|Debugger/);
      expect(statusKb(pid, 'VmPin')).toBe(1024);
      process.kill(pid, 'SIGHUP');
      expect(await exited(reg.child), reg.stderr()).toEqual({ code: 0, signal: null });
      expect(reg.rest()).toMatch(/"event":"released"/);
    } finally {
      reg.child.kill('SIGKILL');
      await exited(reg.child);
    }
  });

  it('a detached holder (reg --detach): no port after SIGUSR1 and SIGHUP; keeps holding; SIGTERM releases it', { timeout: 60_000 }, async () => {
    const started = rdmactlBin(['reg', '1M', '--backend', 'uring', '--detach', '--json'], runtime.env);
    expect(started.status, started.stderr).toBe(0);
    const { pid } = JSON.parse(started.stdout) as { pid: number };
    holders.push(pid);
    try {
      await debugSignal(pid, true);
      expect(listeningPorts(pid)).toEqual([]);
      expect(running(pid)).toBe(true);
      expect(statusKb(pid, 'VmPin')).toBe(1024);
      process.kill(pid, 'SIGTERM');
      expect(await reap(pid)).toMatchObject({ exitCode: 0 });
    } finally {
      // Not left for afterAll: an inspector it opened would hold 9229 during the next test.
      await killAndReap([pid]);
    }
  });

  it('the fork watchdog: no port after SIGUSR1 and SIGHUP; keeps watching; ends with its fork run', { timeout: 90_000 }, async () => {
    const fork = spawn(process.execPath, [BIN, 'fork', '--backend', 'uring,mlock', '--size', '1M', '--step-delay', '4000'], { env: runtime.env, stdio: ['ignore', 'pipe', 'pipe'] });
    fork.stdout.resume();
    let stderr = '';
    fork.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const done = exited(fork as never);
    try {
      // The watchdog is started detached (its own process group) as a child of `rdmactl fork`.
      const watchdog = await until('the fork watchdog', () => {
        for (const pid of readChildren(fork.pid!)) if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('watchdogMain')) return pid;
        return undefined;
      }, 20_000, 20);
      // Armed: its SIGHUP listener is installed (its program ran past its imports).
      await until('the watchdog to catch SIGHUP', () => (caught(watchdog, 'SIGHUP') ? true : undefined), 20_000, 20);
      await debugSignal(watchdog, true);
      expect(running(watchdog)).toBe(true);
      expect(listeningPorts(watchdog)).toEqual([]);
      expect(await done, stderr).toMatchObject({ signal: null });
      await until('the watchdog to end with its run', () => (running(watchdog) ? undefined : true), 10_000, 20);
      await reap(watchdog, 1_000).catch(() => null);
    } finally {
      fork.kill('SIGKILL');
      await done;
    }
  });
});

/** Whether `pid` has a handler for `signal` (SigCgt of /proc/PID/status). */
function caught(pid: number, signal: 'SIGHUP'): boolean {
  const mask = BigInt(`0x${/^SigCgt:\s+([0-9a-f]+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]}`);
  const number = { SIGHUP: 1n }[signal];
  return ((mask >> (number - 1n)) & 1n) === 1n;
}

function readChildren(pid: number): number[] {
  const out: number[] = [];
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      out.push(...readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number));
    } catch { /* exited */ }
  }
  return out;
}
