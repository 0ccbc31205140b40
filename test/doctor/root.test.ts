// `doctor --root DIR` on trees a hostile user could have built: every case is made for real in a temp
// dir (symlinks, a FIFO, a sparse 4 GiB file, a symlink loop, a file root owns and uid 65534 cannot
// read, a file where a directory belongs, a missing DIR). The doctor runs as a real child under a
// 1 GiB address-space limit and a 15 s kill: each run must end in seconds, name the file and the
// reason in one line, and still report the rest.
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BIN, UNPRIVILEGED, builtOrThrow, unprivilegedUnavailable } from '../helpers/spawn.js';
import { makeTempDir } from '../proc/helpers/children.js';
import { findingOf, type DoctorJson } from './helpers.js';

const noUnprivileged = unprivilegedUnavailable();
const AS_LIMIT = ['prlimit', `--as=${1024 * 1024 * 1024}`];
const dirs: string[] = [];

beforeAll(() => builtOrThrow());
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A tree with passwd, group and an empty limits.d, as doctor expects under --root. */
function tree(): string {
  const dir = makeTempDir('rdmactl-doctor-hostile-');
  dirs.push(dir);
  mkdirSync(join(dir, 'etc/security/limits.d'), { recursive: true });
  writeFileSync(join(dir, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n');
  writeFileSync(join(dir, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n');
  return dir;
}

interface Run { status: number | null; signal: string | null; stdout: string; stderr: string; ms: number; json: DoctorJson | null }

function doctor(dir: string, prefix: string[] = []): Run {
  const started = Date.now();
  const r = spawnSync(AS_LIMIT[0]!, [...AS_LIMIT.slice(1), ...prefix, process.execPath, BIN, 'doctor', '--root', dir, '--json'], { encoding: 'utf8', timeout: 15_000, killSignal: 'SIGKILL' });
  const ms = Date.now() - started;
  let json: DoctorJson | null = null;
  try { json = JSON.parse(r.stdout) as DoctorJson; } catch { /* checked by the caller */ }
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr, ms, json };
}

/** The run ended by itself, quickly, reported everything, and said exactly this one thing about the tree. */
function expectSkipped(run: Run, file: string, reason: RegExp): void {
  expect(run.signal, `killed after ${run.ms} ms: ${run.stderr.slice(0, 300)}`).toBeNull();
  expect(run.ms).toBeLessThan(10_000);
  expect(run.stderr).not.toMatch(/internal error|\n\s+at /);
  const lines = run.stderr.trimEnd().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(new RegExp(`^rdmactl: doctor: skipped ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: `));
  expect(lines[0]!.slice(`rdmactl: doctor: skipped ${file}: `.length)).toMatch(reason);
  expect([0, 1]).toContain(run.status);
  const origin = findingOf(run.json!, 'memlock.origin');
  expect(origin.status).toBe('warn');
  expect(origin.summary).toContain(`not read, so this may be incomplete: ${file}`);
  expect(origin.evidence['skippedFiles']).toEqual([{ file, reason: expect.stringMatching(reason) }]);
  // Everything else was still checked.
  expect(run.json!.findings.length).toBeGreaterThanOrEqual(15);
}

describe('doctor --root on a hostile tree', () => {
  it('limits.conf → /dev/zero: resolved inside DIR, where it does not exist; the host\'s /dev/zero is never read', () => {
    const dir = tree();
    symlinkSync('/dev/zero', join(dir, 'etc/security/limits.conf'));
    expectSkipped(doctor(dir), `${dir}/etc/security/limits.conf`, /^a symbolic link to a file that does not exist under /);
  });

  it('limits.conf → /dev/zero with a /dev/zero device inside DIR: a character device is refused unopened', () => {
    const dir = tree();
    mkdirSync(join(dir, 'dev'));
    const made = spawnSync('mknod', [join(dir, 'dev/zero'), 'c', '1', '5'], { encoding: 'utf8' });
    if (made.status !== 0) {
      console.warn(`SKIPPED device case: mknod failed here (${made.stderr.trim() || made.error?.message})`);
      return;
    }
    symlinkSync('/dev/zero', join(dir, 'etc/security/limits.conf'));
    expectSkipped(doctor(dir), `${dir}/etc/security/limits.conf`, /^a character device, not a regular file$/);
  });

  it('a limits.d symlink to an absolute path outside DIR is resolved inside DIR; one to a file inside DIR is followed', () => {
    const dir = tree();
    const outside = makeTempDir('rdmactl-doctor-outside-');
    dirs.push(outside);
    writeFileSync(join(outside, 'escape.conf'), '*  hard  memlock  8\n');
    writeFileSync(join(dir, 'etc/real.conf'), '*  hard  memlock  4\n');
    symlinkSync('/etc/real.conf', join(dir, 'etc/security/limits.d/10-inside.conf'));
    symlinkSync(join(outside, 'escape.conf'), join(dir, 'etc/security/limits.d/20-escape.conf'));
    symlinkSync(`../../../../../../../../..${outside}/escape.conf`, join(dir, 'etc/security/limits.d/30-dotdot.conf'));
    const run = doctor(dir);
    expect(run.stderr.trimEnd().split('\n')).toEqual([
      `rdmactl: doctor: skipped ${dir}/etc/security/limits.d/20-escape.conf: a symbolic link to a file that does not exist under ${dir}`,
      `rdmactl: doctor: skipped ${dir}/etc/security/limits.d/30-dotdot.conf: a symbolic link to a file that does not exist under ${dir}`,
    ]);
    const origin = findingOf(run.json!, 'memlock.origin');
    expect(origin.evidence['limitsFiles']).toEqual([`${dir}/etc/security/limits.d/10-inside.conf`]);
    expect(origin.evidence['pamHardBytes']).toBe(4 * 1024);
  });

  it('limits.conf is a FIFO: not opened, so nothing waits for a writer', () => {
    const dir = tree();
    expect(spawnSync('mkfifo', [join(dir, 'etc/security/limits.conf')]).status).toBe(0);
    expectSkipped(doctor(dir), `${dir}/etc/security/limits.conf`, /^a FIFO, not a regular file$/);
  });

  it('passwd is a FIFO: skipped, and the account is unknown rather than the run hung', () => {
    const dir = tree();
    rmSync(join(dir, 'etc/passwd'));
    expect(spawnSync('mkfifo', [join(dir, 'etc/passwd')]).status).toBe(0);
    const run = doctor(dir);
    expectSkipped(run, `${dir}/etc/passwd`, /^a FIFO, not a regular file$/);
    expect(findingOf(run.json!, 'memlock.origin').summary).toContain(`has no entry in ${dir}/etc/passwd`);
  });

  it('a 4 GiB sparse limits.d file is refused by its size, before any read', () => {
    const dir = tree();
    const file = join(dir, 'etc/security/limits.d/90-huge.conf');
    expect(spawnSync('truncate', ['-s', '4G', file]).status).toBe(0);
    expectSkipped(doctor(dir), file, /^4 GiB, larger than the 1 MiB such a file can be$/);
  });

  it('a symlink loop (ELOOP)', () => {
    const dir = tree();
    symlinkSync('b.conf', join(dir, 'etc/security/limits.d/a.conf.loop'));
    symlinkSync('a.conf.loop', join(dir, 'etc/security/limits.d/b.conf'));
    expectSkipped(doctor(dir), `${dir}/etc/security/limits.d/b.conf`, /^too many levels of symbolic links.*\(ELOOP\)$/);
  });

  it('a file where a directory belongs (ENOTDIR): etc/security is a regular file', () => {
    const dir = tree();
    rmSync(join(dir, 'etc/security'), { recursive: true });
    writeFileSync(join(dir, 'etc/security'), 'not a directory\n');
    const run = doctor(dir);
    expect(run.stderr.trimEnd().split('\n')).toEqual([
      `rdmactl: doctor: skipped ${dir}/etc/security/limits.conf: a component of the path is not a directory (ENOTDIR)`,
      `rdmactl: doctor: skipped ${dir}/etc/security/limits.d: a component of the path is not a directory (ENOTDIR)`,
    ]);
    expect(run.status === 0 || run.status === 1).toBe(true);
  });

  it('limits.d is a regular file: named, with what it is', () => {
    const dir = tree();
    rmSync(join(dir, 'etc/security/limits.d'), { recursive: true });
    writeFileSync(join(dir, 'etc/security/limits.d'), '');
    expectSkipped(doctor(dir), `${dir}/etc/security/limits.d`, /^a regular file, not a directory$/);
  });

  it.skipIf(noUnprivileged !== null)('a limits.conf that uid 65534 cannot read (EACCES): skipped, the run goes on', () => {
    const dir = tree();
    const file = join(dir, 'etc/security/limits.conf');
    writeFileSync(file, '*  hard  memlock  64\n');
    chmodSync(file, 0o600);
    expectSkipped(doctor(dir, UNPRIVILEGED), file, /^permission denied \(EACCES\)$/);
  });

  it.each([
    ['a missing DIR', (dir: string) => join(dir, 'missing'), 'no such directory'],
    ['a DIR that is a regular file', (dir: string) => join(dir, 'etc/passwd'), 'not a directory'],
    ['a DIR that is a symlink loop', (dir: string) => { symlinkSync('loop', join(dir, 'loop')); return join(dir, 'loop'); }, 'too many levels of symbolic links: a symlink loop, or a link into /proc (ELOOP)'],
  ])('%s → exit 2, one line', (_name, make, why) => {
    const root = make(tree());
    const run = doctor(root);
    expect(run.status).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr).toBe(`rdmactl: --root '${root}': ${why}\n`);
  });
});
