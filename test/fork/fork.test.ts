// `rdmactl fork` in-process: what this kernel really does to registered memory across fork.
// The host kernel (≥ 5.9) copies pinned anonymous pages for the child at fork, so a long-term pin
// (io_uring fixed buffers) keeps the parent on its page, while plain and mlocked pages move on COW.
import { spawnSync } from 'node:child_process';
import { release } from 'node:os';
import { beforeAll, describe, expect, it } from 'vitest';
import { rdmactl, rdmactlWith } from '../helpers/run.js';
import { statusKb } from '../helpers/proc.js';
import { childrenOf } from './helpers.js';

type Row = Record<string, unknown>;
interface Report { kernel: string; copyOnFork: boolean; pfnsVisible: boolean; pageSize: number; scenarios: Row[] }

const REQUIRED_KEYS = [
  'backend', 'protection', 'writer', 'backing', 'parentPfnStable', 'childMapped', 'deviceSeesParentWrite',
  'parentSeesDeviceWrite', 'verdict', 'verdictText', 'parentPfnBefore', 'parentPfnAfter', 'childPfn',
  'parentSees', 'childSees', 'childInherited', 'reason',
];

let report: Report;
const find = (backend: string, protection: string, writer: string, backing: string): Row => {
  const row = report.scenarios.find((s) => s['backend'] === backend && s['protection'] === protection && s['writer'] === writer && s['backing'] === backing);
  if (!row) throw new Error(`default matrix has no row ${backend}/${protection}/${writer}/${backing}`);
  return row;
};

describe('rdmactl fork --json (default matrix)', () => {
  let childrenBefore: number[];
  let pinnedBefore: number;

  beforeAll(async () => {
    childrenBefore = childrenOf(process.pid);
    pinnedBefore = statusKb('self', 'VmPin');
    const result = await rdmactl('fork', '--json'); // its time is measured by bench/fork.mjs, not here
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    report = JSON.parse(result.stdout) as Report;
  });

  it('reports the kernel, its copy-on-fork behaviour and PFN visibility', () => {
    expect(report.kernel).toBe(release());
    expect(report.copyOnFork).toBe(true); // 6.18 here
    expect(report.pfnsVisible).toBe(process.getuid?.() === 0);
    expect(report.scenarios.length).toBe(14);
    for (const row of report.scenarios) for (const key of REQUIRED_KEYS) expect(row).toHaveProperty(key);
  });

  it('copy-on-fork: fork and devices give one answer from one source, the kernel\'s own when it has one', async () => {
    const devices = JSON.parse((await rdmactl('devices', '--json')).stdout) as Record<string, unknown>;
    const forkReport = report as unknown as Record<string, unknown>;
    expect(forkReport['copyOnFork']).toBe(devices['copyOnFork']);
    expect(forkReport['copyOnForkSource']).toBe(devices['copyOnForkSource']);
    // The test's own reading of RDMA netlink decides which source is right.
    const sys = spawnSync('rdma', ['sys', 'show'], { encoding: 'utf8' });
    const netlink = sys.status === 0 ? /copy-on-fork (on|off)/.exec(sys.stdout) : null;
    if (netlink) {
      expect(forkReport['copyOnForkSource']).toBe('rdma sys show');
      expect(forkReport['copyOnFork']).toBe(netlink[1] === 'on');
    } else {
      expect(forkReport['copyOnForkSource']).toMatch(/^the kernel version \(Linux ≥ 5\.9 copies\)/);
    }
  });

  it('--help is generated from what the command really prints: every JSON key, every text column, every verdict with its words', async () => {
    const help = (await rdmactl('fork', '--help')).stdout;
    const keys = [...Object.keys(report), ...Object.keys(report.scenarios[0]!)];
    for (const key of keys) expect(help.replace(/\s+/g, ' '), `JSON key ${key} missing from --help`).toMatch(new RegExp(`[{ ,]${key}[,}:]`));
    const { VERDICTS } = await import('../../src/fork/verdicts.js');
    const { FORK_FIELDS } = await import('../../src/commands/fork.js');
    const verdictSection = help.slice(help.indexOf('Verdicts'), help.indexOf('JSON (--json)')).replace(/\s+/g, ' ');
    for (const v of VERDICTS) expect(verdictSection).toContain(`${v.id} ${v.words} — ${v.meaning}`);
    // Every verdict a row reached is in the table, with the words text output prints.
    for (const row of report.scenarios) expect(VERDICTS.map((v) => v.id)).toContain(row['verdict']);
    // Every default text column is explained with its field's own description (the one place it is written).
    const columns = help.slice(help.indexOf('Columns:'), help.indexOf('Verdicts')).replace(/\s+/g, ' ');
    for (const f of FORK_FIELDS.filter((x) => !x.extra)) expect(columns, `text column ${f.key} has no help`).toContain(`${f.label} ${f.description.replace(/\s+/g, ' ')}`);
  });

  it.each([['plain'], ['mlock']])('%s: a parent write after fork moves the parent to a new page (COW); the child keeps the old one', (backend) => {
    const row = find(backend, 'none', 'parent', 'anon');
    expect(row['parentPfnBefore']).toEqual(expect.any(Number));
    expect(row['parentPfnStable']).toBe(false);
    expect(row['parentPagesMoved']).toBe(4);
    expect(row['parentPfnAfter']).not.toBe(row['parentPfnBefore']);
    expect(row['childPfn']).toBe(row['parentPfnBefore']);
    expect(row['parentSees']).toBe('parent-write');
    expect(row['childSees']).toBe('pre-fork');
    expect(row['deviceSeesParentWrite']).toBeNull();
    expect(row['parentSeesDeviceWrite']).toBeNull();
    expect(row['verdict']).toBe('not-pinned');
  });

  it.each([['parent'], ['child'], ['both'], ['none']])('uring/anon, writer %s: the parent keeps the pinned page and the device path is coherent both ways', (writer) => {
    const row = find('uring', 'none', writer, 'anon');
    expect(row['parentPfnStable']).toBe(true);
    expect(row['parentPfnAfter']).toBe(row['parentPfnBefore']);
    // The child got its own copy at fork (copy-on-fork of pinned pages), not the pinned page.
    expect(row['childPfn']).not.toBe(row['parentPfnBefore']);
    expect(row['childMapped']).toBe(true);
    expect(row['childInherited']).toBe('pre-fork');
    expect(row['deviceSeesParentWrite']).toBe(true);
    expect(row['parentSeesDeviceWrite']).toBe(true);
    expect(row['childSeesAfterDeviceWrite']).not.toBe('device-write');
    expect(row['verdict']).toBe('coherent');
    expect(row['parentSees']).toBe(writer === 'parent' || writer === 'both' ? 'parent-write' : 'pre-fork');
    expect(row['childSees']).toBe(writer === 'child' || writer === 'both' ? 'child-write' : 'pre-fork');
  });

  it('uring/memfd: parent and child share the page, so the child sees the device write too', () => {
    const row = find('uring', 'none', 'both', 'memfd');
    expect(row['childPfn']).toBe(row['parentPfnAfter']);
    expect(row['parentSees']).toBe('child-write');
    expect(row['childSeesAfterDeviceWrite']).toBe('device-write');
    expect(row['verdict']).toBe('coherent');
  });

  it.each([['thp'], ['file-private']])('uring/%s: pinned, coherent', (backing) => {
    const row = find('uring', 'none', 'parent', backing);
    expect(row['parentPfnStable']).toBe(true);
    expect(row['verdict']).toBe('coherent');
  });

  it.each([['uring'], ['mlock']])('%s + dontfork: the child has no mapping (process_vm_readv EFAULT)', (backend) => {
    const row = find(backend, 'dontfork', 'parent', 'anon');
    expect(row['childMapped']).toBe(false);
    expect(row['childInherited']).toBe('unmapped');
    expect(row['childSees']).toBe('unmapped');
    expect(row['childPfn']).toBeNull();
    expect(row['parentPfnStable']).toBe(true); // no one shares the page: no COW in the parent
    expect(row['verdict']).toBe('child-unmapped');
    expect(row['verdictText']).toBe('child has no mapping (touching it would crash the child)');
  });

  it('uring + wipeonfork: the child sees zeros, the parent stays coherent with the device', () => {
    const row = find('uring', 'wipeonfork', 'parent', 'anon');
    expect(row['childMapped']).toBe(true);
    expect(row['childInherited']).toBe('zeros');
    expect(row['deviceSeesParentWrite']).toBe(true);
    expect(row['parentSeesDeviceWrite']).toBe(true);
    expect(row['verdict']).toBe('child-zeros');
  });

  it('verbs rows are skipped with the reason on this host (no RDMA device)', () => {
    for (const protection of ['none', 'fork-init']) {
      const row = find('verbs', protection, 'parent', 'anon');
      expect(row['verdict']).toBe('skipped');
      expect(row['reason']).toMatch(/no RDMA device|libibverbs/);
    }
  });

  it('leaves no child behind and releases every pin', () => {
    expect(childrenOf(process.pid).filter((pid) => !childrenBefore.includes(pid))).toEqual([]);
    expect(statusKb('self', 'VmPin')).toBe(pinnedBefore);
  });
});

describe('rdmactl fork (in-process, text and exit codes)', () => {
  it('text: the table with plain-word verdicts and the kernel line', async () => {
    // On a terminal the notes (the kernel line, the counts) follow the table on stdout; in a pipe they go to stderr.
    const result = await rdmactlWith({ tty: true }, 'fork', '--backend', 'uring,plain', '--protect', 'none,dontfork');
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^kernel .*copy-on-fork/m);
    expect(result.stdout).toContain('coherent');
    expect(result.stdout).toContain('not pinned (no device path to check)');
    expect(result.stdout).toContain('child has no mapping (touching it would crash the child)');
    expect(result.stdout).toMatch(/4 scenarios: /);
  });

  it('--expect coherent passes (exit 0) when every row is coherent', async () => {
    const result = await rdmactlWith({ tty: true }, 'fork', '--backend', 'uring', '--writer', 'all', '--backing', 'anon,memfd', '--expect', 'coherent');
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
  });

  it('--expect coherent: exit 5 after the table, one line naming the rows that are not', async () => {
    const result = await rdmactl('fork', '--backend', 'uring,mlock', '--protect', 'none,dontfork', '--expect', 'coherent');
    expect(result.code).toBe(5);
    expect(result.stdout).toContain('VERDICT'); // the table was printed first
    // In a pipe the notes (kernel line, counts) are on stderr too; the failed expectation is its last line.
    const lines = result.stderr.trim().split('\n').filter((line) => line.startsWith('rdmactl: expected'));
    expect(lines).toHaveLength(1);
    expect(result.stderr.trim().split('\n').at(-1)).toBe(lines[0]);
    expect(lines[0]).toMatch(/^rdmactl: expected coherent, but 3 rows not: /);
    expect(lines[0]).toContain('#2 uring/dontfork/parent/anon (child-unmapped)');
    expect(lines[0]).toContain('#3 mlock/none/parent/anon (not-pinned)');
    expect(lines[0]).not.toContain('#1 ');
  });

  it('skipped rows (verbs here, not-applicable combinations) do not fail --expect', async () => {
    const result = await rdmactl('fork', '--backend', 'uring,verbs', '--protect', 'none,fork-init', '--json', '--expect', 'coherent');
    expect(result.code).toBe(0);
    const rows = (JSON.parse(result.stdout) as Report).scenarios;
    expect(rows.map((r) => r['verdict'])).toEqual(['coherent', 'skipped', 'skipped', 'skipped']);
    expect(rows[1]!['reason']).toMatch(/fork-init is ibv_fork_init\(\), verbs only/);
  });

  it('--expect another verdict: dontfork rows are child-unmapped', async () => {
    const result = await rdmactl('fork', '--backend', 'uring,mlock,plain', '--protect', 'dontfork', '--expect', 'child-unmapped');
    expect(result.code).toBe(0);
  });

  it('wipeonfork on a shared backing is skipped as not applicable', async () => {
    const result = await rdmactl('fork', '--backend', 'uring', '--protect', 'wipeonfork', '--backing', 'memfd', '--json');
    expect(result.code).toBe(0);
    const [row] = (JSON.parse(result.stdout) as Report).scenarios;
    expect(row).toMatchObject({ verdict: 'skipped', childMapped: null, deviceSeesParentWrite: null });
    expect(row!['reason']).toMatch(/MADV_WIPEONFORK needs private anonymous memory/);
  });

  it('--size applies to every row (rounded to pages)', async () => {
    const result = await rdmactl('fork', '--backend', 'uring', '--size', '100K', '--json');
    const [row] = (JSON.parse(result.stdout) as Report).scenarios;
    expect(row!['length']).toBe(100 * 1024);
    expect(row!['verdict']).toBe('coherent');
  });

  it.each([
    [['fork', '--backend', 'nope'], /invalid --backend 'nope': valid values are plain, mlock, uring, verbs/],
    [['fork', '--protect', 'dontfork,bad'], /invalid --protect 'bad': valid values are none, dontfork, wipeonfork, fork-init/],
    [['fork', '--writer', 'kid'], /invalid --writer 'kid': valid values are parent, child, both, none/],
    [['fork', '--backing', 'ram'], /invalid --backing 'ram': valid values are anon, thp, hugetlb, memfd, file-shared, file-private/],
    [['fork', '--expect', 'fine'], /invalid --expect 'fine': valid values are coherent,/],
    [['fork', '--size', '0'], /invalid --size '0'/],
  ])('%j is a usage error (exit 2) listing the valid values', async (args, message) => {
    const result = await rdmactl(...args);
    expect(result.code).toBe(2);
    expect(result.stderr.split('\n')[0]).toMatch(message);
    expect(result.stdout).toBe('');
  });

  it('--help teaches the columns, the verdicts and gives examples', async () => {
    const result = await rdmactl('fork', '--help');
    expect(result.code).toBe(0);
    for (const text of ['Columns:', '-H lists them all', 'deviceSeesParentWrite', 'child got', 'Verdicts', 'parent-disconnected',
      'parent disconnected from the registered pages (device writes lost)', 'child sees zeros', 'Examples:', '--expect coherent']) {
      expect(result.stdout).toContain(text);
    }
    expect(result.stdout).not.toContain('--step-delay');
  });
});
