// The hostile-user cases: ids that cannot be delivered, write errors, damaged records, odd pids and
// users, racing deregs, and the numbers in an io_uring refusal. Each checks the kernel (/proc) itself.
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, closeSync, mkdirSync, openSync, readFileSync, readdirSync, truncateSync, unlinkSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rdmactl, jsonLines } from '../helpers/run.js';
import { statusKb } from '../helpers/proc.js';
import { BIN, UNPRIVILEGED, builtOrThrow, startRdmactl, unprivilegedUnavailable } from '../helpers/spawn.js';
import { becomeSubreaper, killAndReap, reap, running, tempRuntime, until } from '../held/helpers.js';

const MiB = 1024 * 1024;
const runtime = tempRuntime();
const rdmactlIn = (args: string[], stdio: Array<'pipe' | 'ignore' | number>) =>
  spawnSync(process.execPath, [BIN, ...args], { env: runtime.env, stdio, encoding: 'utf8', timeout: 30_000 });

/** Every holder of the test's runtime directory still running (independent of rdmactl: comm + environment). */
function runningHolders(): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readFileSync(`/proc/${name}/comm`, 'utf8').trim() !== 'rdmactl-holder') continue;
      if (!readFileSync(`/proc/${name}/environ`, 'utf8').includes(`XDG_RUNTIME_DIR=${runtime.dir}`)) continue;
      if (running(Number(name))) pids.push(Number(name));
    } catch { /* gone */ }
  }
  return pids;
}

beforeAll(() => {
  builtOrThrow();
  becomeSubreaper();
});
afterAll(async () => {
  await killAndReap(runningHolders());
  runtime.cleanup();
});

describe('reg --detach keeps a registration only when its id reached stdout', () => {
  it.each([
    ['stdout is /dev/full (ENOSPC)', (): number | 'ignore' => openSync('/dev/full', 'w'), 1, /cannot write to standard output: no space left.*released it/],
    ['stdout is /dev/null (or was closed: Node reopens fd 1 on /dev/null)', (): number | 'ignore' => 'ignore', 2, /would reach nobody/],
  ] as const)('%s: exit %s, one line, no holder left, nothing pinned', async (_what, stdout, code, message) => {
    const fd = stdout();
    try {
      for (const json of [[], ['--json']]) {
        const result = rdmactlIn(['reg', '4M', '--backend', 'uring', '--detach', ...json], ['ignore', fd, 'pipe']);
        expect(result.status).toBe(code);
        expect(result.stderr.split('\n')[0]).toMatch(message);
        expect(result.stderr).not.toMatch(/\n\s+at /);
        await until('the holder to release and exit', () => runningHolders().length === 0, 5_000);
      }
    } finally {
      if (typeof fd === 'number') closeSync(fd);
    }
    expect(readdirSync(`${runtime.dir}/rdmactl`).filter((n) => n.endsWith('.json'))).toEqual([]);
  });

  it('a reader that has gone (EPIPE): exit 1, the holder releases', async () => {
    const child = spawn(process.execPath, [BIN, 'reg', '4M', '--backend', 'uring', '--detach', '--json'], { env: runtime.env, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.destroy(); // like `| head -c 0`: nobody reads the id
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const code = await new Promise<number | null>((r) => child.once('close', (c) => r(c)));
    expect(code).toBe(1);
    expect(stderr).toMatch(/^rdmactl: cannot write to standard output: the reader has gone \(EPIPE\).*released it\n$/);
    await until('the holder to release and exit', () => runningHolders().length === 0, 5_000);
  });
});

describe('write errors', () => {
  it.each([['stat'], ['ls'], ['limits'], ['devices', '--json'], ['--help']])('rdmactl %s >/dev/full: one line, exit 1', (...command) => {
    const full = openSync('/dev/full', 'w');
    try {
      const result = rdmactlIn(command, ['ignore', full, 'pipe']);
      expect(result.status).toBe(1);
      expect(result.stderr).toBe('rdmactl: cannot write to standard output: no space left on the device (ENOSPC)\n');
    } finally {
      closeSync(full);
    }
  });
});

describe('streams and the bare command', () => {
  it('top --json | head -1: the stream ends quietly when the reader goes (exit 0, nothing on stderr)', () => {
    // A real pipe to a reader that leaves after one line, as a shell builds it.
    // pipefail: the pipeline's status is rdmactl's (head exits 0).
    const result = spawnSync('bash', ['-c', `set -o pipefail; "${process.execPath}" "${BIN}" top --json --interval 200ms | head -1 >/dev/null`], { encoding: 'utf8', timeout: 30_000 });
    expect(result.status).toBe(0);
    expect(result.stderr).toBe('');
  });

  it('rdmactl with no arguments: the help on stderr, exit 2 (a usage error)', () => {
    const result = spawnSync(process.execPath, [BIN], { encoding: 'utf8', timeout: 30_000 });
    expect(result.status).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/^Usage: rdmactl \[options\] \[command\]/);
  });
});

describe('a damaged or missing record does not hide a live holder', () => {
  it.each(['damaged', 'missing'] as const)('%s record: ls shows the holder, dereg ID / PID / --all release it', async (how) => {
    for (const target of ['id', 'pid', 'all'] as const) {
      const made = rdmactlIn(['reg', '4M', '--backend', 'uring', '--detach', '--json'], ['ignore', 'pipe', 'pipe']);
      expect(made.status).toBe(0);
      const { id, pid } = JSON.parse(made.stdout) as { id: string; pid: number };
      expect(statusKb(pid, 'VmPin')).toBe(4096);
      const file = `${runtime.dir}/rdmactl/${id}.json`;
      if (how === 'damaged') truncateSync(file, Math.floor(readFileSync(file).length / 2));
      else unlinkSync(file);

      const listed = spawnSync(process.execPath, [BIN, 'ls', '--json', '--source', 'held'], { env: runtime.env, encoding: 'utf8' });
      const rows = (JSON.parse(listed.stdout) as { registrations: Array<Record<string, unknown>> }).registrations;
      expect(rows).toEqual([expect.objectContaining({ source: 'held', pid, handle: `${id}:${how}-record`, length: 4 * MiB, evidence: 'io_uring' })]);

      const args = target === 'id' ? [id] : target === 'pid' ? [String(pid)] : ['--all'];
      const dereg = spawnSync(process.execPath, [BIN, 'dereg', ...args, '--json'], { env: runtime.env, encoding: 'utf8' });
      expect(dereg.status).toBe(0);
      expect((JSON.parse(dereg.stdout) as { results: unknown[] }).results).toEqual([expect.objectContaining({ id, pid, status: 'released', pinnedBytesHeld: 4 * MiB })]);
      expect(running(pid)).toBe(false);
      await reap(pid, 5_000).catch(() => null);
    }
  });

  it('two deregs of one id racing: both exit 0 (one released it, the other says already released)', async () => {
    const made = rdmactlIn(['reg', '1M', '--backend', 'mlock', '--detach', '--json'], ['ignore', 'pipe', 'pipe']);
    const { id, pid } = JSON.parse(made.stdout) as { id: string; pid: number };
    const start = () => new Promise<{ code: number | null; out: string }>((resolve) => {
      const child = spawn(process.execPath, [BIN, 'dereg', id, '--json'], { env: runtime.env, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
      child.once('close', (code) => resolve({ code, out }));
    });
    const [a, b] = await Promise.all([start(), start()]);
    expect([a.code, b.code]).toEqual([0, 0]);
    const statuses = [a, b].map((r) => (JSON.parse(r.out) as { results: Array<{ status: string }> }).results[0]!.status).sort();
    expect(['released', 'already-released', 'stale-removed']).toEqual(expect.arrayContaining(statuses));
    expect(statuses).toContain('released');
    // Later, the same id: still "already released", exit 0 (within ten minutes).
    const again = spawnSync(process.execPath, [BIN, 'dereg', id], { env: runtime.env, encoding: 'utf8' });
    expect(again.status).toBe(0);
    expect(again.stdout).toMatch(/already-released/);
    await reap(pid, 5_000).catch(() => null);
  });
});

describe('odd pids and users give correct numbers or a usage error', () => {
  let holder: Awaited<ReturnType<typeof startRdmactl>>;
  let pid: number;
  beforeAll(async () => {
    holder = await startRdmactl(['reg', '4M', '--backend', 'uring', '--json']);
    pid = (JSON.parse(holder.firstLine) as { pid: number }).pid;
  });
  afterAll(async () => {
    holder.child.kill('SIGTERM');
    await new Promise((r) => holder.child.once('exit', r));
  });

  it('stat P P P lists the process once and counts it once in the user totals', async () => {
    const once = jsonLines((await rdmactl('stat', String(pid), '--json')).stdout)[0]!;
    const thrice = jsonLines((await rdmactl('stat', String(pid), String(pid), `${pid},${pid}`, '--json')).stdout)[0]!;
    const processes = thrice['processes'] as Array<Record<string, unknown>>;
    expect(processes.map((p) => p['pid'])).toEqual([pid]);
    expect(processes[0]!['pinnedBytes']).toBe(statusKb(pid, 'VmPin') * 1024);
    expect(thrice['users']).toEqual(once['users']);
  });

  it('ls --pid P,P reports no overlap for a single registration', async () => {
    const rows = (jsonLines((await rdmactl('ls', '--pid', `${pid},${pid}`, '--json', '--source', 'io_uring')).stdout)[0]!['registrations']) as Array<Record<string, unknown>>;
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ overlap: false, doubleCountedBytes: 0, length: 4 * MiB });
  });

  it('a thread id maps to its process (with a note), so stat PID TID counts it once', async () => {
    const tids = readdirSync(`/proc/${pid}/task`).map(Number).filter((t) => t !== pid);
    expect(tids.length).toBeGreaterThan(0); // node always runs helper threads
    const tid = tids[0]!;
    const result = await rdmactl('stat', String(pid), String(tid), '--json');
    expect(result.code).toBe(0);
    expect(result.stderr).toContain(`${tid} is a thread of process ${pid}`);
    expect((jsonLines(result.stdout)[0]!['processes'] as Array<{ pid: number }>).map((p) => p.pid)).toEqual([pid]);
    const limits = await rdmactl('limits', String(tid), '--json');
    expect(jsonLines(limits.stdout)[0]).toMatchObject({ pid });
  });

  it.each([['nosuchuser'], ['-1'], ['4294967295'], [''], ['root,nosuchuser']])('stat --user %j is a usage error (exit 2)', async (user) => {
    const result = await rdmactl('stat', `--user=${user}`);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^rdmactl: invalid --user/);
  });

  it('stat --user with a name NSS does not know: one line saying where it was looked up and what to give instead', async () => {
    const result = await rdmactl('stat', '--user', 'nosuchuser');
    expect(result.code).toBe(2);
    expect(result.stderr).toBe("rdmactl: invalid --user 'nosuchuser': no such user (looked up through NSS: /etc/passwd, LDAP, sssd…); give a user name or a numeric uid\n");
  });

  it('stat --user root,nobody shows both users\' processes (a comma list)', async () => {
    const result = await rdmactl('stat', '--user', 'root,nobody', '--json', '--all');
    expect(result.code).toBe(0);
    const uids = new Set((jsonLines(result.stdout)[0]!['processes'] as Array<{ uid: number }>).map((p) => p.uid));
    expect([...uids].every((uid) => uid === 0 || uid === 65534)).toBe(true);
    expect(uids.has(0)).toBe(true);
  });

  it('ls --pid \'\' is a usage error (exit 2)', async () => {
    const result = await rdmactl('ls', '--pid', '');
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^rdmactl: invalid --pid list/);
  });
});

describe('unprivileged', () => {
  const why = unprivilegedUnavailable();
  it.skipIf(why !== null)(`an unreadable runtime directory is "permission denied" (exit 4)${why ? ` [skipped: ${why}]` : ''}`, () => {
    const dir = `${runtime.dir}/closed`;
    mkdirSync(dir, { mode: 0o700 });
    chmodSync(runtime.dir, 0o755);
    const result = spawnSync(UNPRIVILEGED[0]!, [...UNPRIVILEGED.slice(1), process.execPath, BIN, 'dereg', '--all'], {
      env: { ...process.env, XDG_RUNTIME_DIR: dir }, encoding: 'utf8',
    });
    expect(result.status).toBe(4);
    expect(result.stderr).toMatch(/^rdmactl: cannot use the runtime directory .*permission denied/);
  });

  it.skipIf(why !== null)(`RLIMIT_MEMLOCK 8 MiB: the io_uring refusal counts the ring's own memory, and limit − ring registers${why ? ` [skipped: ${why}]` : ''}`, () => {
    const limit = 8 * MiB;
    const prefix = ['prlimit', `--memlock=${limit}:${limit}`, ...UNPRIVILEGED];
    const run = (size: string) => spawnSync(prefix[0]!, [...prefix.slice(1), process.execPath, BIN, 'reg', size, '--backend', 'uring', '--for', '1ms', '--json'], { encoding: 'utf8', env: { ...process.env, XDG_RUNTIME_DIR: '' } });
    const refused = run('8M');
    expect(refused.status).toBe(1);
    const ring = /plus the ring itself \((\d+) KiB of SQ\/CQ rings and SQEs/.exec(refused.stderr);
    expect(ring, refused.stderr).not.toBeNull();
    const ringKib = Number(ring![1]);
    expect(ringKib).toBeGreaterThan(0);
    // The explanation adds up: the limit minus the ring registers, one page more does not.
    const fits = run(`${limit / 1024 - ringKib}K`);
    expect(fits.status, fits.stderr).toBe(0);
    const page = 4; // KiB; the test machines use 4 KiB pages
    expect(run(`${limit / 1024 - ringKib + page}K`).status).toBe(1);
  });
});
