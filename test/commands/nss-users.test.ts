// Users and groups that exist only in an NSS source, not in /etc/passwd: the test sets up
// libnss-extrausers in a private mount namespace (nsswitch.conf and /var/lib/extrausers bind-mounted
// there only; this host's files are never changed) and runs rdmactl inside it. A process runs as that
// user's uid and mlocks 64 KiB; stat, stat -u and doctor must name it as ps and id do in the same
// namespace, and outside it the uid has no name and shows as its number.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { statusKb } from '../helpers/proc.js';
import { BIN, builtOrThrow } from '../helpers/spawn.js';
import { buildPinner, findCompiler, makeTempDir, startPinner, type Pinner } from '../proc/helpers/children.js';
import { findingOf, type DoctorJson } from '../doctor/helpers.js';

const USER = 'nssonly';
const UID = 61234;
const GROUP = 'nssgroup';
const GROUP_GID = 61235;
/** A user whose passwd line (20 KB of gecos) does not fit the first lookup buffer: ERANGE, then growth. */
const WIDE_USER = 'nsswide';
const LOCK_BYTES = 64 * 1024;
const MEMLOCK_LIMIT = 1024 * 1024;

interface Run { status: number | null; stdout: string; stderr: string }

let dir = '';

/** argv inside a private mount namespace where NSS also reads the test's extrausers files. */
function inNamespace(argv: string[]): Run {
  const script = [
    'mount --bind "$1/nsswitch.conf" /etc/nsswitch.conf',
    'mount --bind "$1/extrausers" /var/lib/extrausers',
    'mount --bind "$1/limits.conf" /etc/security/limits.conf',
    'mount --bind "$1/limits.d" /etc/security/limits.d',
    'shift',
    'exec "$@"',
  ].join(' && ');
  const r = spawnSync('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script, 'sh', dir, ...argv], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.error ? r.error.message : r.stderr };
}

function rdmactlIn(...args: string[]): Run {
  return inNamespace([process.execPath, BIN, ...args]);
}

function rdmactlOutside(...args: string[]): Run {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Why this cannot run here, or null. Creates the fixture tree when it can. */
function unavailable(): string | null {
  if (process.getuid?.() !== 0) return 'needs root (mount namespaces and bind mounts)';
  const cc = findCompiler();
  if (!cc) return 'no C compiler for the mlocking helper (install gcc)';
  if (!existsSync('/var/lib/extrausers')) return 'libnss-extrausers is not installed (apt-get install libnss-extrausers)';
  if (!existsSync('/etc/security/limits.conf') || !existsSync('/etc/security/limits.d')) return '/etc/security/limits.conf or limits.d is missing (libpam-modules) to bind the test\'s over';
  for (const key of [USER, String(UID), WIDE_USER]) {
    if (spawnSync('getent', ['passwd', key]).status !== 2) return `the host's NSS already knows ${key}: the test needs a user only its own NSS source has`;
  }
  dir = makeTempDir('rdmactl-nss-');
  mkdirSync(join(dir, 'extrausers'));
  mkdirSync(join(dir, 'limits.d'));
  writeFileSync(join(dir, 'nsswitch.conf'), 'passwd: files extrausers\ngroup: files extrausers\nshadow: files extrausers\n');
  writeFileSync(join(dir, 'extrausers/passwd'), `${USER}:x:${UID}:${UID}:NSS only:/nonexistent:/usr/sbin/nologin\n${WIDE_USER}:x:61236:61236:${'w'.repeat(20_000)}:/nonexistent:/usr/sbin/nologin\n`);
  writeFileSync(join(dir, 'extrausers/group'), `${USER}:x:${UID}:\n${GROUP}:x:${GROUP_GID}:${USER}\n`);
  writeFileSync(join(dir, 'extrausers/shadow'), `${USER}:*:19000:0:99999:7:::\n${WIDE_USER}:*:19000:0:99999:7:::\n`);
  writeFileSync(join(dir, 'limits.conf'), `*  hard  memlock  64\n@${GROUP}  -  memlock  unlimited\n`);
  const probe = inNamespace(['getent', 'passwd', USER]);
  if (probe.status !== 0) return `NSS in a private mount namespace does not see the extrausers user (getent exit ${probe.status}: ${probe.stderr.trim()}): unshare, mount or the module is unavailable`;
  return null;
}

const reason = unavailable();
if (reason) console.warn(`SKIPPING NSS user tests: ${reason}`);

describe.skipIf(reason !== null)('a user only NSS knows (extrausers), in a private mount namespace', () => {
  let pinner: Pinner;

  beforeAll(async () => {
    builtOrThrow();
    const binary = buildPinner(findCompiler()!, dir);
    // 1 MiB: not the unlimited limits.conf gives @nssgroup, so doctor must see that no PAM login set it.
    pinner = await startPinner('prlimit', [`--memlock=${MEMLOCK_LIMIT}:${MEMLOCK_LIMIT}`, 'setpriv', `--reuid=${UID}`, `--regid=${UID}`, '--clear-groups', '--', binary, String(LOCK_BYTES), '0']);
  });

  afterAll(async () => {
    await pinner?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('stat -u NAME finds the process by its NSS name, with what /proc says it locks; ps in the namespace agrees', () => {
    const r = rdmactlIn('stat', '-u', USER, '--json');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const report = JSON.parse(r.stdout) as { processes: Array<Record<string, unknown>> };
    expect(report.processes.map((p) => p['pid'])).toEqual([pinner.pid]);
    expect(report.processes[0]).toMatchObject({ uid: UID, user: USER, lockedBytes: statusKb(pinner.pid, 'VmLck') * 1024 });
    expect(report.processes[0]!['lockedBytes']).toBe(LOCK_BYTES);
    const ps = inNamespace(['ps', '-o', 'user=', '-p', String(pinner.pid)]);
    if (ps.status === 0) expect(ps.stdout.trim()).toBe(USER);
    else console.warn(`ps not run in the namespace (${ps.stderr.trim()}): only /proc checked`);
  });

  it('stat (text) shows the name in the user column; stat --json of the whole machine has it too', () => {
    const text = rdmactlIn('stat', '--user', USER);
    expect(text.status).toBe(0);
    const row = text.stdout.split('\n').find((line) => new RegExp(`^\\s*${pinner.pid}\\s`).test(line));
    expect(row, text.stdout).toBeDefined();
    expect(row!.split(/\s+/)).toContain(USER);
    const all = JSON.parse(rdmactlIn('stat', '--json').stdout) as { processes: Array<Record<string, unknown>> };
    expect(all.processes.find((p) => p['pid'] === pinner.pid)).toMatchObject({ uid: UID, user: USER });
  });

  it('outside the namespace NSS has no name for the uid: it shows as its number, as ps shows it', () => {
    const all = JSON.parse(rdmactlOutside('stat', '--json').stdout) as { processes: Array<Record<string, unknown>> };
    expect(all.processes.find((p) => p['pid'] === pinner.pid)).toMatchObject({ uid: UID, user: String(UID) });
    const ps = spawnSync('ps', ['-o', 'user=', '-p', String(pinner.pid)], { encoding: 'utf8' });
    if (ps.status === 0) expect(ps.stdout.trim()).toBe(String(UID));
    const origin = findingOf(JSON.parse(rdmactlOutside('doctor', String(pinner.pid), '--json').stdout) as DoctorJson, 'memlock.origin');
    expect(origin.evidence).toMatchObject({ user: null, groups: [], accountSource: 'nss' });
    expect(origin.summary).toContain(`uid ${UID} has no entry in the user database (looked up through NSS), so limits.conf does not apply`);
    const named = rdmactlOutside('stat', '-u', USER);
    expect(named.status).toBe(2);
    expect(named.stderr).toBe(`rdmactl: invalid --user '${USER}': no such user (looked up through NSS: /etc/passwd, LDAP, sssd…); give a user name or a numeric uid\n`);
  });

  it('a passwd entry larger than the first lookup buffer is found (the buffer grows on ERANGE)', () => {
    const r = rdmactlIn('stat', '-u', WIDE_USER, '--json');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('doctor: limits.conf "@nssgroup" applies to the user through its NSS group, as id says', () => {
    const r = rdmactlIn('doctor', String(pinner.pid), '--json');
    expect(r.stderr).toBe('');
    const json = JSON.parse(r.stdout) as DoctorJson;
    const origin = findingOf(json, 'memlock.origin');
    const idGroups = inNamespace(['id', '-Gn', USER]).stdout.trim().split(/\s+/);
    expect(idGroups).toContain(GROUP);
    expect(origin.evidence).toMatchObject({ user: USER, accountSource: 'nss', pamSoftBytes: null, pamHardBytes: null });
    expect([...(origin.evidence['groups'] as string[])].sort()).toEqual([...idGroups].sort());
    expect(origin.evidence['pamSoftLine']).toMatchObject({ domain: `@${GROUP}`, line: 2 });
    // The pinner has 1 MiB, not the unlimited a PAM login would give.
    expect(origin.evidence).toMatchObject({ softBytes: MEMLOCK_LIMIT, hardBytes: MEMLOCK_LIMIT });
    expect(origin.status).toBe('warn');
    expect(origin.summary).toContain(`to @${GROUP} (`);
  });

  it('doctor --root DIR takes the account from DIR\'s files only: this machine\'s NSS cannot answer for another tree', () => {
    const tree = join(dir, 'tree');
    mkdirSync(join(tree, 'etc/security/limits.d'), { recursive: true });
    writeFileSync(join(tree, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
    writeFileSync(join(tree, 'etc/group'), `root:x:0:\n${GROUP}:x:${GROUP_GID}:${USER}\n`);
    writeFileSync(join(tree, 'etc/security/limits.conf'), `@${GROUP}  -  memlock  unlimited\n`);
    const r = rdmactlIn('doctor', String(pinner.pid), '--root', tree, '--json');
    const origin = findingOf(JSON.parse(r.stdout) as DoctorJson, 'memlock.origin');
    expect(origin.evidence).toMatchObject({ user: null, groups: [], accountSource: 'files' });
    expect(origin.summary).toContain(`uid ${UID} has no entry in ${tree}/etc/passwd`);
  });
});
