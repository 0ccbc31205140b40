// `reg --detach` and `dereg` end to end: real holders started by the built binary, checked through
// /proc by the test itself; records in a private XDG_RUNTIME_DIR per test.
import { spawn } from 'node:child_process';
import { hostname } from 'node:os';
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, readlinkSync, statSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { HELD_RECORD_VERSION, listHeld, removeStale, writeHeld, type HeldRecord } from '../../src/held/store.js';
import { PermissionError } from '../../src/lib/errors.js';
import { holderMainPath } from '../../src/held/starter.js';
import { jsonLines, rdmactl } from '../helpers/run.js';
import { statusKb } from '../helpers/proc.js';
import { BIN, UNPRIVILEGED, builtOrThrow, unprivilegedUnavailable } from '../helpers/spawn.js';
import { becomeSubreaper, killAndReap, procStat, rdmactlBin, reap, running, sampleReport, tempRuntime, until } from './helpers.js';

const MiB = 1024 * 1024;
const NOBODY = 65534;

let runtime: ReturnType<typeof tempRuntime>;
const started = new Set<number>();
const savedXdg = process.env['XDG_RUNTIME_DIR'];

beforeAll(() => {
  builtOrThrow();
  becomeSubreaper();
});

beforeEach(() => {
  runtime = tempRuntime();
  process.env['XDG_RUNTIME_DIR'] = runtime.dir; // for in-process rdmactl() and the store API
});

afterEach(async () => {
  // Holders detached in-process (rdmactl('reg', …, '--detach')) are known only to the store: a test
  // that fails before its dereg must not leave them holding memory.
  try {
    for (const entry of listHeld()) if (entry.state === 'live') started.add(entry.pid);
  } catch (err) {
    // Some tests make the runtime directory unusable on purpose: nothing can be held there.
    if (!(err instanceof PermissionError)) throw err;
  }
  await killAndReap(started);
  started.clear();
  runtime.cleanup();
  if (savedXdg === undefined) delete process.env['XDG_RUNTIME_DIR'];
  else process.env['XDG_RUNTIME_DIR'] = savedXdg;
});

afterAll(async () => {
  await killAndReap(started);
});

type Detached = Record<string, unknown> & { id: string; pid: number };

/** `rdmactl reg ARGS --detach --json` from the built binary; the holder is remembered for cleanup. */
function detach(args: string[], env = runtime.env, prefix: string[] = []): Detached {
  const result = rdmactlBin(['reg', ...args, '--detach', '--json'], env, prefix);
  expect(result.status, result.stderr).toBe(0);
  const [line] = jsonLines(result.stdout);
  const record = line as Detached;
  started.add(record.pid);
  return record;
}

function recordFile(dir: string, id: string): string {
  return `${dir}/rdmactl/${id}.json`;
}

function readRecord(dir: string, id: string): HeldRecord {
  return JSON.parse(readFileSync(recordFile(dir, id), 'utf8')) as HeldRecord;
}

function exists(path: string): boolean {
  try { statSync(path); return true; } catch { return false; }
}

describe('reg --detach', () => {
  it('leaves a holder running whose VmPin equals the record, with a 0600 record in a 0700 directory', async () => {
    const record = detach(['64MiB', '--backend', 'uring']);
    expect(record).toMatchObject({ event: 'registered', backend: 'uring', length: 64 * MiB, detached: true, releaseAt: null });
    expect(record.id).toMatch(/^[0-9a-f]{8}$/);
    const { pid } = record;
    expect(running(pid)).toBe(true);
    // The test reads the holder's accounting itself.
    expect(statusKb(pid, 'VmPin')).toBe(65536);
    expect(statusKb(pid, 'VmPin') * 1024).toBe(record['pinnedBytesAfter']);
    // Own session, adopted by this (subreaper) process once its starter exited; no pipes left open.
    const stat = procStat(pid)!;
    expect(stat.session).toBe(pid);
    expect(stat.ppid).toBe(process.pid);
    await until('the holder to drop its pipes', () => readlinkSync(`/proc/${pid}/fd/1`) === '/dev/null' && readlinkSync(`/proc/${pid}/fd/2`) === '/dev/null');

    expect(statSync(`${runtime.dir}/rdmactl`).mode & 0o777).toBe(0o700);
    expect(statSync(recordFile(runtime.dir, record.id)).mode & 0o777).toBe(0o600);
    expect(readdirSync(`${runtime.dir}/rdmactl`)).toEqual([`${record.id}.json`]); // no temp files left
    const stored = readRecord(runtime.dir, record.id);
    expect(stored).toMatchObject({ version: HELD_RECORD_VERSION, id: record.id, pid, uid: 0, startTime: stat.startTime, releaseAt: null });
    // The stored registration is the typed report; what reg --json printed was derived from it.
    expect(stored.registration).toMatchObject({
      pid, backend: 'uring', backendRequested: 'uring', length: 64 * MiB, addr: record['addr'], after: { pinnedBytes: 64 * MiB, lockedBytes: 0 },
      handles: [{ addr: record['addr'], length: 64 * MiB, details: { ringFd: expect.any(Number), fixedBuffers: 1 } }],
    });
    const [handle] = stored.registration!.handles;
    expect(record['registrations']).toEqual([{ addr: handle!.addr, length: handle!.length, elapsedMicros: handle!.elapsedMicros, ...handle!.details }]);
    expect(readlinkSync(`/proc/${pid}/fd/${(handle!.details as { ringFd: number }).ringFd}`)).toBe('anon_inode:[io_uring]');
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    expect(argv.slice(1, 4)).toEqual([holderMainPath(), '--holder-token', stored.token]);

    const [entry] = listHeld();
    expect(entry).toMatchObject({ id: record.id, pid, state: 'live', problem: null });

    const result = await rdmactl('dereg', record.id, '--json');
    expect(result.code, result.stderr).toBe(0);
    const { results } = JSON.parse(result.stdout) as { results: Array<Record<string, unknown>> };
    expect(results).toEqual([expect.objectContaining({
      id: record.id, pid, status: 'released', exitCode: 0, signalled: true, pinnedBytesHeld: 64 * MiB, lockedBytesHeld: 0,
      holderExited: true, recordRemovedByHolder: true,
    })]);
    expect(running(pid)).toBe(false);
    expect(await reap(pid)).toMatchObject({ exitCode: 0, signal: null });
    expect(exists(recordFile(runtime.dir, record.id))).toBe(false);
    expect(listHeld()).toEqual([]);
  });

  it('text output (in-process): the record with its id, and how to release it', async () => {
    const result = await rdmactl('reg', '2M', '--backend', 'mlock', '--detach');
    expect(result.code, result.stderr).toBe(0);
    const id = /^id +([0-9a-f]{8})$/m.exec(result.stdout)?.[1];
    expect(id).toBeDefined();
    expect(result.stdout).toMatch(/^VmLck after +2M$/m);
    expect(result.stdout).not.toMatch(/[│─┌]/); // stdout is not a terminal: no box characters
    expect(result.stderr).toContain(`release with: rdmactl dereg ${id}`);
    const [entry] = listHeld();
    expect(entry).toMatchObject({ id, state: 'live' });
    expect(statusKb(entry!.pid, 'VmLck')).toBe(2048);
    // This holder is a child of the test process's own event loop: Node reaps it.
    const released = await rdmactl('dereg', id!);
    expect(released.code, released.stderr).toBe(0);
    expect(released.stdout).toMatch(/released/);
    await until('the holder to be reaped', () => procStat(entry!.pid) === null || procStat(entry!.pid)!.state === 'Z');
  });

  it('--for: the holder releases by itself, removes its record and exits 0', async () => {
    const record = detach(['1M', '--backend', 'uring', '--for', '300ms']);
    expect(typeof record['releaseAt']).toBe('string');
    expect(exists(recordFile(runtime.dir, record.id))).toBe(true);
    expect(await reap(record.pid)).toMatchObject({ exitCode: 0, signal: null });
    expect(exists(recordFile(runtime.dir, record.id))).toBe(false);
  });

  it('the holder ignores SIGHUP and keeps holding', async () => {
    const record = detach(['1M', '--backend', 'uring']);
    process.kill(record.pid, 'SIGHUP');
    await new Promise((r) => setTimeout(r, 200));
    expect(running(record.pid)).toBe(true);
    expect(statusKb(record.pid, 'VmPin')).toBe(1024);
  });

  it.each([
    [['lots'], /^rdmactl: invalid size 'lots'/],
    [['4K', '--backend', 'uring', '--fork-init'], /^rdmactl: --fork-init applies to --backend verbs only/], // found by the holder
    [['4K', '--backing', 'file-private', '--file', '/nonexistent/x', '--backend', 'mlock'], /^rdmactl: cannot open --file/],
  ])('bad input %j exits 2 quickly with the same message, and leaves nothing held', (args, message) => {
    const result = rdmactlBin(['reg', ...args, '--detach'], runtime.env);
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(message);
    expect(result.stderr).not.toMatch(/\n\s+at /);
    expect(result.stdout).toBe('');
    expect(result.millis).toBeLessThan(5_000);
    expect(listHeld()).toEqual([]);
  });
});

describe('reg --detach failures', () => {
  it('an unsafe runtime directory is refused (exit 4) before anything is registered', () => {
    mkdirSync(`${runtime.dir}/rdmactl`, { mode: 0o755 });
    chmodSync(`${runtime.dir}/rdmactl`, 0o755);
    const result = rdmactlBin(['reg', '1M', '--backend', 'uring', '--detach'], runtime.env);
    expect(result.status).toBe(4);
    expect(result.stderr).toMatch(/^rdmactl: refusing runtime directory .*: mode 0755 lets others in/);
    expect(readdirSync(`${runtime.dir}/rdmactl`)).toEqual([]);
  });

  it('a holder whose starter is gone before it reports releases at once, removes its record and exits 1', async () => {
    const child = spawn(process.execPath, [holderMainPath(), '--holder-token', 'f00df00df00df00d'], { stdio: ['pipe', 'pipe', 'pipe'], env: runtime.env });
    child.stdout.destroy(); // the reader vanishes: the holder's line meets EPIPE
    const options = { length: MiB, backend: 'uring', backing: 'anon', count: 1 };
    child.stdin.end(`${JSON.stringify({ options, backendRequested: 'uring', holdMillis: null })}\n`);
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const code = await new Promise<number | null>((resolve) => child.once('close', (c) => resolve(c)));
    expect(code).toBe(1);
    expect(stderr).toMatch(/could not report the registration .*EPIPE.*released it/);
    expect(readdirSync(`${runtime.dir}/rdmactl`)).toEqual([]);
  });

  /** Runs the holder program with `input` on its stdin (then EOF); its exit code and output. */
  async function holderProgram(args: string[], input: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const child = spawn(process.execPath, [holderMainPath(), ...args], { stdio: ['pipe', 'pipe', 'pipe'], env: runtime.env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.stdin.end(input);
    const code = await new Promise<number | null>((resolve) => child.once('close', (c) => resolve(c)));
    return { code, stdout, stderr };
  }

  it('the holder program answers with exactly one JSON line, also when it cannot register', async () => {
    const token = ['--holder-token', 'feedf00dfeedf00d'];
    // A request the engine refuses: the answer is the error the user would have seen, and its exit code.
    const options = { length: 4096, backend: 'uring', backing: 'anon', count: 1, forkInit: true };
    const refused = await holderProgram(token, `${JSON.stringify({ options, backendRequested: 'auto', holdMillis: null })}\n`);
    expect(refused.code).toBe(2);
    expect(refused.stdout.split('\n')).toEqual([expect.any(String), '']);
    expect(JSON.parse(refused.stdout)).toEqual({ ok: false, error: { kind: 'UsageError', message: expect.stringMatching(/^--fork-init applies to --backend verbs only/), hints: [], exitCode: 2, errno: null } });
    const malformed = await holderProgram(token, '{"options":{}}\n');
    expect(malformed.code).toBe(1);
    expect(JSON.parse(malformed.stdout)).toMatchObject({ ok: false, error: { message: 'the holder received a malformed request', exitCode: 1 } });
    // The starter gone before it asked (EOF): nothing registered, nothing said, status 1.
    expect(await holderProgram(token, '')).toEqual({ code: 1, stdout: '', stderr: '' });
    // Not started by reg --detach.
    const byHand = await holderProgram([], '');
    expect(byHand.code).toBe(2);
    expect(byHand.stderr).toMatch(/^rdmactl: the holder program is started by `rdmactl reg --detach`/);
    expect(existsSync(`${runtime.dir}/rdmactl`) ? readdirSync(`${runtime.dir}/rdmactl`) : []).toEqual([]);
  });
});

describe('dereg', () => {
  it('--all releases every holder; then "nothing held" with exit 0', async () => {
    const a = detach(['4M', '--backend', 'uring']);
    const b = detach(['4M', '--backend', 'mlock']);
    expect(statusKb(a.pid, 'VmPin')).toBe(4096);
    expect(statusKb(b.pid, 'VmLck')).toBe(4096);
    const result = await rdmactl('dereg', '--all', '--json');
    expect(result.code, result.stderr).toBe(0);
    const { results } = JSON.parse(result.stdout) as { results: Array<Record<string, unknown>> };
    expect(results.map((r) => [r['id'], r['status']]).sort()).toEqual([[a.id, 'released'], [b.id, 'released']].sort());
    for (const pid of [a.pid, b.pid]) expect((await reap(pid))?.exitCode).toBe(0);
    expect(listHeld()).toEqual([]);

    const none = await rdmactl('dereg', '--all');
    expect(none).toMatchObject({ code: 0, stdout: '', stderr: 'rdmactl: nothing held\n' });
    expect(JSON.parse((await rdmactl('dereg', '--all', '--json')).stdout)).toEqual({ host: hostname(), schema: 'rdmactl.dereg/1', results: [] });
  });

  it('a SIGKILLed holder is stale: listHeld says so, removeStale and dereg clean it', async () => {
    const a = detach(['1M', '--backend', 'uring']);
    const b = detach(['1M', '--backend', 'uring']);
    process.kill(a.pid, 'SIGKILL');
    process.kill(b.pid, 'SIGKILL');
    await until('both holders to die', () => !running(a.pid) && !running(b.pid));
    // a stays a zombie (not reaped yet), b is reaped: both are stale.
    await reap(b.pid);
    expect(procStat(a.pid)?.state).toBe('Z');
    expect(listHeld().map((e) => [e.id, e.state, e.problem]).sort()).toEqual([[a.id, 'stale', 'exited'], [b.id, 'stale', 'exited']].sort());

    const result = await rdmactl('dereg', a.id, '--json');
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({ host: hostname(), schema: 'rdmactl.dereg/1', results: [expect.objectContaining({ id: a.id, status: 'stale-removed', signalled: false, exitCode: 0 })] });
    expect(exists(recordFile(runtime.dir, a.id))).toBe(false);
    expect(removeStale()).toBe(1);
    expect(listHeld()).toEqual([]);
    await reap(a.pid);
  });

  it('an unknown id exits 2', async () => {
    for (const id of ['12345678', 'nope']) {
      const result = await rdmactl('dereg', id);
      expect(result.code).toBe(2);
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
      expect(result.stderr).toMatch(new RegExp(`^rdmactl: ${id}: (no held registration with this id|not a held-registration id)`));
    }
  });

  it('usage: ids and --all together, or neither, exit 2', async () => {
    expect((await rdmactl('dereg')).code).toBe(2);
    expect((await rdmactl('dereg', '--all', '12345678')).code).toBe(2);
  });

  describe('forged records', () => {
    let sleeper: number;
    const sleepers: Array<{ kill: () => boolean }> = [];

    beforeEach(async () => {
      const { spawn } = await import('node:child_process');
      const child = spawn('sleep', ['600'], { stdio: 'ignore' });
      sleepers.push(child);
      sleeper = child.pid!;
      await until('sleep to start', () => procStat(sleeper)?.startTime !== undefined && readFileSync(`/proc/${sleeper}/cmdline`, 'utf8').startsWith('sleep'));
    });

    afterEach(() => {
      for (const child of sleepers.splice(0)) child.kill();
    });

    function forge(fields: Partial<HeldRecord>): HeldRecord {
      return writeHeld({
        pid: sleeper, startTime: procStat(sleeper)!.startTime, uid: 0, token: '0123456789abcdef',
        createdAt: new Date().toISOString(), releaseAt: null, registration: sampleReport('uring', sleeper), ...fields,
      });
    }

    it('refuses a pid that is not a holder (right start time, no token): not signalled, exit 1, record removed', async () => {
      const forged = forge({});
      expect(listHeld()).toEqual([expect.objectContaining({ id: forged.id, state: 'stale', problem: 'not-holder' })]);
      const result = await rdmactl('dereg', forged.id);
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(new RegExp(`^rdmactl: ${forged.id}: not signalled: pid ${sleeper} is not an rdmactl holder`));
      expect(running(sleeper)).toBe(true);
      expect(listHeld()).toEqual([]);
    });

    it('a not-holder whose command line carries escape sequences and a newline: quoted escaped, one line on stderr', async () => {
      const { spawn } = await import('node:child_process');
      const script = "sleep 600; : '\x1b]0;PWNED\x07\nrdmactl: forged line'";
      const child = spawn('sh', ['-c', script], { stdio: 'ignore' });
      sleepers.push(child);
      await until('sh to start', () => procStat(child.pid!)?.startTime !== undefined && readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').includes('PWNED'));
      const forged = forge({ pid: child.pid!, startTime: procStat(child.pid!)!.startTime });
      const result = await rdmactl('dereg', forged.id);
      expect(result.code).toBe(1);
      expect(result.stderr).not.toMatch(/[\x00-\x09\x0b-\x1f\x7f]/);
      expect(result.stderr.trimEnd().split('\n')).toHaveLength(1);
      expect(result.stderr).toContain(`(it runs "sh -c sleep 600; : '\\x1b]0;PWNED\\x07\\x0ardmactl: forged line'")`);
      expect(running(child.pid!)).toBe(true);
    });

    it('refuses a reused pid (start time differs): a real holder with a forged start time is not signalled', async () => {
      const holder = detach(['1M', '--backend', 'uring']);
      const real = readRecord(runtime.dir, holder.id);
      const forged = writeHeld({ ...real, startTime: real.startTime - 1 });
      expect(listHeld().find((e) => e.id === forged.id)).toMatchObject({ state: 'stale', problem: 'pid-reused' });
      const result = await rdmactl('dereg', forged.id, '--json');
      expect(result.code).toBe(0); // the recorded holder is gone: nothing to release, record cleaned
      expect(JSON.parse(result.stdout).results[0]).toMatchObject({ status: 'stale-removed', signalled: false });
      expect(result.stderr).toMatch(/stale record removed, nothing signalled: .*pid now belongs to another process/);
      expect(running(holder.pid)).toBe(true);
      expect(statusKb(holder.pid, 'VmPin')).toBe(1024);
      expect(listHeld().map((e) => e.id)).toEqual([holder.id]);
      expect((await rdmactl('dereg', holder.id)).code).toBe(0);
    });

    it('refuses a holder of another user (a record saying uid 65534 for a real holder): exit 4, not signalled, record kept', async () => {
      const holder = detach(['1M', '--backend', 'uring']);
      const forged = writeHeld({ ...readRecord(runtime.dir, holder.id), uid: NOBODY });
      const result = await rdmactl('dereg', forged.id);
      expect(result.code).toBe(4);
      expect(result.stderr).toMatch(new RegExp(`^rdmactl: ${forged.id}: permission denied: holder pid ${holder.pid} belongs to uid 0, not to you`));
      expect(running(holder.pid)).toBe(true);
      expect(listHeld().find((e) => e.id === forged.id)).toMatchObject({ state: 'live', problem: 'other-user' });
    });

    it('with several ids, reports each and exits with the highest code', async () => {
      const forged = forge({});
      const result = await rdmactl('dereg', forged.id, 'ffffffff');
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(/not an rdmactl holder/);
      expect(result.stderr).toMatch(/ffffffff: no held registration/);
      expect(result.stderr).toMatch(/2 of 2 registrations were not released/);
    });
  });
});

describe('another user (uid 65534 via setpriv)', () => {
  const skipReason = unprivilegedUnavailable();
  let nobody: ReturnType<typeof tempRuntime>;

  beforeEach(() => { nobody = tempRuntime(NOBODY); });
  afterEach(() => nobody.cleanup());

  it.skipIf(skipReason !== null)(`uses its own directory; root cannot release it; it releases its own ${skipReason ? `(SKIPPED: ${skipReason})` : ''}`, async () => {
    const record = detach(['1M', '--backend', 'uring'], nobody.env, UNPRIVILEGED);
    expect(statusKb(record.pid, 'VmPin')).toBe(1024);
    const file = recordFile(nobody.dir, record.id);
    expect(statSync(file)).toMatchObject({ uid: NOBODY, mode: expect.any(Number) });
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(`${nobody.dir}/rdmactl`)).toMatchObject({ uid: NOBODY });
    expect(listHeld()).toEqual([]); // not in root's directory

    // Root pointed at nobody's directory: refused before anything is signalled.
    const refused = rdmactlBin(['dereg', '--all'], nobody.env);
    expect(refused.status).toBe(4);
    expect(refused.stderr).toMatch(/^rdmactl: refusing runtime directory .*: owned by uid 65534, not by you \(uid 0\)/);
    expect(running(record.pid)).toBe(true);

    // Root's own store with a copy of nobody's record: another user's holder.
    const copy = writeHeld({ ...JSON.parse(readFileSync(file, 'utf8')) as HeldRecord });
    const other = await rdmactl('dereg', copy.id);
    expect(other.code).toBe(4);
    expect(other.stderr).toMatch(/permission denied: holder pid \d+ belongs to uid 65534, not to you \(uid 0\)/);
    expect(running(record.pid)).toBe(true);

    const own = rdmactlBin(['dereg', record.id, '--json'], nobody.env, UNPRIVILEGED);
    expect(own.status, own.stderr).toBe(0);
    expect(JSON.parse(own.stdout).results[0]).toMatchObject({ status: 'released', pinnedBytesHeld: MiB });
    expect(await reap(record.pid)).toMatchObject({ exitCode: 0 });
    expect(exists(file)).toBe(false);
  });

  it.skipIf(skipReason !== null)('over RLIMIT_MEMLOCK: the holder\'s error and exit 1 come back through --detach', () => {
    const result = rdmactlBin(['reg', '16M', '--backend', 'uring', '--detach'], nobody.env, UNPRIVILEGED);
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/^rdmactl: cannot register 16 MiB with uring \(io_uring_register: ENOMEM\): RLIMIT_MEMLOCK is 8 MiB/);
    expect(result.stderr).toContain('ulimit -l');
  });
});
