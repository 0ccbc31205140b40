// Names other users choose, printed by root. Two real processes run as uid 65534 and hold memory
// (one mlocks, one pins an io_uring buffer); their comm is the name of the symlink they were started
// through: one carries a terminal title, a bell and a clear-screen sequence, the other a newline and a
// forged row. A third sits in a memory cgroup whose name holds ESC and BEL. Root's stat, ls, limits,
// doctor, stat --by cgroup and completion must print none of those bytes, no forged line, and the
// names escaped as \xNN.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, UNPRIVILEGED, builtOrThrow, exited, runSync, unprivilegedUnavailable, type SyncResult } from '../helpers/spawn.js';
import { memoryCgroupPlacement, removeCgroups } from '../helpers/cgroup.js';

const TITLE = 'x\x1b]0;PWNED\x07\x1b[2J'; // exactly 15 bytes: the whole comm
const TITLE_ESCAPED = 'x\\x1b]0;PWNED\\x07\\x1b[2J';
const FORGER = 'x\n1 root FORGED'; // 15 bytes: a line that would pass for a stat row
const FORGER_ESCAPED = 'x\\x0a1 root FORGED';
/** In a plain table (a pipe) every cell is one word: the blanks as \x20 too. */
const FORGER_CELL = 'x\\x0a1\\x20root\\x20FORGED';
const CGROUP_NAME = `rdmactl-esc-${process.pid}-\x1b]0;CG\x07`;
const CGROUP_ESCAPED = `rdmactl-esc-${process.pid}-\\x1b]0;CG\\x07`;

const unprivileged = unprivilegedUnavailable();
if (unprivileged) console.warn(`SKIPPING hostile-name tests: ${unprivileged}`);
const placement = memoryCgroupPlacement();
if (placement.skipReason) console.warn(`SKIPPING the hostile cgroup name part: ${placement.skipReason}`);
const cgroupPath = `${placement.parentPath}/${CGROUP_NAME}`;

/** Bytes a terminal acts on: C0 controls other than newline, DEL, and C1 (as UTF-8). */
const CONTROL = /[\x00-\x09\x0b-\x1f\x7f\u0080-\u009f]/;

/** What a hostile name must never do to root's output (completion values are tab-separated pairs). */
function expectInert(result: SyncResult, what: string, tabs = false): void {
  const all = result.stdout + result.stderr;
  expect(tabs ? all.replaceAll('\t', ' ') : all, what).not.toMatch(CONTROL);
  expect(Buffer.from(all).includes(0x1b), what).toBe(false);
  expect(Buffer.from(all).includes(0x07), what).toBe(false);
  // The forged row never starts a line of its own: FORGED only ever appears after the escaped newline.
  for (const line of all.split('\n')) {
    if (line.includes('FORGED')) expect(line, what).toContain('x\\x0a1');
  }
}

function rootRun(...args: string[]): SyncResult {
  return runSync([process.execPath, BIN, ...args], { env: { ...process.env, RDMACTL_DEBUG: '' } });
}

describe.skipIf(unprivileged !== null)('names chosen by other users are escaped in text output', () => {
  let dir: string;
  const children: ChildProcessWithoutNullStreams[] = [];
  let titled: ChildProcessWithoutNullStreams;
  let forger: ChildProcessWithoutNullStreams;
  let grouped: ChildProcessWithoutNullStreams | null = null;

  /** `rdmactl reg ARGS` as uid 65534 under the comm `name` (the symlink's name), optionally inside a cgroup. */
  function startNamed(name: string, args: string[], cgroupDir?: string): Promise<ChildProcessWithoutNullStreams> {
    const link = join(dir, name);
    symlinkSync(process.execPath, link);
    const argv = [...UNPRIVILEGED, link, BIN, 'reg', ...args, '--json'];
    const child = cgroupDir === undefined
      ? spawn(argv[0]!, argv.slice(1), { stdio: 'pipe' })
      : spawn('sh', ['-c', `echo $$ > "$0/cgroup.procs" && exec "$@"`, cgroupDir, ...argv], { stdio: 'pipe' });
    children.push(child);
    let err = '';
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    return new Promise((resolve, reject) => {
      child.stdout.once('data', () => resolve(child));
      child.once('exit', (code) => reject(new Error(`${JSON.stringify(name)} exited (${code}) before registering: ${err}`)));
    });
  }

  beforeAll(async () => {
    builtOrThrow();
    dir = mkdtempSync(join(tmpdir(), 'rdmactl-names-'));
    chmodSync(dir, 0o755);
    titled = await startNamed(TITLE, ['1M', '--backend', 'mlock']);
    forger = await startNamed(FORGER, ['1M', '--backend', 'uring']);
    if (!placement.skipReason) {
      mkdirSync(placement.dir(cgroupPath));
      grouped = await startNamed(`grp-${TITLE}`.slice(0, 15), ['1M', '--backend', 'mlock'], placement.dir(cgroupPath));
    }
  });

  afterAll(async () => {
    for (const child of children) child.kill('SIGTERM');
    for (const child of children) await exited(child);
    if (!placement.skipReason) await removeCgroups([placement.dir(cgroupPath)]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('the processes really carry the hostile names (as the kernel keeps them)', () => {
    expect(readFileSync(`/proc/${titled.pid}/comm`, 'utf8')).toBe(`${TITLE}\n`);
    expect(readFileSync(`/proc/${forger.pid}/comm`, 'utf8')).toBe(`${FORGER}\n`);
  });

  it('stat: the names escaped, nothing a terminal acts on, no forged row (plain, -r, --by user)', () => {
    const stat = rootRun('stat');
    expect(stat.status).toBe(0);
    expectInert(stat, 'stat');
    expect(stat.stdout).toMatch(new RegExp(`^ *${titled.pid} .*${escapeRegExp(TITLE_ESCAPED)}`, 'm'));
    expect(stat.stdout).toMatch(new RegExp(`^ *${forger.pid} .*${escapeRegExp(FORGER_CELL)}`, 'm'));
    const raw = rootRun('stat', '-r', '-n', '-o', 'pid,comm');
    expectInert(raw, 'stat -r');
    expect(raw.stdout.split('\n')).toContain(`${forger.pid} x\\x0a1\\x20root\\x20FORGED`);
    expectInert(rootRun('stat', '--by', 'user'), 'stat --by user');
  });

  it('ls: the io_uring buffer and the mlocked range under their escaped names', () => {
    const ls = rootRun('ls', '--pid', `${titled.pid},${forger.pid}`);
    expect(ls.status).toBe(0);
    expectInert(ls, 'ls');
    expect(ls.stdout).toMatch(new RegExp(`^io_uring +${forger.pid} +${escapeRegExp(FORGER_CELL)}`, 'm'));
    expect(ls.stdout).toMatch(new RegExp(`^mlock +${titled.pid} +${escapeRegExp(TITLE_ESCAPED)}`, 'm'));
  });

  it('limits PID and doctor PID', () => {
    for (const pid of [titled.pid!, forger.pid!]) {
      const limits = rootRun('limits', String(pid));
      expect(limits.status).toBe(0);
      expectInert(limits, `limits ${pid}`);
      const doctor = rootRun('doctor', String(pid));
      expectInert(doctor, `doctor ${pid}`);
      expect(doctor.stdout).toContain(`target: pid ${pid} (${pid === titled.pid ? TITLE_ESCAPED : FORGER_ESCAPED})`);
    }
    expect(rootRun('limits', String(titled.pid)).stdout).toContain(TITLE_ESCAPED);
  });

  it('completion values: each pid one line, its comm escaped', () => {
    const values = rootRun('completion', '--values', 'pids');
    expectInert(values, 'completion --values pids', true);
    expect(values.stdout.split('\n')).toContain(`${titled.pid}\t${TITLE_ESCAPED}`);
    expect(values.stdout.split('\n')).toContain(`${forger.pid}\t${FORGER_ESCAPED}`);
  });

  it('stat --format prometheus: label values escaped as text output is (\\xNN), then per the exposition format; no forged sample, no raw ESC', () => {
    const exposition = rootRun('stat', '--format', 'prometheus');
    expect(exposition.status).toBe(0);
    expect(Buffer.from(exposition.stdout).includes(0x1b)).toBe(false);
    expect(Buffer.from(exposition.stdout).includes(0x07)).toBe(false);
    // prom-client writes the backslash of \x0a as \\: the value a scraper stores is the escaped text.
    const forged = `comm="${FORGER_ESCAPED.replace(/\\/g, '\\\\')}"`;
    for (const line of exposition.stdout.split('\n')) if (line.includes('FORGED')) expect(line).toContain(forged);
    expect(exposition.stdout).toMatch(new RegExp(`^rdmactl_process_pinned_bytes\\{pid="${forger.pid}",${escapeRegExp(forged)},`, 'm'));
    expect(exposition.stdout).toContain(`comm="${TITLE_ESCAPED.replace(/\\/g, '\\\\')}"`);
  });

  it.skipIf(placement.skipReason !== null)('stat --by cgroup, ls -o +cgroup and doctor with a cgroup named with ESC and BEL', () => {
    const byCgroup = rootRun('stat', '--by', 'cgroup');
    expect(byCgroup.status).toBe(0);
    expectInert(byCgroup, 'stat --by cgroup');
    expect(byCgroup.stdout).toContain(CGROUP_ESCAPED);
    const ls = rootRun('ls', '--pid', String(grouped!.pid), '-o', '+cgroup');
    expectInert(ls, 'ls -o +cgroup');
    expect(ls.stdout).toContain(CGROUP_ESCAPED);
    const doctor = rootRun('doctor', String(grouped!.pid));
    expectInert(doctor, 'doctor in the cgroup');
    expect(doctor.stdout).toContain(CGROUP_ESCAPED);
    // JSON keeps the real name (escaped by JSON itself), so scripts see what the kernel has.
    const json = rootRun('stat', '--by', 'cgroup', '--json');
    expect(json.stdout).not.toMatch(CONTROL);
    expect(json.stdout.trimEnd().split('\n')).toHaveLength(1);
    expect((JSON.parse(json.stdout) as { groups: Array<{ cgroup: string }> }).groups.map((g) => g.cgroup)).toContain(cgroupPath);
  });
});

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
